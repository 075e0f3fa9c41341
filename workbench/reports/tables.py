"""The report's tables as plain text rows, built once from a run's metrics and fed to every format (HTML, Markdown, PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench import fmt
from workbench.decision.recommend import BREAKDOWN_LABELS, BREAKDOWN_ORDER, recommend
from workbench.evaluation.scoring import METRIC_HELP
from workbench.methods.baselines import prior_flag_text
from workbench.methods.registry import LORA_TUNER, label, method_order
from workbench.tuning.specs import TUNER_LABELS

SAMPLE_QUESTIONS = 24


Table = tuple[list[str], list[list[str]]]


def method_names(run: dict) -> list[str]:
    """The run's methods in display order (the registry's order, then any other name)."""
    return sorted(run["metrics"]["methods"], key=method_order)


def recommendation_of(run: dict, override: dict | None) -> dict:
    """The recommendation to show: ``override``, else the stored one, decided again when missing or outdated."""
    rec = override or run["metrics"].get("recommendation")
    if not rec or "eligible" not in rec:  # none stored, or written before the quality floor existed: decide again
        inputs = (rec or {}).get("inputs") or {}
        rec = recommend(run["metrics"], inputs.get("criteria"), inputs.get("weights"))
    return rec


def verdict(rec: dict) -> tuple[str, list[str], list[str]]:
    """(title, reasons, caveats-or-advice) of a recommendation: the same words in every format."""
    if rec.get("best") is None:
        return "No recommendation: none of the measured methods is good enough", rec.get("reasons") or [], rec.get("advice") or []
    return f"Recommendation: {label(rec['best'])}", rec.get("reasons") or [], rec.get("caveats") or []


def best_label(rec: dict) -> str | None:
    """Display name of the recommended method, None when none is recommended."""
    return label(rec["best"]) if rec.get("best") else None


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _rate_ci(m: dict, key: str, ci_key: str) -> str:
    value = fmt.pct(m.get(key))
    ci = fmt.pct_ci(m.get(ci_key))
    return f"{value} {ci}" if ci else value


def run_when(run: dict) -> str:
    """When the run finished, as "YYYY-MM-DD HH:MM UTC"."""
    stamp = run["status"].get("updated") or run["meta"].get("written") or ""
    return stamp.replace("T", " ")[:16] + (" UTC" if stamp else "")


def run_title(run: dict) -> str:
    """The corpus title the report is headed with."""
    corpus = run["metrics"].get("corpus") or {}
    return str(corpus.get("title") or corpus.get("name") or Path(str(run["config"].get("corpus", ""))).name or "corpus")


def scoreboard(run: dict) -> Table:
    """One row per method: accuracy and hallucination with 95% intervals, quality, per-query latency, throughput, cost."""
    head = ["Method", "n", "Accuracy [95% CI]", "Hallucination [95% CI]", "Abstention", "EM", "F1",
            "Per-query p50 / p95 (probe n)", "Batched q/s", "Tokens in / out", "Weights (MB)", "USD / 1k queries", "USD / correct answer", "Build", "Versus prior"]
    rows = []
    for name in method_names(run):
        m = run["metrics"]["methods"][name]
        versus = "baseline" if m.get("baseline") else prior_flag_text(run["metrics"], name)
        rows.append([
            label(name) + (" (baseline)" if m.get("baseline") else ""), str(m.get("n", "")), _rate_ci(m, "accuracy", "accuracy_ci"),
            _rate_ci(m, "hallucination_rate", "hallucination_ci"), fmt.pct(m.get("abstention_rate")), fmt.pct(m.get("exact_match")), _num(m.get("f1")),
            f"{fmt.seconds(m.get('latency_p50_s'))} / {fmt.seconds(m.get('latency_p95_s'))} ({m.get('latency_probe_n', 'n/a')}"
            + (f", {m['latency_probe_reused']} timed by an earlier run" if m.get("latency_probe_reused") else "")
            + (f", {m['latency_probe_retimed']} outlier retimed" if m.get("latency_probe_retimed") else "") + ")",
            _num(m.get("throughput_qps")),
            f"{_num(m.get('prompt_tokens_mean'), '{:.0f}')} / {_num(m.get('output_tokens_mean'), '{:.0f}')}", _num(m.get("model_mb"), "{:,.0f}"),
            fmt.money(m.get("usd_per_1k_queries")), fmt.money(m.get("cost_per_correct_usd")), fmt.seconds(m.get("build_seconds")), versus,
        ])
    return head, rows


def eligibility_table(rec: dict) -> Table:
    """Every candidate: eligible or not after the quality floor, with the reasons, its monthly cost and cost per correct answer."""
    costs = rec.get("costs") or {}
    rows = []
    for r in rec["ranked"]:
        c = costs.get(r["method"]) or {}
        rows.append([label(r["method"]), "yes" if r.get("eligible") else "no", "; ".join(r.get("ineligible_because") or r.get("floor") or []),
                     fmt.money(c.get("total"), cents=True), fmt.money(c.get("per_correct"))])
    for name, b in (rec.get("baselines") or {}).items():
        rows.append([label(name), "baseline", f"reference only: {fmt.pct(b.get('accuracy'))} {fmt.pct_ci(b.get('accuracy_ci'))} accuracy", "", ""])
    return ["Method", "Eligible", "Quality floor", "USD / month", "USD / correct answer"], rows


def metric_notes(run: dict) -> list[str]:
    """What accuracy, EM and F1 mean (with the unanswerable convention), the baselines, and any baseline notes."""
    notes = [METRIC_HELP[k] for k in ("accuracy", "exact_match", "f1", "baselines")]
    return notes + list((run["metrics"].get("baselines") or {}).get("notes") or [])


def ranking(rec: dict) -> Table:
    """The recommendation's ranked methods with total score and the points from each criterion."""
    present = {k for r in rec["ranked"] for k in r["breakdown"]}
    keys = [k for k in BREAKDOWN_ORDER if k in present] + sorted(present - set(BREAKDOWN_ORDER))
    head = ["#", "Method", "Score"] + [BREAKDOWN_LABELS.get(k, k.replace("_", " ").capitalize()) for k in keys]
    rows = [[str(i + 1), label(r["method"]) + ("" if r.get("eligible", True) else " (not eligible)"), fmt.score(r["score"])]
            + [_num(r["breakdown"].get(k), "{:+.1f}") if r["breakdown"].get(k) is not None else "" for k in keys]
            for i, r in enumerate(rec["ranked"])]
    return head, rows


