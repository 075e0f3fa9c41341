"""Bench: this machine's limits and how close prefill, decode and training get to them (roofline fractions).

Limits, measured in the same run as the work they judge:
- matrix-multiply peak: FLOP/s of one transformer layer's projections (the model's own shapes, read
  from its config) as ``F.linear`` products of 512-2048 rows, in the dtype in use; the best row count;
- memory bandwidth: a 256 MB tensor copy, bytes read plus written per second.

FLOPs (a multiply-add is 2), with P the projection weights of one layer, L layers, d the attention
width (heads x head_dim), V the vocabulary, and ``ctx`` the keys a token attends to (causal):
- forward per token: ``2 P L + 4 d ctx L``, plus ``2 d_model V`` per position whose logits are computed;
- training per token: the forward over all L layers, then back-propagation through the B layers that
  hold adapters (``top_layers``, else all): ``2 P B`` for the activation gradients (the base weights are
  frozen: no weight gradients, which is why it is not the ``6 x params`` of full fine-tuning) plus
  ``8 d ctx B`` for attention, ``6 x`` the LoRA parameters (forward and both gradients), and
  ``4 d_model V`` per labelled position (the loss projects only those).
Decode moves every projection weight (and the output projection) once per step, so its figure is
weight bytes x steps/s over the copy bandwidth.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

PEAK_ROWS = (512, 1024, 2048)
COPY_MB = 256


@dataclass(frozen=True)
class Dims:
    """The shapes that decide a causal LM's FLOPs and bytes, from its config."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def from_config(cls, cfg: Any) -> Dims:
        heads = int(cfg.num_attention_heads)
        head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)
        return cls(int(cfg.num_hidden_layers), int(cfg.hidden_size), int(cfg.intermediate_size), heads, int(getattr(cfg, "num_key_value_heads", None) or heads), head_dim, int(cfg.vocab_size))

    @property
    def attn(self) -> int:
        return self.heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each projection of one layer (Llama / Qwen / Gemma layout)."""
        kv = self.kv_heads * self.head_dim
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.attn), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (self.attn, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    @property
    def layer_params(self) -> int:
        return sum(k * n for k, n in self.projections().values())

    def weight_bytes(self, dtype_bytes: int) -> int:
        """Bytes read per decode step: every layer's projections and the output projection."""
        return (self.layers * self.layer_params + self.hidden * self.vocab) * dtype_bytes


def causal_ctx(length: int) -> int:
    """Keys attended, summed over the tokens of one causal sequence."""
    return length * (length + 1) // 2


def forward_flops(d: Dims, tokens: int, ctx: int, logits_rows: int) -> float:
    return 2.0 * d.layer_params * d.layers * tokens + 4.0 * d.attn * ctx * d.layers + 2.0 * d.hidden * d.vocab * logits_rows


def lora_params_per_layer(d: Dims, rank: int, targets: list[str]) -> int:
    return sum(rank * (k + n) for name, (k, n) in d.projections().items() if name in targets)


def train_flops(d: Dims, tokens: int, ctx: int, labelled: int, bp_layers: int, lora_params: int) -> float:
    """FLOPs of one LoRA training pass over ``tokens`` (see the module docstring)."""
    bp = min(bp_layers or d.layers, d.layers)
    fwd = forward_flops(d, tokens, ctx, labelled)
    back = 2.0 * d.layer_params * bp * tokens + 8.0 * d.attn * ctx * bp + 2.0 * d.hidden * d.vocab * labelled
    return fwd + back + 6.0 * lora_params * bp * tokens


def _best_seconds(fn: Any, budget_s: float, repeats: int = 5) -> float:
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, int(budget_s / repeats / once))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def matmul_peak(d: Dims, dtype: Any, rows: tuple[int, ...] = PEAK_ROWS, budget_s: float = 0.3) -> dict[str, Any]:
    """Best FLOP/s of one layer's projections as ``rows``-row products in ``dtype`` (best of repeats; others' load only adds time)."""
    import torch
    import torch.nn.functional as F

    shapes = d.projections()
    weights = {(k, n): torch.randn(n, k, dtype=dtype) for k, n in set(shapes.values())}
    by_rows: dict[str, float] = {}
    by_shape: dict[str, dict[str, float]] = {}
    with torch.inference_mode():
        for m in rows:
            flops, seconds = 0.0, 0.0
            per: dict[str, float] = {}
            for (k, n), w in weights.items():
                x = torch.randn(m, k, dtype=dtype)
                s = _best_seconds(lambda x=x, w=w: F.linear(x, w), budget_s / len(weights))
                count = sum(1 for v in shapes.values() if v == (k, n))
                flops += count * 2.0 * m * k * n
                seconds += count * s
                per[f"{k}x{n}"] = 2.0 * m * k * n / s
            by_rows[str(m)] = flops / seconds
            by_shape[str(m)] = per
    best = max(by_rows, key=lambda r: by_rows[r])
    return {"peak_flops": by_rows[best], "best_rows": int(best), "by_rows_flops": by_rows, "by_shape_flops": by_shape[best], "dtype": str(dtype).replace("torch.", ""), "dims": asdict(d)}


