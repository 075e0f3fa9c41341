"""The chunked cross-entropy of the training loop is the plain one: same loss, same gradient of the hidden states."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from workbench.tuning.chunked_loss import projected_cross_entropy  # noqa: E402


def _case(dtype, rows=23, width=16, vocab=101):
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(width, vocab, bias=False).to(dtype)
    head.weight.requires_grad_(False)  # frozen, as in adapter training
    hidden = torch.randn(rows, width, generator=g).to(dtype).requires_grad_(True)
    targets = torch.randint(0, vocab, (rows,), generator=g)
    return head, hidden, targets


def _plain(head, hidden, targets):
    h = hidden.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(head(h).float(), targets)
    loss.backward()
    return loss.detach(), h.grad


@pytest.mark.parametrize("chunk", [1, 5, 23, 64])
def test_chunked_loss_and_gradient_equal_the_plain_cross_entropy_in_fp32(chunk):
    head, hidden, targets = _case(torch.float32)
    want_loss, want_grad = _plain(head, hidden, targets)
    loss = projected_cross_entropy(hidden, head, targets, chunk=chunk)
    (loss * 3.0).backward()  # an outer factor reaches the hidden gradient
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-6)
    torch.testing.assert_close(hidden.grad, 3.0 * want_grad, rtol=1e-5, atol=1e-7)
    assert head.weight.grad is None


def test_in_bf16_it_matches_the_plain_loss_to_bf16_rounding():
    head, hidden, targets = _case(torch.bfloat16, rows=300, width=64, vocab=1000)
    want_loss, want_grad = _plain(head, hidden, targets)
    loss = projected_cross_entropy(hidden, head, targets, chunk=128)
    loss.backward()
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-4)
    assert hidden.grad.dtype == torch.bfloat16
    torch.testing.assert_close(hidden.grad.float(), want_grad.float(), rtol=2e-2, atol=1e-5)


def test_a_trained_or_biased_head_takes_the_plain_path_and_gets_its_gradient():
    for bias in (False, True):
        head, hidden, targets = _case(torch.float32)
        head = torch.nn.Linear(16, 101, bias=bias)
        head.weight.requires_grad_(not bias)
        projected_cross_entropy(hidden, head, targets).backward()
        assert (head.bias.grad is not None) if bias else (head.weight.grad is not None)
        assert hidden.grad is not None


def _large_allocations(fn, at_least_bytes):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return [e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage >= at_least_bytes]


def test_the_logits_buffers_are_allocated_once_per_call_not_per_chunk():
    # A fresh logits-sized tensor per chunk and per softmax step is page-faulted anew each time (2.5 vs 0.8 s a step).
    head, hidden, targets = _case(torch.bfloat16, rows=300, width=64, vocab=4000)
    chunk_bf16 = 50 * 4000 * 2
    with torch.no_grad():
        sizes = _large_allocations(lambda: projected_cross_entropy(hidden, head, targets, chunk=50), chunk_bf16)
    assert sorted(sizes) == [chunk_bf16, 2 * chunk_bf16]  # one bf16 and one fp32 buffer for 6 chunks
    # the check can fail: the plain path allocates logits-sized tensors for every step of its softmax
    with torch.no_grad():
        plain = _large_allocations(lambda: F.cross_entropy(head(hidden).float(), targets), chunk_bf16)
    assert len(plain) > 2
