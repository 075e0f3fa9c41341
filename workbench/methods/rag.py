"""rag: the top-k retrieved chunks, numbered for citation, within the prompt budget; citations read back from the reply."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..backends.answer_cache import AnswerCache
from ..backends.base import Generator
from ..config import ABSTAIN_REPLY, GenerationConfig, RetrievalConfig
from ..textnorm import contains_tokens, normalize_answer
from ..types import Answer, Question, Retrieved
from . import prompts
from .prompt_strategy import PromptStrategy, StrategyError
from .registry import RAG, MethodContext


class Rag(PromptStrategy):
    """Top-k retrieved chunks, numbered [1]..[k], then the question; meta["citations"] names the passages used."""

    name = RAG

    def __init__(
        self,
        generator: Generator,
        index: Any,
        retrieval_cfg: RetrievalConfig | None = None,
        embedder: Any = None,
        instruction: str = "",
        gen_cfg: GenerationConfig | None = None,
        seed: int = 0,
        cache: AnswerCache | None = None,
        language: str = "en",
    ):
        super().__init__(generator, instruction, gen_cfg, seed, cache, language)
        if index is None or not hasattr(index, "search_batch"):
            raise StrategyError(f"method {self.name} needs a retrieval index with search_batch(); build the index first")
        self.index, self.retrieval_cfg, self.embedder = index, retrieval_cfg or RetrievalConfig(), embedder

    def _prompt(self, question: str, hits: list[Retrieved]) -> tuple[str, list[Retrieved]]:
        """The rendered prompt within max_prompt_tokens: drop the lowest-ranked chunks, then cut the last one."""
        limit = self.gen_cfg.max_prompt_tokens
        hits = list(hits)
        while True:
            text, n = self._fits(prompts.rag_messages(question, [h.text for h in hits], self.instruction, self.language))
            if n <= limit or not hits:
                return text, hits
            if len(hits) > 1:
                hits.pop()
                continue
            keep = self.generator.text_tokens(hits[0].text) - (n - limit) - 8
            if keep < 16:
                return text, hits  # the question and instructions alone exceed the limit; generate() checks the model window
            h = hits[0]
            hits = [Retrieved(h.chunk_id, h.doc_id, self.generator.truncate(h.text, keep), h.score, h.rank)]

    def _hits(self, questions: list[Question]) -> list[list[Retrieved]]:
        return self.index.search_batch([q.question for q in questions], self.retrieval_cfg, self.embedder)

    def answer(self, questions: list[Question]) -> list[Answer]:
        """Retrieve for all questions in one batch, then answer from the numbered passages."""
        found = self._hits(questions)
        if len(found) != len(questions):
            raise StrategyError(f"index returned {len(found)} result lists for {len(questions)} questions")
        rendered, contexts, metas = [], [], []
        for q, hits in zip(questions, found, strict=True):
            text, used = self._prompt(q.question, hits)
            rendered.append(text)
            contexts.append([h.to_dict() for h in used])
            metas.append({"n_retrieved": len(hits), "n_used": len(used)})
        answers = self._run(questions, rendered, contexts, metas)
        for a in answers:
            a.meta["citations"], a.meta["citation_source"] = citations(a.text, [c["text"] for c in a.contexts])
        return answers


_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def citations(answer: str, passages: Sequence[str]) -> tuple[list[int], str]:
    """Passage numbers (1-based) behind an answer: the ones it cites as [n], else the ones containing it.

    The second value says which: "model" (cited in the text), "attributed" (the answer's words occur
    in those passages) or "none" (an abstention, or an answer found in no passage).
    """
    cited = sorted({int(n) for m in _CITE.findall(answer) for n in m.split(",") if 1 <= int(n) <= len(passages)})
    if cited:
        return cited, "model"
    bare = _CITE.sub("", answer).strip().rstrip(".")
    if not bare or normalize_answer(bare) == normalize_answer(ABSTAIN_REPLY):
        return [], "none"
    found = [i for i, p in enumerate(passages, 1) if contains_tokens(p, bare)]
    return found, "attributed" if found else "none"


def make_rag(ctx: MethodContext) -> Rag:
    return Rag(ctx.generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)
