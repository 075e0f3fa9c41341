"""Cross-entropy through a frozen output projection, a few rows at a time, never holding all the logits.

``F.cross_entropy(lm_head(hidden).float(), targets)`` holds the labelled positions' logits three times over
(bf16, fp32, and their fp32 gradient: 3 x 450 MB for 750 positions of a 152k vocabulary). Filling and
page-faulting those buffers took a quarter of a LoRA step on a 2-core AMX machine. Here each chunk's logits
live only inside the chunk: the forward keeps one log-sum-exp per row, and the backward recomputes the
chunk's logits (one more product with the output weights: about 4% of a step's FLOPs) to form
``softmax - one_hot``. The loss is the same mean; the output weights get no gradient (they are frozen).
"""

from __future__ import annotations

from typing import Any

CHUNK_ROWS = 128


def _function() -> Any:
    import torch
    import torch.nn.functional as F

    class ChunkedCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, hidden: Any, weight: Any, targets: Any, chunk: int) -> Any:
            hidden = hidden.to(weight.dtype)
            rows = hidden.shape[0]
            lse = torch.empty(rows, dtype=torch.float32, device=hidden.device)
            picked = torch.empty(rows, dtype=torch.float32, device=hidden.device)
            for s in range(0, rows, chunk):
                logits = F.linear(hidden[s : s + chunk], weight).float()
                lse[s : s + chunk] = torch.logsumexp(logits, dim=-1)
                picked[s : s + chunk] = logits.gather(1, targets[s : s + chunk, None]).squeeze(1)
            ctx.save_for_backward(hidden, weight, targets, lse)
            ctx.chunk = chunk
            return (lse - picked).mean()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            hidden, weight, targets, lse = ctx.saved_tensors
            rows, chunk = hidden.shape[0], ctx.chunk
            out = torch.empty_like(hidden)
            scale = grad.float() / rows
            for s in range(0, rows, chunk):
                e = min(rows, s + chunk)
                p = torch.exp(F.linear(hidden[s:e], weight).float() - lse[s:e, None])
                p[torch.arange(e - s, device=p.device), targets[s:e]] -= 1.0
                p *= scale
                out[s:e] = p.to(weight.dtype) @ weight
            return out, None, None, None

    return ChunkedCrossEntropy


_FN: Any = None


def projected_cross_entropy(hidden: Any, head: Any, targets: Any, chunk: int = CHUNK_ROWS) -> Any:
    """Mean cross-entropy of ``head(hidden)`` against ``targets`` (rows x width hidden states, one target each).

    Chunked when ``head`` is a frozen bias-free linear layer (the LoRA/IA3/prompt-tuning case); otherwise
    the plain ``F.cross_entropy`` on the whole projection, so a trained or biased head gets its gradients.
    """
    import torch.nn.functional as F

    global _FN
    weight = getattr(head, "weight", None)
    if weight is None or weight.requires_grad or getattr(head, "bias", None) is not None or weight.dim() != 2:
        return F.cross_entropy(head(hidden).float(), targets)
    if _FN is None:
        _FN = _function()
    return _FN.apply(hidden, weight, targets, chunk)
