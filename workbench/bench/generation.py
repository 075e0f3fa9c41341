"""Bench: our batched evaluation generation vs a plain one-prompt-at-a-time ``model.generate`` loop.

Both paths get the same token ids (rendered with ``prompts``), the same greedy decoding and the
same ``max_new_tokens``; answers are post-processed identically so their agreement can be checked.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..backends.base import cut_at_stop
from ..backends.hf import HFGenerator as Generator
from ..methods import prompts

# A run's five methods as prompt kinds: lora asks like zero-shot, rag+lora like rag (the adapter aside).
EVAL_MIX = ("zero-shot", "few-shot", "rag", "zero-shot", "rag")


def build_prompts(corpus_dir: str | Path, generator: Generator, embedder: Any, n: int, kinds: tuple[str, ...] = EVAL_MIX, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, Any]]:
    """``n`` realistic rendered prompts from a corpus's held-out questions, dealt round-robin over ``kinds``.

    Returns prompts grouped by kind. ``rag`` prompts use the corpus's real (cached) index;
    ``few-shot`` the nearest train examples, as the strategies build them.
    """
    from ..config import build_config
    from ..corpus.load import load_corpus
    from ..methods.few_shot import FewShot, example_answer

    corpus = load_corpus(corpus_dir, seed=seed)
    cfg = build_config(str(corpus_dir), "quick", corpus_defaults=corpus.defaults)
    pool = corpus.test or corpus.questions
    questions = [pool[i % len(pool)] for i in range(n)]
    tok = generator.tok
    grouped: dict[str, list[str]] = {}
    info: dict[str, Any] = {"kinds": list(kinds), "n": n, "corpus": str(corpus_dir)}
    per_kind = [questions[i :: len(kinds)] for i in range(len(kinds))]
    for kind, qs in zip(kinds, per_kind, strict=True):
        if not qs:
            continue
        out = grouped.setdefault(kind, [])
        if kind == "rag":
            from ..retrieval.index import get_or_build_index

            index, idx_info = get_or_build_index(corpus.documents, cfg.split, cfg.index, embedder)
            info["index_chunks"] = idx_info["n_chunks"]
            hits = index.search_batch([q.question for q in qs], cfg.retrieval, embedder)
            out += [prompts.render(tok, prompts.rag_messages(q.question, [h.text for h in hs], corpus.instruction)) for q, hs in zip(qs, hits, strict=True)]
        elif kind == "few-shot":
            shots = FewShot(generator, corpus.train, cfg.few_shot, embedder=embedder, seed=seed).select(qs)
            out += [prompts.render(tok, prompts.few_shot_messages(q.question, [(e.question, example_answer(e)) for e in ex], corpus.instruction)) for q, ex in zip(qs, shots, strict=True)]
        elif kind == "zero-shot":
            out += [prompts.render(tok, prompts.zero_shot_messages(q.question, corpus.instruction)) for q in qs]
        else:
            raise ValueError(f"prompt kind {kind!r} is unknown; use rag, few-shot or zero-shot")
    for kind, group in grouped.items():
        lengths = [len(x) for x in generator.encode(group)]
        info[kind] = {"n": len(group), "prompt_tokens_mean": sum(lengths) / len(lengths), "prompt_tokens_min": min(lengths), "prompt_tokens_max": max(lengths)}
    return grouped, info


def plain_generate(generator: Generator, prompts_: list[str], max_new_tokens: int, stops: list[str]) -> tuple[list[str], list[float], int]:
    """The reference: one ``model.generate`` per prompt, greedy, as a plain transformers user writes it."""
    import torch

    model, tok = generator.model, generator.tok
    texts, times, n_tokens = [], [], 0
    for ids in generator.encode(prompts_):
        x = torch.tensor([ids], dtype=torch.long, device=generator.device)
        t0 = time.perf_counter()
        out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        times.append(time.perf_counter() - t0)
        new = out[0, x.shape[1] :]
        n_tokens += int(new.numel())
        texts.append(cut_at_stop(tok.decode(new, skip_special_tokens=True), stops)[0].strip())
    return texts, times, n_tokens


def _compare(generator: Generator, prompts_: list[str], max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    """Both paths on one group of prompts: wall seconds, per-prompt plain times, agreement."""
    from ..textnorm import normalize_answer

    stops = prompts.stop_strings(generator.tok)
    t0 = time.perf_counter()
    ours = generator.generate(prompts_, max_new_tokens, stop=stops, batch_size=batch_size)
    ours_s = time.perf_counter() - t0
    plain_texts, plain_times, plain_tokens = plain_generate(generator, prompts_, max_new_tokens, stops)
    plain_s = sum(plain_times)
    same = [normalize_answer(a.text) == normalize_answer(b) for a, b in zip(ours, plain_texts, strict=True)]
    return {
        "n": len(prompts_),
        "ours_s": ours_s,
        "plain_s": plain_s,
        "speedup": plain_s / ours_s,
        "agree": sum(same),
        "ours_output_tokens": sum(r.output_tokens for r in ours),
        "plain_generated_tokens": plain_tokens,
        "plain_per_prompt_s": plain_times,
        "disagreements": [{"ours": a.text, "plain": b} for a, b, ok in zip(ours, plain_texts, same, strict=True) if not ok][:3],
    }


def bench_generation(generator: Generator, grouped: dict[str, list[str]], max_new_tokens: int, batch_size: int, scaling_sizes: list[int]) -> dict[str, Any]:
    """Answers/s of ``Generator.generate`` (batched, bucketed) vs the plain loop per prompt kind, overall, and a scaling curve.

    Each kind is one generate call, as each method is in a run; the overall figure is total plain
    seconds over total batched seconds for the whole mix.
    """
    stops = prompts.stop_strings(generator.tok)
    first = next(iter(grouped.values()))
    generator.generate(first[:1], 2, stop=stops, batch_size=1)  # warm-up (first-call allocations)
    kinds = {kind: _compare(generator, group, max_new_tokens, batch_size) for kind, group in grouped.items()}
    n = sum(k["n"] for k in kinds.values())
    ours_s = sum(k["ours_s"] for k in kinds.values())
    plain_s = sum(k["plain_s"] for k in kinds.values())
    curve = []
    for size in sorted({k for k in scaling_sizes if 0 < k < n}):
        t, plain_t, count = 0.0, 0.0, 0
        for kind, group in grouped.items():
            m = max(1, round(size * len(group) / n))
            t0 = time.perf_counter()
            generator.generate(group[:m], max_new_tokens, stop=stops, batch_size=batch_size)
            t += time.perf_counter() - t0
            plain_t += sum(kinds[kind]["plain_per_prompt_s"][:m])
            count += m
        curve.append({"questions": count, "ours_s": t, "plain_s": plain_t})
    curve.append({"questions": n, "ours_s": ours_s, "plain_s": plain_s})
    return {
        "n_prompts": n,
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "ours_s": ours_s,
        "plain_s": plain_s,
        "ours_answers_per_s": n / ours_s,
        "plain_answers_per_s": n / plain_s,
        "speedup": plain_s / ours_s,
        "agreement": sum(k["agree"] for k in kinds.values()) / n,
        "by_kind": kinds,
        "scaling": curve,
    }


def prefill_split(generator: Generator, prompts_: list[str], batch_size: int) -> dict[str, float]:
    """Seconds of one prefill forward for a batch and for one prompt: how much of a batch is prompt compute."""
    import torch

    ids = generator.encode(prompts_[:batch_size])
    x, mask = generator._pad(ids)  # noqa: SLF001 - same padding as the evaluation path
    with torch.inference_mode():
        t0 = time.perf_counter()
        generator.model(input_ids=x, attention_mask=mask, logits_to_keep=1)
        batch_s = time.perf_counter() - t0
        one = torch.tensor([ids[0]], device=generator.device)
        t0 = time.perf_counter()
        generator.model(input_ids=one, logits_to_keep=1)
        single_s = time.perf_counter() - t0
    return {"batch_prefill_s": batch_s, "batch_rows": len(ids), "batch_padded_tokens": int(x.numel()), "batch_real_tokens": int(mask.sum()), "single_prefill_s": single_s, "single_tokens": len(ids[0])}


def profile_generation(generator: Generator, prompts_: list[str], max_new_tokens: int, batch_size: int, top: int = 12) -> dict[str, Any]:
    """torch.profiler top ops (self CPU time) of one batched generate, plus the prefill/decode split."""
    from .profile import torch_top_ops

    stops = prompts.stop_strings(generator.tok)
    batch = prompts_[:batch_size]
    t0 = time.perf_counter()
    ops = torch_top_ops(lambda: generator.generate(batch, max_new_tokens, stop=stops, batch_size=batch_size), top)
    wall = time.perf_counter() - t0
    return {"what": f"one generate batch of {len(batch)} prompts, {max_new_tokens} new tokens (profiled wall {wall:.1f}s)", "top_ops": ops, **prefill_split(generator, prompts_, batch_size)}