def decision_path(rec: dict) -> Table:
    """The decision questions, the team's answers and where each leads."""
    return ["Question", "Answer", "Leads to"], [[s["question"], str(s["answer"]), s["leads_to"]] for s in rec.get("decision_path", [])]


def _pairs(run: dict, kind: str) -> list[tuple[str, dict]]:
    def rank(pair: str) -> tuple:
        return tuple(method_order(m)[0] for m in pair.split("|")) + (pair,)

    return sorted(((run["metrics"].get("comparisons") or {}).get(kind) or {}).items(), key=lambda kv: rank(kv[0]))


def mcnemar_table(run: dict) -> Table:
    """Paired McNemar tests between methods (b, c = questions only one of the two got right)."""
    rows = []
    for pair, t in _pairs(run, "mcnemar"):
        a, _, b = pair.partition("|")
        p = t.get("p_value")
        verdict = "n/a" if p is None else ("significant" if p < 0.05 else "not significant")
        rows.append([f"{label(a)} vs {label(b)}", str(t.get("b", "")), str(t.get("c", "")), fmt.p_value(p, prefix=False), verdict])
    return ["Pair", "Only first right (b)", "Only second right (c)", "p-value", "At 5%"], rows


def break_even_table(run: dict) -> Table:
    """Query volume at which two methods cost the same in total."""
    rows = []
    for pair, b in _pairs(run, "break_even"):
        a, _, c = pair.partition("|")
        q = b.get("queries")
        rows.append([f"{label(a)} vs {label(c)}", "never (one is cheaper on both counts)" if q is None else f"{fmt.count(q)} queries",
                     label(b["cheaper_upfront"]) if b.get("cheaper_upfront") else "tie",
                     label(b["cheaper_per_query"]) if b.get("cheaper_per_query") else "tie"])
    return ["Pair", "Break-even", "Cheaper upfront", "Cheaper per query"], rows


def retrieval_table(run: dict) -> Table:
    """Retrieval quality on the held-out questions (recall@k, MRR)."""
    r = run["metrics"].get("retrieval") or {}
    keys = [k for k in ("recall@1", "recall@3", "recall@5", "recall@10", "mrr") if r.get(k) is not None]
    return ["Measure", "Value"], [[k, fmt.pct(r[k]) if k.startswith("recall") else f"{r[k]:.3f}"] for k in keys] + (
        [["questions", str(r["n_questions"])]] if r.get("n_questions") is not None else [])


TRAINING_ROWS = (("tuner", "Adapter type", None), ("trainable_params", "Trainable parameters", "{:,}"), ("artifact_mb", "Adapter size (MB)", "{:.2f}"),
                 ("train_seconds", "Training time (s)", "{:.1f}"), ("usd_build", "Build cost (USD)", None), ("steps", "Optimiser steps", "{}"),
                 ("tokens_per_s", "Tokens / s", "{:.0f}"), ("loss_first", "Loss (first step)", "{:.3f}"), ("final_loss", "Loss (last step)", "{:.3f}"),
                 ("picked_step", "Step used (dev pick)", "{}"))


