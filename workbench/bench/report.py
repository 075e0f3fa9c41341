"""The bench's figures against their targets, and the Markdown report of a bench result (pasted into README)."""

from __future__ import annotations

import math
from typing import Any

# name -> (comparison, threshold, what it means); from issue 9. Reported, never asserted.
TARGETS: dict[str, tuple[str, float, str]] = {
    "batched_vs_single_speedup": (">=", 4.0, "answers/s of batched evaluation over a one-prompt-at-a-time generate loop"),
    "lora_vs_plain_ratio": (">=", 1.0, "training tokens/s of our LoRA loop over a plain peft loop"),
    "embed_vs_raw_ratio": (">=", 0.95, "texts/s of Embedder.encode over raw SentenceTransformer.encode"),
    "retrieval_p50_ms_best": ("<", 5.0, "p50 ms per query at the largest size (100k chunks) with the best index, query embedding excluded"),
    "warm_rerun_s": ("<", 10.0, "wall seconds of an unchanged quick run (all caches warm)"),
    "cold_quick_s": ("<", 180.0, "wall seconds of a quick run from an empty cache, models already converted"),
    "prefill_roofline_fraction": (">=", 0.6, "FLOP/s of a batched RAG-prompt prefill (real tokens) over this machine's measured matrix-multiply peak on the model's projection shapes"),
    "train_roofline_fraction": (">=", 0.6, "FLOP/s of our LoRA training step over the same measured peak (FLOPs counted as in bench_roofline)"),
}


