"""Shared prompt prefix: its KV cache computed once per ``generate`` call and reused by every batch.

Prompts rendered from one template share their leading tokens (the chat template's system turn and
the instruction): for closed-book questions that is most of the prompt. The prefix runs through
the model once at batch 1; each batch then starts from a copy of its keys and values, expanded to
the batch's rows, and only the rest of each prompt is prefilled. Rows keep the prefix at positions
0..p-1 and are padded between prefix and suffix (masked out; position ids follow the mask), so a
row sees the same positions and keys as when it is prefilled whole.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_PREFIX_TOKENS = 16  # shorter shared prefixes are prefilled with their prompts (a set threshold, not tuned)
# Architectures whose attention is full and causal over one DynamicCache (no sliding window, no hybrid layers).
FULL_ATTENTION_TYPES = frozenset({"llama", "qwen2", "mistral", "phi3", "granite"})


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
    """Leading tokens shared by every sequence, leaving each at least one token of its own."""
    if not seqs:
        return 0
    first, shortest = seqs[0], min(len(s) for s in seqs)
    n = 0
    while n < shortest - 1 and all(s[n] == first[n] for s in seqs):
        n += 1
    return n


def reusable(model: Any) -> bool:
    """Whether ``model`` can start generation from a copied prefix cache (full causal attention, no soft prompt)."""
    cfg = getattr(model, "config", None)
    peft_cfg = getattr(model, "active_peft_config", None)
    if peft_cfg is not None and getattr(peft_cfg, "is_prompt_learning", False):
        return False  # virtual tokens go before the prompt inside peft's generate
    if getattr(cfg, "model_type", "") not in FULL_ATTENTION_TYPES:
        return False
    return not getattr(cfg, "use_sliding_window", False)


@dataclass
class PrefixCache:
    """The KV cache of ``ids`` (a prefix every prompt of the call shares), ready to be copied per batch."""

    ids: list[int]
    cache: Any

    @classmethod
    def build(cls, model: Any, ids: list[int]) -> PrefixCache:
        import torch

        device = next(model.parameters()).device
        with torch.inference_mode():
            out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
        return cls(list(ids), out.past_key_values)

    def __len__(self) -> int:
        return len(self.ids)

    def for_rows(self, rows: int) -> Any:
        """A fresh copy of the cache with the prefix repeated for ``rows`` rows (generation appends to it)."""
        cache = copy.deepcopy(self.cache)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        return cache


def prefix_batch(prefix: Sequence[int], suffixes: Sequence[Sequence[int]], pad_id: int) -> tuple[list[list[int]], list[list[int]]]:
    """Rows of prefix + padding + suffix and their attention mask (0 on the padding only)."""
    width = max(len(s) for s in suffixes)
    p = list(prefix)
    ids = [p + [pad_id] * (width - len(s)) + list(s) for s in suffixes]
    mask = [[1] * len(p) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
    return ids, mask
