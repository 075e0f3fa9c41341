"""Page 1 · Corpus: pick a bundled corpus or upload your own, check every file, preview documents, questions and the split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages.common import (
    check_corpus_cached,
    corpus_path,
    default_corpus,
    example_for_cached,
    example_glance,
    finished_runs,
    label,
    list_runs_cached,
    load_corpus_cached,
    load_run_cached,
    ordered,
    pct,
    runs_dir,
    safe_upload_name,
    show_error,
    uploads_dir,
)
from app_pages.textview import code_span, escape_markdown
from workbench import fmt
from workbench.config import METHODS, ConfigError, build_config
from workbench.corpus.loaders import SUPPORTED_SUFFIXES, CorpusError, DocumentError, load_document
from workbench.methods.registry import compared_methods, method_spec
from workbench.paths import bundled_corpora
from workbench.pipeline import jobs
from workbench.pipeline.estimate import estimate_run

MAX_FILE_MB = 50
MAX_SESSION_MB = 200
QUESTION_SUFFIXES = (".jsonl", ".csv")


# ------------------------------------------------------------------------------------------------ latest result / quick run


DEMO_METHODS = [m for m in compared_methods() if not method_spec(m).needs_adapter]  # minutes, not an adapter to train


def run_estimate(corpus: Path, preset: str, methods: list[str]) -> dict | None:
    """The cold-run estimate for a preset and methods on this corpus (None when it cannot be read)."""
    try:
        data = load_corpus_cached(corpus)
        cfg = build_config(str(corpus), preset, data.defaults, st.session_state.get("overrides") or {}, methods=methods, model=st.session_state["model"])
    except (CorpusError, ConfigError, OSError, TypeError):
        return None
    return estimate_run(cfg, n_docs=len(data.documents), n_train=len(data.train), n_test=len(data.test), kind=data.kind)


def start_quick_run(corpus: Path, preset: str = "quick", methods: list[str] | None = None) -> None:
    """Start a comparison in the background (the session's methods, every one by default) and go to Evaluate."""
    methods = methods or st.session_state.get("methods") or list(METHODS)
    try:
        job = jobs.start_run(
            corpus, methods=methods, preset=preset, model=st.session_state["model"], out_dir=runs_dir(), estimate=run_estimate(corpus, preset, methods)
        )
    except jobs.JobError as exc:
        show_error(exc, "Could not start the comparison")
        return
    st.session_state["active_run"] = str(job.job_dir)
    st.session_state["preset"] = preset
    st.session_state["methods"] = methods
    st.switch_page("app_pages/evaluate.py")


def latest_result(corpus: Path) -> None:
    """The newest finished run of this corpus, or a prominent button that starts one."""
    active = st.session_state.get("active_run")
    if not (active and jobs.job_status(active).get("state") == "running"):
        # a run of this corpus started before a page reload, or in another tab, or from the CLI
        running = [r for r in list_runs_cached(str(runs_dir())) if r["state"] == "running" and r["corpus"] == corpus.name]
        active = running[0]["dir"] if running else None
    if active:
        with st.container(border=True):
            st.markdown(f"#### :material/pending: A comparison of this corpus is running: {code_span(Path(active).name)}")
            if st.button("Follow it on Evaluate", icon=":material/play_circle:", key="follow-run"):
                st.session_state["active_run"] = str(active)
                st.switch_page("app_pages/evaluate.py")
        return
    runs = finished_runs(corpus.name)
    if not runs:
        with st.container(border=True):
            st.markdown("#### No comparison of this corpus yet")
            chosen = st.session_state.get("methods") or list(METHODS)
            quick, demo = run_estimate(corpus, "quick", chosen), run_estimate(corpus, "demo", DEMO_METHODS)
            st.write(
                f"The quick comparison answers a sample of held-out questions with {', '.join(label(m) for m in chosen)} "
                "on the local model, then scores accuracy, hallucination and cost. It runs in the background; you can keep exploring."
            )
            left, right = st.columns(2)
            if left.button(
                f"▶  Run the quick comparison ({fmt.duration(quick['total_s']) if quick else 'duration unknown'})", type="primary", key="quick-run"
            ):
                start_quick_run(corpus)
            if right.button(
                f"Live demo: zero-shot, few-shot and RAG on 12 questions ({fmt.duration(demo['total_s']) if demo else 'duration unknown'})",
                key="demo-run",
                help="For a presentation: done in minutes, but with 12 questions the 95% intervals are about ±25 points wide, and no adapter is trained.",
            ):
                start_quick_run(corpus, "demo", DEMO_METHODS)
            st.caption("Estimated for a cold run on this machine; cached indexes, adapters and answers make a run faster.")
        return
    row = runs[0]
    try:
        run = load_run_cached(row["dir"])
    except (OSError, ValueError) as exc:
        show_error(exc, f"Run {row['run_id']} could not be read")
        return
    metrics = run.get("metrics") or {}
    methods = metrics.get("methods") or {}
    with st.container(border=True):
        st.markdown(f"#### Latest comparison · {code_span(row['run_id'])}")
        summary = (metrics.get("recommendation") or {}).get("summary")
        if summary:
            st.success(escape_markdown(summary), icon=":material/recommend:")
        cols = st.columns(max(1, len(methods)))
        for col, name in zip(cols, ordered(methods), strict=False):
            m = methods[name]
            col.metric(
                label(name),
                pct(m.get("accuracy")),
                f"hallucination {pct(m.get('hallucination_rate'))}",
                delta_color="off",
                delta_arrow="off",
                border=True,
                help="Accuracy on answerable held-out questions; below it, the share of confident wrong answers.",
            )
        left, right = st.columns(2)
        left.page_link("app_pages/compare.py", label="Open the scoreboard and per-question answers", icon=":material/leaderboard:")
        if right.button("Run the quick comparison again", key="quick-run-again"):
            start_quick_run(corpus)


# ------------------------------------------------------------------------------------------------ choosing / uploading


def choose_bundled() -> None:
    bundled = {name: str(path) for name, path in bundled_corpora().items()}
    default = default_corpus()
    if default.is_dir() and str(default) not in bundled.values():
        bundled[default.name] = str(default)
    if not bundled:
        st.warning("No bundled corpus found under corpora/; upload your own instead.")
        return
    names = list(bundled)
    current = corpus_path()
    index = names.index(current.name) if current.name in names and bundled[current.name] == str(current) else 0
    name = st.selectbox(
        "Bundled corpus", names, index=index, key="corpus", bind="query-params", help="Corpora shipped with the workbench (folders under corpora/)."
    )
    st.session_state["corpus_path"] = bundled[name]


def _validate_doc(path: Path, docs_dir: Path) -> tuple[bool, str]:
    try:
        doc = load_document(path, docs_dir, max_bytes=MAX_FILE_MB * 1024 * 1024)
    except DocumentError as exc:
        return False, exc.reason
    return True, f"{len(doc.text):,} characters of {doc.meta.get('format', path.suffix.lstrip('.'))}"


def human_size(n: int) -> str:
    """1234 -> '1.2 KB'."""
    for unit in ("bytes", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MB"


def sync_uploads(files: list[Any], folder: Path) -> list[dict[str, Any]]:
    """Save uploaded documents into folder (removing ones no longer uploaded) and validate each: rows of (name, ok, message)."""
    folder.mkdir(parents=True, exist_ok=True)
    cache: dict[str, tuple[bool, str]] = st.session_state.setdefault("upload_checks", {})
    keep: set[str] = set()
    rows: list[dict[str, Any]] = []
    total = 0
    for f in files:
        name = safe_upload_name(f.name)
        size = f.size
        total += size
        target = folder / name
        key = f"{f.file_id}:{name}"
        if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
            rows.append({"name": f.name, "ok": False, "message": "unsupported file type; use .txt, .md, .pdf or .html", "size": size})
            continue
        if size > MAX_FILE_MB * 1024 * 1024 or total > MAX_SESSION_MB * 1024 * 1024:
            rows.append(
                {
                    "name": f.name,
                    "ok": False,
                    "message": f"over the upload limit ({MAX_FILE_MB} MB a file, {MAX_SESSION_MB} MB in all)",
                    "size": size,
                }
            )
            continue
        if key not in cache or not target.exists():
            target.write_bytes(f.getvalue())
            cache[key] = _validate_doc(target, folder)
        ok, message = cache[key]
        if ok:
            keep.add(name)
        rows.append({"name": f.name, "ok": ok, "message": message, "size": size})
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink()
    return rows


def sync_questions(upload: Any, root: Path) -> tuple[bool, list[str], int]:
    """Save the question file as root/questions.<ext> and validate it: (ok, problems, number of questions)."""
    from workbench.corpus.load import read_questions

    for name in ("questions.jsonl", "questions.csv", "questions.json"):
        (root / name).unlink(missing_ok=True)
    if upload is None:
        return False, [], 0
    suffix = Path(upload.name).suffix.lower()
    if suffix not in QUESTION_SUFFIXES:
        return False, [f"{upload.name}: unsupported question file; use .jsonl or .csv"], 0
    if upload.size > MAX_FILE_MB * 1024 * 1024:
        return False, [f"{upload.name}: over the {MAX_FILE_MB} MB limit"], 0
    (root / f"questions{suffix}").write_bytes(upload.getvalue())
    errors: list[CorpusError] = []
    try:
        questions, _ = read_questions(root, errors)
    except CorpusError as exc:
        return False, [str(exc)], 0
    problems = [f"line {e.line}: {e.reason}" if e.line else e.reason for e in errors]
    if not questions:
        problems.append("no valid question found; one JSON object a line with question and answers (or CSV columns question, answer)")
    return not errors and bool(questions), problems, len(questions)


def upload_corpus() -> None:
    st.caption(
        "Documents: .txt, .md, .pdf, .html (up to 50 MB each). Questions: .jsonl with id, question, answers[, answerable, split] "
        "or .csv with question, answer[, split] (aliases separated by |). Files stay in a folder private to this browser session."
    )
    name = st.text_input(
        "Corpus name", value="my_corpus", max_chars=60, key="upload-name",
        help="How runs, reports and the run history name this corpus (letters, digits, '-' and '_').",
    )
    root = uploads_dir() / (safe_upload_name(name.strip()).replace(".", "_") or "my_corpus")
    nonce = st.session_state.get("upload_nonce", 0)
    docs = st.file_uploader(
        "Documents", type=[s.lstrip(".") for s in SUPPORTED_SUFFIXES], accept_multiple_files=True, key=f"upload-docs-{nonce}"
    )
    rows = sync_uploads(list(docs or []), root / "docs")
    for row in rows:
        left, right = st.columns([2, 5])
        left.markdown(f":material/description: {code_span(row['name'])} · {human_size(row['size'])}")
        if row["ok"]:
            right.success(row["message"], icon=":material/check_circle:")
        else:
            right.error(escape_markdown(row["message"]), icon=":material/error:")
    qfile = st.file_uploader("Questions", type=[s.lstrip(".") for s in QUESTION_SUFFIXES], key=f"upload-questions-{nonce}")
    q_ok, problems, n_questions = sync_questions(qfile, root)
    if qfile is not None:
        left, right = st.columns([2, 5])
        left.markdown(f":material/quiz: {code_span(qfile.name)}")
        if q_ok:
            right.success(f"{n_questions} questions", icon=":material/check_circle:")
        else:
            right.error(
                "  \n".join(escape_markdown(p) for p in problems[:6])
                + (f"  \n… and {len(problems) - 6} more" if len(problems) > 6 else ""),
                icon=":material/error:",
            )
    n_ok = sum(r["ok"] for r in rows)
    ready = n_ok > 0 and q_ok
    left, right = st.columns([1, 1])
    if left.button(
        "Use the uploaded corpus",
        type="primary",
        disabled=not ready,
        help=None if ready else "Needs at least one readable document and a valid question file.",
    ):
        if not (root / "corpus.toml").exists():  # the title reports and pages show; the folder name names the runs
            (root / "corpus.toml").write_text(f"title = {json.dumps(name.strip() or root.name)}\n", encoding="utf-8")
        st.session_state["corpus_path"] = str(root)
        st.toast(f"Using your upload: {n_ok} documents, {n_questions} questions")
    if right.button("Clear uploads", disabled=not (rows or qfile)):
        shutil.rmtree(root, ignore_errors=True)
        st.session_state.pop("upload_checks", None)
        st.session_state["upload_nonce"] = nonce + 1
        if corpus_path() == root:
            st.session_state["corpus_path"] = str(default_corpus())
        st.rerun()


# ------------------------------------------------------------------------------------------------ preview


def check_panel(root: Path) -> None:
    """Every problem check_corpus finds (unreadable files, answers not in the documents, duplicates...), or a green line."""
    try:
        report = check_corpus_cached(root)
    except (CorpusError, OSError) as exc:
        show_error(exc, "Corpus check failed")
        return
    errors, warnings = report.errors, report.warnings
    if not errors and not warnings:
        st.success("Corpus check passed: every file is readable and every question is usable.", icon=":material/verified:")
        return
    text = f"Corpus check: {len(errors)} error(s), {len(warnings)} warning(s). Unreadable files are skipped; fix them to include them."
    (st.error if errors else st.warning)(text, icon=":material/error:" if errors else ":material/warning:")
    with st.expander(f"Show the {len(report.problems)} problem(s)"):
        frame = pd.DataFrame([{"severity": p.severity, "file": p.file, "line": p.line, "problem": p.message} for p in report.problems])
        st.dataframe(frame, hide_index=True, width="stretch")


def preview(corpus: Any) -> None:
    docs, questions = corpus.documents, corpus.questions
    train, test = corpus.train, corpus.test
    unans = sum(not q.answerable for q in questions)
    cols = st.columns(5)
    cols[0].metric("Documents", f"{len(docs):,}")
    cols[1].metric("Questions", f"{len(questions):,}")
    cols[2].metric("Train", f"{len(train):,}", help="Used for few-shot examples and LoRA training only.")
    cols[3].metric("Held-out", f"{len(test):,}", help="Never seen by training or few-shot; every method is scored on these.")
    cols[4].metric("Unanswerable", f"{unans:,}", help='Questions whose answer is not in the corpus: the right reply is "I don\'t know".')

    check_panel(corpus.root)
    tab_docs, tab_q, tab_split = st.tabs(["Documents", "Questions", "Train / held-out split"], key="corpus-tab", bind="query-params")
    with tab_docs:
        frame = pd.DataFrame(
            [
                {"document": d.doc_id, "format": d.meta.get("format", ""), "characters": len(d.text), "words": len(d.text.split())}
                for d in docs
            ]
        )
        st.dataframe(frame, hide_index=True, width="stretch", height=min(400, 38 + 35 * len(frame)))
        choice = st.selectbox("Preview a document", [d.doc_id for d in docs], key="doc-preview")
        doc = next((d for d in docs if d.doc_id == choice), None)
        if doc is not None:
            with st.container(height=320, border=True):
                st.text(doc.text[:20_000] + ("\n…" if len(doc.text) > 20_000 else ""))
    with tab_q:
        split = st.segmented_control("Show", ["all", "train", "held-out"], default="all", key="q-split", bind="query-params") or "all"
        shown = [q for q in questions if split == "all" or q.split == {"held-out": "test"}.get(split, split)]
        frame = pd.DataFrame(
            [
                {
                    "id": q.id,
                    "question": q.question,
                    "gold answers": " | ".join(q.answers) if q.answers else "(unanswerable)",
                    "answerable": q.answerable,
                    "split": "held-out" if q.split == "test" else q.split,
                    "type": str(q.meta.get("type", "")),
                }
                for q in shown
            ]
        )
        st.dataframe(frame, hide_index=True, width="stretch", height=400)
    with tab_split:
        st.write(
            "Questions marked `split` in the file keep it; the others are split by a seeded, stratified draw. "
            "Only held-out questions are scored, and none of them is ever used for few-shot examples or LoRA training."
        )
        table = pd.DataFrame(
            {
                "answerable": [sum(q.answerable for q in train), sum(q.answerable for q in test)],
                "unanswerable": [sum(not q.answerable for q in train), sum(not q.answerable for q in test)],
            },
            index=["train", "held-out"],
        )
        st.bar_chart(table, horizontal=True, height=180, stack=True)
        st.dataframe(table, width="content")


def main() -> None:
    st.title("Corpus")
    st.write("Choose the documents and questions to measure on. Every file is checked; problems are shown next to the file.")
    if not finished_runs(corpus_path().name):  # nothing of the user's own to show yet: the shipped example, at a glance
        example = example_for_cached(corpus_path().name)
        if example:
            example_glance(example)
    source = st.radio("Source", ["Bundled corpus", "Upload your own"], horizontal=True, label_visibility="collapsed", key="corpus-source")
    if source == "Bundled corpus":
        choose_bundled()
    else:
        with st.container(border=True):
            upload_corpus()

    path = corpus_path()
    try:
        corpus = load_corpus_cached(path)
    except (CorpusError, OSError) as exc:
        show_error(exc, "This corpus cannot be used")
        return
    st.divider()
    st.subheader(escape_markdown(corpus.title or path.name))
    kind = "facts (answers are looked up in the documents)" if corpus.kind == "facts" else "behaviour (answers are labels / a format)"
    st.caption(f"Selected corpus · {code_span(path)} · kind: {kind}")
    if corpus.description:
        st.markdown(escape_markdown(corpus.description))
    latest_result(path)
    preview(corpus)


main()
