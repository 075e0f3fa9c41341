"""What every prompting method shares: render messages, fit the prompt, generate in batches through the Generator, wrap the results as Answers."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..backends.answer_cache import AnswerCache
from ..backends.base import Generator, GenResult
from ..config import GenerationConfig
from ..errors import WorkbenchError
from ..types import Answer, Question
from . import prompts


class StrategyError(WorkbenchError, ValueError):
    """A strategy cannot be built or used as asked; the message says what to do."""


def default_cache() -> AnswerCache | None:
    """The shared answer cache, or None when WORKBENCH_NO_ANSWER_CACHE=1."""
    return None if os.environ.get("WORKBENCH_NO_ANSWER_CACHE") == "1" else AnswerCache()


class PromptStrategy:
    """Shared machinery: render messages, generate in batches, wrap the results as Answers."""

    name = ""

    def __init__(
        self,
        generator: Generator,
        instruction: str = "",
        gen_cfg: GenerationConfig | None = None,
        seed: int = 0,
        cache: AnswerCache | None = None,
        language: str = "en",
    ):
        self.generator, self.instruction, self.seed, self.cache = generator, instruction, seed, cache
        self.gen_cfg = gen_cfg or GenerationConfig()
        self.language = language  # the corpus's language: prompt wording and the abstention reply

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
