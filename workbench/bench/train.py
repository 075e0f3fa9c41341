"""Bench: our LoRA training loop (packed blocks, loss on labelled positions) vs a plain peft loop.

Both train on the same examples (corpus document pieces + train-split Q/A, built with ``lora_data``)
with the same LoRA settings; the plain loop pads batches of examples instead of packing them and
takes the usual full-vocabulary loss. Throughput is counted in real (non-pad) tokens per second,
first step excluded as warm-up.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..language import language
from ..tuning.lora_data import TrainingData, document_pieces
from ..tuning.packing import IGNORE, Example, pack, qa_example, text_example
from ..tuning.specs import peft_config


def lora_examples(corpus_dir: str | Path, tokenizer: Any, seq_len: int, seed: int = 0) -> list[Example]:
    """The examples a LoRA run trains on (document pieces and train Q/A), shuffled with ``seed``."""
    from ..corpus.load import load_corpus

    corpus = load_corpus(corpus_dir, seed=seed)
    examples = [text_example(tokenizer, text, "chunks", {"doc_id": d}) for d, text in document_pieces(corpus.documents, tokenizer, seq_len - 1)]
    abstain = language(corpus.language).abstain_reply
    for q in corpus.train:
        answer = q.answers[0] if (q.answerable and q.answers) else abstain
        examples.append(qa_example(tokenizer, q.question, answer, corpus.instruction, "qa", {"id": q.id}, corpus.language))
    examples = [e for e in examples if e.splittable or len(e.ids) <= seq_len]
    random.Random(seed).shuffle(examples)
    return examples


def packed_data(examples: list[Example], seq_len: int) -> TrainingData:
    """The examples packed into ``seq_len`` blocks exactly as the workbench trains on them."""
    ids, labels, filler = pack(examples, seq_len)
    stats = {"blocks": len(ids), "seq_len": seq_len, "filler_tokens": filler, "examples": len(examples)}
    return TrainingData(ids, labels, stats, fingerprint="bench")


def _rate(tokens: list[int], seconds: list[float]) -> float:
    """Tokens per second over all steps but the first (warm-up) when there are at least two."""
    if len(seconds) > 1:
        tokens, seconds = tokens[1:], seconds[1:]
    return sum(tokens) / max(sum(seconds), 1e-9)


def ours(model_path: str, data: TrainingData, cfg: TrainConfig, seed: int = 0) -> dict[str, Any]:
    """Train ``cfg.max_steps`` steps with ``lora.train_adapter``; per-step times from its train log."""
    from ..tuning.lora import train_adapter

    with tempfile.TemporaryDirectory(prefix="wb-bench-lora-") as tmp:
        t0 = time.perf_counter()
        train_adapter(model_path, data, cfg, tmp, seed=seed)
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "step_s" in r]
    per_step = cfg.batch_size * cfg.grad_accum * cfg.seq_len
    seconds = [r["step_s"] for r in rows]
    labelled = sum(1 for row in data.labels for t in row if t != IGNORE) / max(len(data.labels), 1)
    return {
        "steps": len(rows),
        "step_s": seconds,
        "tokens_per_step": per_step,
        "tokens_per_s": _rate([per_step] * len(rows), seconds),
        "labelled_tokens_per_s": _rate([per_step] * len(rows), seconds) * labelled / cfg.seq_len,
        "wall_s_incl_load_and_save": wall,
        "losses": [r["loss"] for r in rows],
    }


def plain(model_path: str, examples: list[Example], cfg: TrainConfig, seed: int = 0) -> dict[str, Any]:
    """The reference: get_peft_model + torch AdamW + ``model(..., labels=...)`` on padded example batches."""
    import torch
    from peft import get_peft_model

    from ..backends.models import load_generator

    torch.manual_seed(seed)
    model, tok = load_generator(model_path)
    model = get_peft_model(model, peft_config(cfg))  # the same LoraConfig as ours (every layer), peft's defaults otherwise
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate)
    pad = tok.pad_token_id
    seconds, tokens, labelled, losses = [], [], [], []
    bs = cfg.batch_size
    for step in range(cfg.max_steps):
        batch = [examples[(step * bs + i) % len(examples)] for i in range(bs)]
        width = min(cfg.seq_len, max(len(e.ids) for e in batch))
        ids = torch.full((bs, width), pad, dtype=torch.long)
        labels = torch.full((bs, width), IGNORE, dtype=torch.long)
        mask = torch.zeros((bs, width), dtype=torch.long)
        for i, e in enumerate(batch):
            n = min(width, len(e.ids))
            ids[i, :n] = torch.tensor(e.ids[:n])
            labels[i, :n] = torch.tensor(e.labels[:n])
            mask[i, :n] = 1
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        seconds.append(time.perf_counter() - t0)
        tokens.append(int(mask.sum()))
        labelled.append(int((labels != IGNORE).sum()))
        losses.append(float(loss.detach()))
    return {
        "steps": len(seconds),
        "step_s": seconds,
        "real_tokens_per_step": tokens,
        "padded_tokens_per_step": [bs * min(cfg.seq_len, max(len(examples[(s * bs + i) % len(examples)].ids) for i in range(bs))) for s in range(len(seconds))],
        "tokens_per_s": _rate(tokens, seconds),
        "labelled_tokens_per_s": _rate(labelled, seconds),
        "losses": losses,
    }


def bench_lora(model_path: str, corpus_dir: str | Path, cfg: TrainConfig, seed: int = 0) -> dict[str, Any]:
    """Training tokens/s of our loop vs the plain peft loop, same examples, same LoRA settings."""
    from ..backends.models import resolve_generator

    folder = str(resolve_generator(model_path))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    examples = lora_examples(corpus_dir, tok, cfg.seq_len, seed)
    data = packed_data(examples, cfg.seq_len)
    ref = plain(folder, examples, cfg, seed)
    our = ours(folder, data, cfg, seed)
    lengths = sorted(len(e.ids) for e in examples)
    from ..tuning.lora import token_shares

    labelled = sum(1 for row in data.labels for t in row if t != IGNORE)
    return {
        **token_shares({"n_tokens": len(data) * cfg.seq_len, "n_trained_tokens": labelled, "filler_tokens": data.stats["filler_tokens"]}),
        "ours": our,
        "plain": ref,
        "ratio": our["tokens_per_s"] / ref["tokens_per_s"],
        "labelled_ratio": our["labelled_tokens_per_s"] / max(ref["labelled_tokens_per_s"], 1e-9),
        "examples": len(examples),
        "example_tokens_median": lengths[len(lengths) // 2],
        "packed_blocks": len(data),
        "settings": {"steps": cfg.max_steps, "batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "rank": cfg.rank, "target_modules": list(cfg.target_modules)},
    }


def profile_training(model_path: str, corpus_dir: str | Path, cfg: TrainConfig, seed: int = 0, top: int = 12) -> dict[str, Any]:
    """torch.profiler top ops of our loop over two steps (model load and save included, they are small)."""
    from dataclasses import replace

    from transformers import AutoTokenizer

    from ..backends.models import resolve_generator
    from .profile import torch_top_ops

    folder = str(resolve_generator(model_path))
    data = packed_data(lora_examples(corpus_dir, AutoTokenizer.from_pretrained(folder), cfg.seq_len, seed), cfg.seq_len)
    short = replace(cfg, max_steps=2, checkpoint_every=0)
    t0 = time.perf_counter()
    ops = torch_top_ops(lambda: ours(folder, data, short, seed), top)
    return {"what": f"our LoRA loop, 2 steps of {cfg.batch_size}x{cfg.seq_len} tokens (profiled wall {time.perf_counter() - t0:.1f}s)", "top_ops": ops}
