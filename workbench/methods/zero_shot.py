"""zero-shot: the question alone, closed book."""

from __future__ import annotations

from ..types import Answer, Question
from . import prompts
from .prompt_strategy import PromptStrategy
from .registry import ZERO_SHOT, MethodContext


class ZeroShot(PromptStrategy):
    """Closed book: the question alone."""

    name = ZERO_SHOT

    def answer(self, questions: list[Question]) -> list[Answer]:
        """Answer each question with no context."""
        rendered = [self._render(prompts.zero_shot_messages(q.question, self.instruction, self.language)) for q in questions]
        return self._run(questions, rendered, [[] for _ in questions], [{} for _ in questions])


def make_zero_shot(ctx: MethodContext) -> ZeroShot:
    return ZeroShot(ctx.generator, **ctx.common)