def training_title(run: dict) -> str:
    """The training section's heading, naming the peft types trained: "Training (LoRA)", "Training (LoRA, IA3, prompt tuning)"."""
    tuned = (run["metrics"].get("train") or {}).get("methods") or {}
    kinds = [tuned[m].get("tuner") for m in sorted(tuned, key=method_order) if tuned[m].get("tuner")]
    kinds = list(dict.fromkeys(TUNER_LABELS.get(k, k) for k in kinds)) or [TUNER_LABELS[LORA_TUNER]]
    return f"Training ({', '.join(kinds)})"


def training_table(run: dict) -> Table:
    """Training of each tuned method side by side: adapter type, trainable parameters, size, time, cost, steps, loss, leakage.

    A run written before tuned methods were recorded one by one shows its one (LoRA) adapter as a Measure / Value table.
    """
    t = run["metrics"].get("train") or {}
    tuned = t.get("methods") or {}
    if not tuned:
        rows = []
        for key, name, pattern in TRAINING_ROWS:
            value = t.get(key) if key != "final_loss" else t.get("final_loss", t.get("loss_last"))
            if value is not None and pattern:
                rows.append([name, pattern.format(value)])
        if t.get("leakage"):
            rows.append(["Leakage guard", leakage_line(t["leakage"])])
        return ["Measure", "Value"], rows
    names = sorted(tuned, key=method_order)
    recipes = t.get("recipes") or {}
    rows = []
    for key, name, pattern in TRAINING_ROWS:
        cells = []
        for m in names:
            value = tuned[m].get(key)
            if key == "tuner":
                cells.append(f"{TUNER_LABELS.get(value, value or '')} ({tuned[m].get('recipe')} recipe{', reused from the cache' if tuned[m].get('cache_hit') else ''})")
            elif key == "usd_build":
                cells.append(fmt.money(value))
            else:
                cells.append("n/a" if value is None else pattern.format(value))
        if any(c != "n/a" for c in cells):
            rows.append([name, *cells])
    leakage = [leakage_line(x) if x else "n/a" for x in ((recipes.get(tuned[m].get("recipe")) or {}).get("leakage") or {} for m in names)]
    if any(x != "n/a" for x in leakage):  # the closed-book adapters share their data: one verdict, then "same as"
        rows.append(["Leakage guard", *[f"same as {label(names[leakage.index(x)])}" if leakage.index(x) < i else x for i, x in enumerate(leakage)]])
    return ["Measure", *[label(m) for m in names]], rows


def leakage_line(leakage: dict[str, Any]) -> str:
    """The leakage guard's verdict in words: what was compared, what was found, against which threshold."""
    verdict = "passed" if leakage.get("ok") else "FAILED"
    found = f"{leakage.get('n_exact', 0)} exact and {leakage.get('n_near', 0)} near-duplicate held-out questions"
    compared = f"{leakage.get('n_held_out', '?')} held-out against {leakage.get('n_compared_questions', '?')} training questions and {leakage.get('n_training_texts', '?')} training texts"
    cosine = leakage.get("max_cosine")
    near = f"; highest cosine {cosine:.3f} (near-duplicate from {leakage.get('threshold', '?')}, {leakage.get('embedder', '?')})" if isinstance(cosine, (int, float)) else ""
    return f"{verdict}: {found} ({compared}){near}"


SEEN_KEYS = (("documents_indexed", "documents indexed"), ("chunks_indexed", "chunks indexed"), ("few_shot_pool", "few-shot pool"),
             ("documents", "documents trained on"), ("chunks", "chunk passages (continued pre-training)"), ("generated_qa", "generated Q/A pairs (synthetic)"),
             ("train_qa", "train Q/A"), ("raft_examples", "RAFT examples"), ("dev_questions", "dev questions (checkpoint pick, not trained)"),
             ("generated_dropped_leak", "generated pairs dropped as held-out twins"), ("withheld_twins", "withheld twins"))


def seen_table(run: dict) -> Table:
    """What each method saw: documents indexed or trained on, Q/A used, synthetic pairs, few-shot pool, withheld twins."""
    seen = run["metrics"].get("seen") or {}
    rows = []
    for m in method_names(run):
        info = {**(seen.get(m) or {}), **((seen.get(m) or {}).get("train_data") or {})}
        parts = [f"{label_} {info[k]:,}" for k, label_ in SEEN_KEYS if isinstance(info.get(k), int) and (info[k] or k == "withheld_twins")]
        rows.append([label(m), "; ".join(parts) or "the question only"])
    return ["Method", "Saw"], rows


