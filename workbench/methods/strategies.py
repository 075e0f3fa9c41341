"""The five methods behind one Strategy protocol: questions in, answers out, all batched through a Generator.

zero-shot and lora ask the question alone; few-shot adds k solved train-split examples; rag and
rag+lora add the top-k retrieved chunks, numbered for citation. Prompts come from ``prompts`` so
they match the LoRA training data exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.answer_cache import AnswerCache
from ..backends.base import Generator, GenResult
from ..config import ABSTAIN_REPLY, FewShotConfig, GenerationConfig, RetrievalConfig, RunConfig
from ..errors import WorkbenchError
from ..storage import stable_hash
from ..textnorm import contains_tokens, normalize_answer
from ..types import Answer, Question, Retrieved, Strategy
from . import prompts
from .registry import FEW_SHOT, LORA, RAG, RAG_LORA, REGISTRY, ZERO_SHOT, MethodContext, method_spec


class StrategyError(WorkbenchError, ValueError):
    """A strategy cannot be built or used as asked; the message says what to do."""


class FewShotLeakError(StrategyError):
    """A held-out question would leak into (or be answered from) the few-shot pool."""


def default_cache() -> AnswerCache | None:
    """The shared answer cache, or None when WORKBENCH_NO_ANSWER_CACHE=1."""
    return None if os.environ.get("WORKBENCH_NO_ANSWER_CACHE") == "1" else AnswerCache()


def few_shot_leakage(pool: list[Question], held_out: list[Question], embedder: Any = None) -> dict[str, Any]:
    """The leakage guard over the few-shot pool (questions and the answers they teach); raises FewShotLeakError on a leak."""
    from ..tuning.leakage import check_leakage

    report = check_leakage([], held_out, embedder, questions=[q.question for q in pool], answers=[example_answer(q) for q in pool])
    report.raise_if_leaked(where="the few-shot pool", error=FewShotLeakError)
    return report.to_dict()


class _PromptStrategy:
    """Shared machinery: render messages, generate in batches, wrap the results as Answers."""

    name = ""

    def __init__(
        self,
        generator: Generator,
        instruction: str = "",
        gen_cfg: GenerationConfig | None = None,
        seed: int = 0,
        cache: AnswerCache | None = None,
    ):
        self.generator, self.instruction, self.seed, self.cache = generator, instruction, seed, cache
        self.gen_cfg = gen_cfg or GenerationConfig()

    def _render(self, messages: prompts.Messages) -> str:
        return self.generator.render(messages)

    def _fits(self, messages: prompts.Messages) -> tuple[str, int]:
        text = self._render(messages)
        return text, self.generator.count_tokens(text)

    def _run(
        self, questions: Sequence[Question], rendered: list[str], contexts: list[list[dict[str, Any]]], metas: list[dict[str, Any]]
    ) -> list[Answer]:
        g = self.gen_cfg
        results: list[GenResult] = self.generator.generate(
            rendered,
            g.max_new_tokens,
            temperature=g.temperature,
            seed=self.seed,
            stop=self.generator.stop_strings(),
            batch_size=g.batch_size,
            cache=self.cache,
        )
        return [
            Answer(
                self.name, q.id, r.text, ctx, r.prompt_tokens, r.output_tokens, r.latency_s, r.batch_wall_s, {**meta, "cached": r.cached}
            )
            for q, r, ctx, meta in zip(questions, results, contexts, metas, strict=True)
        ]


class ZeroShot(_PromptStrategy):
    """Closed book: the question alone."""

    name = ZERO_SHOT

    def answer(self, questions: list[Question]) -> list[Answer]:
        """Answer each question with no context."""
        rendered = [self._render(prompts.zero_shot_messages(q.question, self.instruction)) for q in questions]
        return self._run(questions, rendered, [[] for _ in questions], [{} for _ in questions])


class Lora(ZeroShot):
    """Closed book through a generator that carries the LoRA adapter."""

    name = LORA


def example_answer(q: Question) -> str:
    """What a pool question teaches: its first gold alias, or the abstention reply when unanswerable."""
    return q.answers[0] if q.answerable and q.answers else ABSTAIN_REPLY


def _unit_rows(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


class FewShot(_PromptStrategy):
    """k solved examples from the train split (seeded random, or nearest by embedding) before the question."""

    name = FEW_SHOT

    def __init__(
        self,
        generator: Generator,
        pool: list[Question],
        cfg: FewShotConfig | None = None,
        embedder: Any = None,
        seed: int = 0,
        instruction: str = "",
        gen_cfg: GenerationConfig | None = None,
        cache: AnswerCache | None = None,
    ):
        super().__init__(generator, instruction, gen_cfg, seed, cache)
        self.cfg = cfg or FewShotConfig()
        leaked = [q for q in pool if q.split != "train"]
        if leaked:
            q = leaked[0]
            raise FewShotLeakError(
                f"few-shot pool question {q.id!r} has split {q.split!r}; only train-split questions may be examples ({len(leaked)} such)"
            )
        if self.cfg.k > 0 and not pool:
            raise StrategyError(
                "few-shot needs train-split questions as examples and the pool is empty; mark some questions split=train or lower test_fraction"
            )
        if self.cfg.selection == "nearest" and self.cfg.k > 0 and embedder is None:
            raise StrategyError("few-shot selection 'nearest' needs an embedder; pass one or use selection 'random'")
        self.pool, self.embedder = list(pool), embedder
        self._pool_ids = {q.id for q in self.pool}
        self._pool_emb: np.ndarray | None = None

    def _pool_embeddings(self) -> np.ndarray:
        if self._pool_emb is None:
            self._pool_emb = _unit_rows(self.embedder.encode([q.question for q in self.pool]))
        return self._pool_emb

    def select(self, questions: Sequence[Question]) -> list[list[Question]]:
        """The examples for each question, least relevant first (the nearest sits next to the question)."""
        k = min(self.cfg.k, len(self.pool))
        if k == 0:
            return [[] for _ in questions]
        if self.cfg.selection == "random":
            out = []
            for q in questions:
                rng = np.random.default_rng(self.seed + int(stable_hash(q.id)[:8], 16))
                out.append([self.pool[i] for i in rng.choice(len(self.pool), size=k, replace=False)])
            return out
        sims = _unit_rows(self.embedder.encode([q.question for q in questions])) @ self._pool_embeddings().T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[self.pool[i] for i in row[::-1]] for row in top]

    def answer(self, questions: list[Question]) -> list[Answer]:
        """Answer each question after k examples; raises if a question is itself in the pool."""
        inside = [q.id for q in questions if q.id in self._pool_ids]
        if inside:
            raise FewShotLeakError(
                f"question {inside[0]!r} is in the few-shot pool; answer held-out questions only ({len(inside)} overlap)"
            )
        rendered, contexts = [], []
        for q, examples in zip(questions, self.select(questions), strict=True):
            while True:  # drop the least relevant examples until the prompt fits
                text, n = self._fits(
                    prompts.few_shot_messages(q.question, [(e.question, example_answer(e)) for e in examples], self.instruction)
                )
                if n <= self.gen_cfg.max_prompt_tokens or not examples:
                    break
                examples = examples[1:]
            rendered.append(text)
            contexts.append([{"example_id": e.id, "rank": len(examples) - i} for i, e in enumerate(examples)])
        return self._run(questions, rendered, contexts, [{"n_examples": len(c)} for c in contexts])


class Rag(_PromptStrategy):
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
    ):
        super().__init__(generator, instruction, gen_cfg, seed, cache)
        if index is None or not hasattr(index, "search_batch"):
            raise StrategyError(f"method {self.name} needs a retrieval index with search_batch(); build the index first")
        self.index, self.retrieval_cfg, self.embedder = index, retrieval_cfg or RetrievalConfig(), embedder

    def _prompt(self, question: str, hits: list[Retrieved]) -> tuple[str, list[Retrieved]]:
        """The rendered prompt within max_prompt_tokens: drop the lowest-ranked chunks, then cut the last one."""
        limit = self.gen_cfg.max_prompt_tokens
        hits = list(hits)
        while True:
            text, n = self._fits(prompts.rag_messages(question, [h.text for h in hits], self.instruction))
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


class RagLora(Rag):
    """Retrieval plus the LoRA adapter."""

    name = RAG_LORA


def make_zero_shot(ctx: MethodContext) -> ZeroShot:
    return ZeroShot(ctx.generator, **ctx.common)


def make_few_shot(ctx: MethodContext) -> FewShot:
    return FewShot(ctx.generator, list(ctx.pool), ctx.cfg.few_shot, embedder=ctx.embedder, **ctx.common)


def make_rag(ctx: MethodContext) -> Rag:
    return Rag(ctx.generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)


def make_lora(ctx: MethodContext) -> Lora:
    return Lora(ctx.adapter_generator, **ctx.common)


def make_rag_lora(ctx: MethodContext) -> RagLora:
    return RagLora(ctx.adapter_generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)


def make_strategy(
    method: str,
    *,
    generator: Generator,
    adapter_generator: Generator | None = None,
    index: Any = None,
    embedder: Any = None,
    pool: list[Question] | None = None,
    cfg: RunConfig,
    instruction: str = "",
    cache: AnswerCache | None | bool = True,
) -> Strategy:
    """The strategy for ``method`` (any registered method) built from a run's config; ``cache=True`` uses the shared answer cache."""
    if method not in REGISTRY:
        raise StrategyError(f"unknown method {method!r}; choose from {', '.join(REGISTRY)}")
    spec = method_spec(method)
    store = default_cache() if cache is True else (None if cache is False else cache)
    common = {"instruction": instruction, "gen_cfg": cfg.generation, "seed": cfg.seed, "cache": store}
    if spec.needs_adapter and adapter_generator is None:
        raise StrategyError(f"method {method} needs a generator carrying a LoRA adapter; train one first (workbench.tuning.lora)")
    ctx = MethodContext(generator, adapter_generator, index, embedder, list(pool or []), cfg, common)
    return spec.build(ctx)
