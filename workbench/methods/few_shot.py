"""few-shot: k solved train-split examples in the prompt, drawn at random or nearest by embedding; guarded against held-out leaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.answer_cache import AnswerCache
from ..backends.base import Generator
from ..config import ABSTAIN_REPLY, FewShotConfig, GenerationConfig
from ..language import language as _language
from ..retrieval.embedding import unit_rows
from ..storage import stable_hash
from ..types import Answer, Question
from . import prompts
from .prompt_strategy import PromptStrategy, StrategyError
from .registry import FEW_SHOT, MethodContext


class FewShotLeakError(StrategyError):
    """A held-out question would leak into (or be answered from) the few-shot pool."""


def few_shot_leakage(pool: list[Question], held_out: list[Question], embedder: Any = None) -> dict[str, Any]:
    """The leakage guard over the few-shot pool (questions and the answers they teach); raises FewShotLeakError on a leak."""
    from ..tuning.leakage import check_leakage

    report = check_leakage([], held_out, embedder, questions=[q.question for q in pool], answers=[example_answer(q) for q in pool])
    report.raise_if_leaked(where="the few-shot pool", error=FewShotLeakError)
    return report.to_dict()


def example_answer(q: Question, language: str = "en") -> str:
    """What a pool question teaches: its first gold alias, or the abstention reply (in ``language``) when unanswerable."""
    if q.answerable and q.answers:
        return q.answers[0]
    return ABSTAIN_REPLY if language == "en" else _language(language).abstain_reply


class FewShot(PromptStrategy):
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
        language: str = "en",
    ):
        super().__init__(generator, instruction, gen_cfg, seed, cache, language)
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
            self._pool_emb = unit_rows(self.embedder.encode([q.question for q in self.pool]))
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
        sims = unit_rows(self.embedder.encode([q.question for q in questions])) @ self._pool_embeddings().T
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
                    prompts.few_shot_messages(
                        q.question, [(e.question, example_answer(e, self.language)) for e in examples], self.instruction, self.language
                    )
                )
                if n <= self.gen_cfg.max_prompt_tokens or not examples:
                    break
                examples = examples[1:]
            rendered.append(text)
            contexts.append([{"example_id": e.id, "rank": len(examples) - i} for i, e in enumerate(examples)])
        return self._run(questions, rendered, contexts, [{"n_examples": len(c)} for c in contexts])


def make_few_shot(ctx: MethodContext) -> FewShot:
    return FewShot(ctx.generator, list(ctx.pool), ctx.cfg.few_shot, embedder=ctx.embedder, **ctx.common)
