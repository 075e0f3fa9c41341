"""Workbench web app: RAG vs LoRA vs few-shot, measured on your own corpus. Run with `streamlit run app.py`.

The entrypoint only sets up the page, per-session state and navigation; each page lives in app_pages/
and calls into the workbench library. Long work runs in background processes (workbench.jobs).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from app_pages.common import corpus_path, init_session, label  # noqa: E402
from app_pages.textview import code_span, escape_markdown  # noqa: E402

st.set_page_config(page_title="Workbench · RAG vs LoRA vs few-shot", page_icon="⚖️", layout="wide", initial_sidebar_state="expanded")
init_session()

PAGES = {
    "Data": [
        st.Page("app_pages/corpus.py", title="Corpus", icon=":material/folder_open:", default=True),
        st.Page("app_pages/build.py", title="Build", icon=":material/construction:"),
    ],
    "Measure": [
        st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/play_circle:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/leaderboard:"),
        st.Page("app_pages/sweeps.py", title="Sweeps", icon=":material/grid_view:"),
    ],
    "Decide & share": [
        st.Page("app_pages/decide.py", title="Decide", icon=":material/balance:"),
        st.Page("app_pages/runs.py", title="Runs & export", icon=":material/history:"),
    ],
}
page = st.navigation(PAGES)

try:
    page.run()
except Exception as exc:  # noqa: BLE001 - last resort: one line for the user, the traceback in the server log
    logging.getLogger("workbench.app").exception("page %s failed", page.title)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    st.error(f"Unexpected error on this page: {escape_markdown(first)}. The details are in the server log.", icon=":material/error:")

# after the page, so the sidebar shows the corpus, model and methods the page has just chosen (not the previous ones)
with st.sidebar:
    st.markdown("### ⚖️ Workbench")
    st.caption("Should your team use RAG, a LoRA fine-tune or few-shot prompting? Measure all three on your own questions.")
    st.markdown(f"**Corpus:** {code_span(corpus_path().name)}  \n**Model:** {code_span(Path(st.session_state['model']).name)}")
    active = st.session_state.get("active_run")
    if active:
        from workbench.pipeline.jobs import job_status

        state = job_status(active).get("state", "")
        st.caption(f"Latest comparison started here: **{state}**")
    st.caption("Methods: " + ", ".join(label(m) for m in st.session_state["methods"]))