def finite(x: Any) -> bool:
    """A real, finite number (not a bool)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def summary_table(result: dict[str, Any]) -> str:
    """The headline figures as a Markdown table (for README and the terminal)."""
    lines = ["| figure | value | target | met |", "|---|---|---|---|"]
    for name, (op, threshold, _) in TARGETS.items():
        v = result["figures"].get(name)
        shown = f"{v:.3g}" if finite(v) else "n/a"
        met = result["met"].get(name)
        lines.append(f"| `{name}` | {shown} | {op} {threshold:g} | {'yes' if met else 'no' if met is False else 'n/a'} |")
    return "\n".join(lines)


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}g}" if finite(v) else "n/a"


def markdown_report(result: dict[str, Any]) -> str:
    """The headline table plus the detail behind each figure, as Markdown (pasted into README)."""
    raw, m = result["raw"], result["machine"]
    lines = [f"Measured {result.get('written', '')} on {m.get('cpu', '?')}, {m.get('cores_usable')} cores, {m.get('memory_gb')} GB, torch threads {m.get('torch_threads')}, "
             f"load average at start {', '.join(f'{x:.2f}' for x in m.get('load_avg_start', []))}{' (--quick)' if result.get('quick') else ''}.", "", summary_table(result), ""]
    g = raw.get("generation")
    if g:
        head = f"| generation (greedy, max_new_tokens {g['max_new_tokens']}, batch {g['batch_size']}) | prompts | mean prompt tokens | ours answers/s | plain answers/s | speedup |"
        lines += [head, "|---|---|---|---|---|---|"]
        for kind, k in g["by_kind"].items():
            tokens = g["prompts"].get(kind, {}).get("prompt_tokens_mean")
            lines.append(f"| {kind} | {k['n']} | {_fmt(tokens, 4)} | {_fmt(k['n'] / k['ours_s'])} | {_fmt(k['n'] / k['plain_s'])} | {_fmt(k['speedup'])} |")
        lines += [f"| **all (the five methods' mix)** | {g['n_prompts']} | | {_fmt(g['ours_answers_per_s'])} | {_fmt(g['plain_answers_per_s'])} | {_fmt(g['speedup'])} |", "", f"Same answer both ways: {g['agreement']:.0%}.", ""]
    rf = raw.get("roofline")
    if rf:
        pre, dec = rf["prefill"], rf["decode"]
        lines += [f"Roofline ({rf['dtype']}; FLOPs counted as in `workbench/bench_roofline.py`): matrix-multiply peak {_fmt(rf['peak_flops'] / 1e9)} GFLOP/s on the model's projection shapes, copy bandwidth {_fmt(rf['copy_bytes_per_s'] / 1e9)} GB/s.", "",
                  "| work | tokens/s | achieved | fraction of the limit |", "|---|---|---|---|"]
        for name in ("batch", "single"):
            p = pre[name]
            lines.append(f"| prefill, {p['rows']} RAG prompt(s), {p['real_tokens']} real tokens | {_fmt(p['tokens_per_s'])} | {_fmt(p['flops_per_s'] / 1e9)} GFLOP/s | {_fmt(p['roofline_fraction'])} of peak |")
        for key, v in dec.items():
            if key.startswith("batch_"):
                lines.append(f"| decode, batch {key.removeprefix('batch_')} | {_fmt(v['tokens_per_s'])} | {_fmt(v['weight_bytes_per_s'] / 1e9)} GB/s of weights | {_fmt(v['bandwidth_fraction'])} of copy bandwidth |")
        tr = (raw.get("lora") or {}).get("roofline")
        if tr:
            lines.append(f"| LoRA training (backprop through {tr['backprop_layers']} layers) | {_fmt(tr['tokens_per_s'])} | {_fmt(tr['flops_per_s'] / 1e9)} GFLOP/s | {_fmt(tr['roofline_fraction'])} of peak |")
        lines.append("")
    lo = raw.get("lora")
    if lo:
        def per_step(path: str) -> str:  # mean step seconds, warm-up step excluded
            steps = lo[path]["step_s"]
            return _fmt(sum(steps[1:]) / max(len(steps) - 1, 1))

        lines += [f"LoRA ({lo['settings']['batch_size']}x{lo['settings']['seq_len']}, r={lo['settings']['rank']}, {lo['settings']['steps']} steps each, first excluded): ours {_fmt(lo['ours']['tokens_per_s'])} tokens/s "
                  f"({per_step('ours')} s/step), plain peft {_fmt(lo['plain']['tokens_per_s'])} real tokens/s "
                  f"({per_step('plain')} s/step); labelled-token ratio {_fmt(lo['labelled_ratio'])}. Of our packed tokens {_fmt(100 * (lo.get('labelled_token_share') or 0))}% carry a label, "
                  f"{_fmt(100 * (lo.get('filler_token_share') or 0))}% are filler.", ""]
    w = raw.get("waste")
    if w:
        pre = w["prefix_reuse"]
        lines += [f"Shared prompt prefix prefilled once per call (greedy, max_new_tokens {pre['max_new_tokens']}, batch {pre['batch_size']}): x{_fmt(pre['speedup'])} in all, same answers {pre['same_answers']:.0%}.", "",
                  "| prompts | n | mean prompt tokens | shared prefix tokens | prefilled after | before s | after s | speedup | same answers |", "|---|---|---|---|---|---|---|---|---|"]
        for kind, k in pre["by_kind"].items():
            lines.append(f"| {kind} | {k['n']} | {_fmt(k['prompt_tokens_mean'], 4)} | {k['shared_prefix_tokens']} | {k['prefilled_share_after']:.0%} | {_fmt(k['before_s'])} | {_fmt(k['after_s'])} | {_fmt(k['speedup'])} | {k['same_answers']:.0%} |")
        lines += ["", "| packing (same examples) | examples | blocks before | blocks after | filler before | filler after |", "|---|---|---|---|---|---|"]
        for name, p in w["packing"].items():
            lines.append(f"| {name} | {p['examples']} | {p['before']['blocks']} | {p['after']['blocks']} | {p['before']['filler_share']:.1%} | {p['after']['filler_share']:.1%} |")
        lines.append("")
    e = raw.get("embedding")
    if e:
        lines += [f"Embedding {e['n_texts']} real chunks (mean {e['mean_chars']:.0f} chars): ours {_fmt(e['ours_texts_per_s'])} texts/s, raw sentence-transformers (same bf16 model) {_fmt(e['raw_texts_per_s'])}, naive fp32 load {_fmt(e['naive_fp32_texts_per_s'])}.", ""]
    r = raw.get("retrieval")
    if r:
        lines += ["| retrieval (synthetic clustered vectors, top-4) | p50 ms | p95 ms | p50 ms incl. query embedding | hit@4 | build s |", "|---|---|---|---|---|---|"]
        for size, row in r["sizes"].items():
            for kind, v in row.items():
                if isinstance(v, dict) and "p50_ms" in v:
                    lines.append(f"| {size} {kind} | {_fmt(v['p50_ms'])} | {_fmt(v['p95_ms'])} | {_fmt(v['incl_embedding']['p50_ms'])} | {_fmt(v.get('hit@4'))} | {_fmt(v.get('build_s'))} |")
        lines.append("")
    runs = raw.get("runs")
    if runs:
        for name in ("cold", "warm"):
            st = ", ".join(f"{k.removesuffix('_s')} {v:.1f}" for k, v in sorted(runs[name]["stages_s"].items(), key=lambda kv: -kv[1]))
            lines.append(f"{name} quick run: {runs[name]['wall_s']:.1f} s (stages, s: {st}).")
        found = runs["cold"].get("results") or {}
        if found.get("methods"):
            acc = ", ".join(f"{m} {_fmt(100 * (v.get('accuracy') or 0))}%" for m, v in found["methods"].items())
            lines.append(f"What the cold run measured (accuracy): {acc}; recommended: {found.get('recommendation')}.")
        probe = (found.get("train") or {}).get("train_split_probe") or {}
        if probe:
            lines.append(f"Its adapter on {probe.get('n')} taught train questions: base {_fmt(100 * probe['base_accuracy'])}% -> adapter {_fmt(100 * probe['adapter_accuracy'])}%.")
        lines.append("")
    return "\n".join(lines)
