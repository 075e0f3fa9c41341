"""lean_lora: no fp32 copies of adapted layers' inputs under bf16 autocast, and a dropout that keeps its scale exact."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from torch import nn

from workbench.tuning.lean_lora import MaskDropout, streamline_lora_layers


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 32, bias=False)
        self.down = nn.Linear(32, 16, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(torch.relu(self.up(x)))


def _peft(dropout: float) -> nn.Module:
    torch.manual_seed(0)
    base = Tiny().to(torch.bfloat16)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["up", "down"], init_lora_weights=False)
    return get_peft_model(base, cfg, autocast_adapter_dtype=True)


def _lora_a_input_dtypes(model: nn.Module, x: torch.Tensor) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.add(args[0].dtype)) for n, m in model.named_modules() if n.endswith("lora_A.default")]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    for h in hooks:
        h.remove()
    return seen


def test_streamlined_layers_take_bf16_inputs_and_give_the_same_output():
    x = torch.randn(3, 16, dtype=torch.bfloat16)
    plain, lean = _peft(0.0), _peft(0.0)
    assert next(p for p in plain.parameters() if p.requires_grad).dtype == torch.float32
    assert streamline_lora_layers(lean, autocast_on=True) == 2
    assert _lora_a_input_dtypes(plain, x) == {torch.float32}  # peft's cast: the copy removed below
    assert _lora_a_input_dtypes(lean, x) == {torch.bfloat16}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(plain(x), lean(x))


def test_nothing_changes_without_autocast():
    model = _peft(0.05)
    assert streamline_lora_layers(model, autocast_on=False) == 0
    assert all(isinstance(d, nn.Dropout) for n, d in model.named_modules() if n.endswith("lora_dropout.default"))


def test_dropout_modules_are_replaced_keeping_p():
    model = _peft(0.05)
    streamline_lora_layers(model, autocast_on=True)
    drops = [d for n, d in model.named_modules() if n.endswith("lora_dropout.default")]
    assert len(drops) == 2 and all(isinstance(d, MaskDropout) and d.p == 0.05 for d in drops)


def test_mask_dropout_scales_at_full_precision_and_keeps_one_minus_p():
    torch.manual_seed(1)
    x = torch.randn(400, 500, dtype=torch.bfloat16)
    drop = MaskDropout(0.05).train()
    out = drop(x)
    kept = out != 0
    share = float(kept[x != 0].float().mean())
    assert abs(share - 0.95) < 0.004  # 200k draws: 4 standard deviations are ~0.002
    flat = kept[x != 0].flatten().float()
    assert abs(float(flat[0::2].mean()) - 0.95) < 0.005 and abs(float(flat[1::2].mean()) - 0.95) < 0.005  # both halves of each draw
    assert drop.scale == pytest.approx(1 / 0.95, rel=2e-5)  # p taken to 1638/32768
    want = (x.float() * drop.scale).to(torch.bfloat16)  # what peft's fp32 dropout then the bf16 cast gave
    assert torch.equal(out[kept], want[kept])
    assert not torch.equal(want, (x * torch.tensor(1 / 0.95, dtype=torch.bfloat16)))  # the bf16 scale would differ


def test_mask_dropout_is_identity_in_eval_and_at_zero():
    x = torch.randn(10, 10)
    assert drop_is(MaskDropout(0.3).eval(), x) and drop_is(MaskDropout(0.0).train(), x)
    with pytest.raises(ValueError, match="dropout p"):
        MaskDropout(1.0)


def drop_is(drop: nn.Module, x: torch.Tensor) -> bool:
    return drop(x) is x


def test_mask_dropout_is_seeded_and_takes_any_shape():
    x = torch.randn(7, 3, 5, dtype=torch.bfloat16)  # an odd number of elements
    drop = MaskDropout(0.5).train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x)) and a.shape == x.shape
    assert 0 < int((a == 0).sum()) < x.numel()


def test_mask_dropout_gradient_is_the_mask_times_the_scale():
    x = torch.randn(40, 30).requires_grad_(True)
    drop = MaskDropout(0.2).train()
    out = drop(x)
    out.sum().backward()
    kept = out.detach() != 0
    assert torch.equal(x.grad, kept.float() * drop.scale)