def copy_bandwidth(mb: int = COPY_MB) -> dict[str, float]:
    """Bytes read plus written per second by a tensor copy far larger than the caches (best of repeats)."""
    import torch

    src = torch.ones(mb * 2**20 // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    s = _best_seconds(lambda: dst.copy_(src), 1.0)
    return {"bytes_per_s": 2.0 * src.numel() * 4 / s, "buffer_mb": mb}


def prefill_roofline(generator: Any, prompts: list[str], batch_size: int, peak_flops: float, repeats: int = 2) -> dict[str, Any]:
    """Achieved FLOP/s of a padded prefill batch (as evaluation runs it; only real tokens count) and of one prompt alone."""
    import torch

    d = Dims.from_config(generator.model.config)
    ids = generator.encode(prompts[:batch_size])
    x, mask = generator._pad(ids)  # noqa: SLF001 - the evaluation path's padding
    one = torch.tensor([ids[0]], device=generator.device)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for name, run, seqs in (("batch", lambda: generator.model(input_ids=x, attention_mask=mask, logits_to_keep=1), ids), ("single", lambda: generator.model(input_ids=one, logits_to_keep=1), ids[:1])):
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - t0)
            tokens = sum(len(s) for s in seqs)
            flops = forward_flops(d, tokens, sum(causal_ctx(len(s)) for s in seqs), len(seqs))
            out[name] = {"rows": len(seqs), "real_tokens": tokens, "padded_tokens": int(x.numel()) if name == "batch" else tokens, "seconds": best, "tokens_per_s": tokens / best, "flops": flops, "flops_per_s": flops / best, "roofline_fraction": flops / best / peak_flops}
    return out


def decode_roofline(generator: Any, prompt: str, steps: int, rows: tuple[int, ...], bandwidth: float) -> dict[str, Any]:
    """Decode steps/s after a prefill (greedy, KV cache) at each batch size in ``rows``; weight bytes x steps/s over ``bandwidth``."""
    import torch

    d = Dims.from_config(generator.model.config)
    wbytes = d.weight_bytes(generator.model.dtype.itemsize)
    ids = generator.encode([prompt])[0]
    out: dict[str, Any] = {"weight_bytes": wbytes, "prompt_tokens": len(ids), "steps": steps}
    with torch.inference_mode():
        for b in rows:
            x = torch.tensor([ids] * b, device=generator.device)
            res = generator.model(input_ids=x, use_cache=True, logits_to_keep=1)
            past, nxt = res.past_key_values, res.logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(steps):
                res = generator.model(input_ids=nxt, past_key_values=past, use_cache=True)
                past, nxt = res.past_key_values, res.logits[:, -1:].argmax(-1)
            s = (time.perf_counter() - t0) / steps
            out[f"batch_{b}"] = {"step_s": s, "tokens_per_s": b / s, "weight_bytes_per_s": wbytes / s, "bandwidth_fraction": wbytes / s / bandwidth}
    return out


def train_roofline(model_folder: str, tokens_per_s: float, seq_len: int, labelled_share: float, top_layers: int, rank: int, targets: list[str], peak_flops: float) -> dict[str, Any]:
    """Achieved FLOP/s of LoRA training at ``tokens_per_s`` on packed ``seq_len`` blocks (causal over each block), over ``peak_flops``."""
    from transformers import AutoConfig

    d = Dims.from_config(AutoConfig.from_pretrained(model_folder, trust_remote_code=False))
    bp = min(top_layers or d.layers, d.layers)
    per_block = train_flops(d, seq_len, causal_ctx(seq_len), round(labelled_share * seq_len), bp, lora_params_per_layer(d, rank, targets))
    flops_per_token = per_block / seq_len
    achieved = tokens_per_s * flops_per_token
    return {"flops_per_token": flops_per_token, "forward_flops_per_token": forward_flops(d, seq_len, causal_ctx(seq_len), 0) / seq_len, "backprop_layers": bp, "tokens_per_s": tokens_per_s, "flops_per_s": achieved, "roofline_fraction": achieved / peak_flops}
