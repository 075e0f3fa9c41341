"""Bench: work the pipeline no longer does, each measured before and after on the same inputs, in one run.

- shared prompt prefix: ``HFGenerator.generate`` with ``reuse_prefix`` off (every prompt prefilled whole, as
  before) and on, per prompt kind: closed-book questions (as zero-shot, lora, ia3 and the learning curve
  ask them), few-shot, RAG and the fact writer's prompts; answers compared;
- packing: blocks per epoch and filler tokens of the same training examples packed in order (before) and
  with first fit (now).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..backends.prefix_cache import common_prefix_length
from ..methods import prompts
from ..tuning.packing import Example, pack

ORDER = (False, True, True, False)  # reuse_prefix per timed call of one prompt group


def writer_prompts(corpus_dir: str | Path, generator: Any, n: int, seed: int = 0) -> list[str]:
    """The fact writer's first ``n`` rendered prompts for a corpus (as ``fact_qa.generate_fact_pairs`` asks them)."""
    from ..config import build_config
    from ..corpus.load import load_corpus
    from ..tuning.fact_qa import FACT_PROMPT, facts
    from ..tuning.lora_data import source_chunks

    corpus = load_corpus(corpus_dir, seed=seed)
    cfg = build_config(str(corpus_dir), "quick", corpus_defaults=corpus.defaults)
    chunks = source_chunks(corpus.documents, generator.tok, cfg.split, cfg.train.seq_len - 1)
    items = facts(chunks, 1)[:n]
    return [prompts.render(generator.tok, [{"role": "user", "content": FACT_PROMPT.format(answer=f.answer, title=f.title, sentence=f.sentence)}]) for f in items]


def _timed(generator: Any, group: list[str], max_new_tokens: int, batch_size: int, stops: list[str], reuse: bool) -> tuple[float, list[Any]]:
    generator.reuse_prefix = reuse
    try:
        t0 = time.perf_counter()
        out = generator.generate(group, max_new_tokens=max_new_tokens, batch_size=batch_size, stop=stops)
        return time.perf_counter() - t0, out
    finally:
        generator.reuse_prefix = True


def prefix_reuse(generator: Any, grouped: dict[str, list[str]], max_new_tokens: int, batch_size: int, stops: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Seconds per prompt kind with the shared prefix prefilled per prompt (before) and once per call (after), best of two each."""
    out: dict[str, Any] = {}
    before_total = after_total = 0.0
    same = total = 0
    for kind, group in grouped.items():
        if not group:
            continue
        ids = generator.encode(group)
        shared = common_prefix_length(ids)
        stop = (stops or {}).get(kind, [])
        seconds: dict[bool, list[float]] = {False: [], True: []}
        answers: dict[bool, list[Any]] = {}
        for reuse in ORDER:  # before, after, after, before: neither side gets the warm-up, best of two each
            secs, got = _timed(generator, group, max_new_tokens, batch_size, stop, reuse=reuse)
            seconds[reuse].append(secs)
            answers.setdefault(reuse, got)
        (before_s, before), (after_s, after) = (min(seconds[False]), answers[False]), (min(seconds[True]), answers[True])
        agree = sum(a.text == b.text for a, b in zip(before, after, strict=True))
        prompt_tokens = sum(len(x) for x in ids)
        out[kind] = {
            "n": len(group), "prompt_tokens_mean": prompt_tokens / len(group), "shared_prefix_tokens": shared,
            "prefilled_share_before": 1.0, "prefilled_share_after": (prompt_tokens - shared * (len(group) - 1)) / prompt_tokens,
            "before_s": before_s, "after_s": after_s, "before_runs_s": seconds[False], "after_runs_s": seconds[True], "speedup": before_s / after_s, "same_answers": agree / len(group),
            "output_tokens_mean": sum(r.output_tokens for r in after) / len(after),
        }  # fmt: skip
        before_total += before_s
        after_total += after_s
        same += agree
        total += len(group)
    return {"by_kind": out, "before_s": before_total, "after_s": after_total, "speedup": before_total / max(after_total, 1e-9), "same_answers": same / max(total, 1), "max_new_tokens": max_new_tokens, "batch_size": batch_size}


def packing(examples: list[Example], seq_len: int) -> dict[str, Any]:
    """Blocks and filler of the same examples packed in order (before) and with first fit (after)."""
    out: dict[str, Any] = {"examples": len(examples), "qa_examples": sum(not e.splittable for e in examples), "seq_len": seq_len}
    for name, first_fit in (("before", False), ("after", True)):
        blocks, _labels, filler = pack(examples, seq_len, first_fit=first_fit)
        out[name] = {"blocks": len(blocks), "filler_tokens": filler, "filler_share": filler / max(len(blocks) * seq_len, 1)}
    out["blocks_saved_share"] = 1 - out["after"]["blocks"] / max(out["before"]["blocks"], 1)
    return out