def curve_table(run: dict) -> Table:
    """Learning curve of the tuned methods: dev and held-out accuracy at points of the training budget."""
    rows = []
    curves = run["metrics"].get("learning_curve") or {}
    for m in sorted(curves, key=method_order):
        for p in curves[m]:
            rows.append([label(m), str(p.get("step")), _num(p.get("train_seconds"), "{:.0f}"), f"{fmt.pct(p['dev_accuracy'])} of {p.get('n_dev', 0)}" if p.get("dev_accuracy") is not None else "–",
                         f"{fmt.pct(p['held_out_accuracy'])} of {p.get('n_held_out', 0)}" if p.get("held_out_accuracy") is not None else "–",
                         "base model (reference)" if p.get("base") else ("picked" if p.get("picked") else "")])
    return ["Method", "Step", "Train s", "Dev accuracy", "Held-out accuracy (subset)", ""], rows


def settings_table(run: dict) -> Table:
    """The settings that shaped the numbers, from config.json."""
    c = run["config"]
    g = lambda section, key: (c.get(section) or {}).get(key, "")  # noqa: E731
    rows = [
        ["Model", str(c.get("model", ""))], ["Preset / seed", f"{c.get('preset', '')} / {c.get('seed', '')}"],
        ["Methods", ", ".join(label(m) for m in c.get("methods", []))],
        ["Chunking", f"{g('split', 'mode')} {g('split', 'chunk_size')} (overlap {g('split', 'chunk_overlap')})"],
        ["Retrieval", f"{g('retrieval', 'mode')}, top {g('retrieval', 'top_k')}, {g('index', 'embedder')} / {g('index', 'index_type')}"],
        ["Few-shot", f"k={g('few_shot', 'k')}, {g('few_shot', 'selection')}"],
        ["LoRA", f"r={g('train', 'rank')}, alpha={g('train', 'alpha')}, lr={g('train', 'learning_rate')}, steps={g('train', 'max_steps') or str(g('train', 'epochs')) + ' epochs'}"],
        *adapter_settings(run),
        ["Generation", f"max {g('generation', 'max_new_tokens')} new tokens, temperature {g('generation', 'temperature')}"],
        ["Evaluation", f"{g('eval', 'bootstrap_samples')} bootstrap samples, {fmt.money(run['metrics'].get('usd_per_hour', g('eval', 'usd_per_hour')))}/hour, "
                       f"latency probe of {g('eval', 'latency_probe_n')} questions answered one at a time per method (answer cache bypassed)"],
    ]
    rep = run["meta"].get("reproducibility") or {}
    if rep:
        rows.append(["Reproducibility", f"seed {rep.get('seed')}, {rep.get('decoding')}, batch size {rep.get('batch_size')}, {rep.get('dtype')} on "
                     f"{rep.get('device')}, {rep.get('torch_threads')} torch threads, CPU flags "
                     f"{', '.join((run['meta'].get('machine') or {}).get('cpu_flags') or []) or 'n/a'}. {rep.get('may_vary', '')}"])
    for key in ("corpus_fingerprint", "model_fingerprint"):
        if c.get(key):
            rows.append([key.replace("_", " ").capitalize(), str(c[key])[:16]])
    return ["Setting", "Value"], rows


def adapter_settings(run: dict) -> list[list[str]]:
    """A settings row for the tuned methods whose adapter is not LoRA (IA3, prompt tuning): their peft type and learning rate."""
    tuned = (run["metrics"].get("train") or {}).get("methods") or {}
    parts = []
    for m in sorted(tuned, key=method_order):
        t = tuned[m]
        if t.get("tuner") and t["tuner"] != LORA_TUNER:
            extra = f", {t['virtual_tokens']} virtual tokens" if t.get("virtual_tokens") else ""
            parts.append(f"{label(m)}: {TUNER_LABELS.get(t['tuner'], t['tuner'])}, lr={t.get('learning_rate')}{extra}")
    return [["Other adapters", "; ".join(parts)]] if parts else []


def sample_rows(run: dict, limit: int = SAMPLE_QUESTIONS) -> list[dict]:
    """Up to ``limit`` held-out questions with every method's answer; questions where methods disagree first."""
    by_q: dict[str, dict] = {}
    for r in run["predictions"]:
        q = by_q.setdefault(r["question_id"], {"id": r["question_id"], "question": r.get("question", ""), "gold": r.get("gold") or [],
                                               "answerable": r.get("answerable", True), "answers": {}})
        q["answers"][r["method"]] = r
    items = list(by_q.values())
    disagree = [q for q in items if len({bool(a.get("correct")) for a in q["answers"].values()}) > 1]
    rest = [q for q in items if q not in disagree]
    return (disagree + rest)[:limit]


def verdict_mark(row: dict | None) -> tuple[str, str]:
    """(CSS class, text) of one answer's verdict in the sample table."""
    if row is None:
        return "", "not run"
    if row.get("correct"):
        return "ok", "correct"
    if row.get("abstained"):
        return "abstain", "abstained"
    return "bad", "hallucinated" if row.get("hallucinated") else "wrong"
