"""A deterministic stand-in for ``Generator``: replies come from a question -> answer table, not a model.

Registered in conftest as the backend ``lookup``, so ``model="lookup:/path/table.json"`` runs the real
pipeline (strategies, retrieval, prompts, scoring, aggregation, decision, reports) with replies known in
advance, and a test can assert exact metrics.

Table (JSON): ``{"<question>": {"closed_book": "<reply>", "open_book": "<reply>"}}``. The prompt's
question is the table question that ends last in the rendered prompt (the final user turn). The reply
is ``open_book`` when that text occurs in the prompt before the question (a retrieved passage or a
few-shot example put it there), else ``closed_book`` (default: the abstention reply). A plain string
value is the closed-book reply. A prompt with no table question is an error, never a silent answer.

Timings are simulated and deterministic: SECONDS_PER_TOKEN per prompt token, DECODE_FACTOR times that
per reply token, so longer prompts cost more as on a real model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.backends.base import GenerationError, GenResult, cut_at_stop
from workbench.backends.hf import TokenizerChat
from workbench.config import ABSTAIN_REPLY
from workbench.storage import stable_hash

SECONDS_PER_TOKEN = 0.001
DECODE_FACTOR = 20


class LookupGenerator(TokenizerChat):
    """The Generator interface the strategies and the pipeline use (tok, count_tokens, generate, fingerprint)."""

    def __init__(self, table: dict[str, Any], tokenizer: Any, name: str = "lookup"):
        if not table:
            raise GenerationError("lookup table is empty; give at least one question")
        self.table = {q: ({"closed_book": v} if isinstance(v, str) else dict(v)) for q, v in table.items()}
        self.tok, self.name, self.adapter = tokenizer, name, ""
        self.model = None  # no weights: methods that train an adapter cannot use this backend
        self.judge_cache = None
        self.fingerprint = stable_hash("lookup", self.table, len(tokenizer), getattr(tokenizer, "chat_template", None) or "")

    @classmethod
    def from_file(cls, path: str | Path, tokenizer: Any) -> LookupGenerator:
        path = Path(path)
        return cls(json.loads(path.read_text(encoding="utf-8")), tokenizer, name=f"lookup:{path.name}")

    @property
    def tokenizer(self) -> Any:
        return self.tok

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        return self.tok(list(prompts), add_special_tokens=False)["input_ids"] if prompts else []

    def count_tokens(self, text: str) -> int:
        return len(self.encode([text])[0])

    def reply(self, prompt: str) -> str:
        """The table's reply to the question the prompt asks."""
        found = [(prompt.rfind(q) + len(q), len(q), q) for q in self.table if q in prompt]
        if not found:
            raise GenerationError(f"lookup table has no question that occurs in the prompt ending {prompt[-120:]!r}")
        end, _, question = max(found)
        entry = self.table[question]
        before = prompt[: end - len(question)]
        if entry.get("open_book") and entry["open_book"] in before:
            return entry["open_book"]
        return entry.get("closed_book", ABSTAIN_REPLY)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
        batch_size: int = 16,
        progress: Any = None,
        cache: Any = None,
    ) -> list[GenResult]:
        """Replies in input order, cut to ``max_new_tokens`` tokens and at stop strings; cached ones are served."""
        if max_new_tokens < 1 or batch_size < 1:
            raise GenerationError("max_new_tokens and batch_size must be at least 1")
        stops = [s for s in (stop or []) if s]
        keys = [stable_hash(self.fingerprint, p, max_new_tokens, float(temperature), seed, stops) for p in prompts] if cache is not None else []
        results: list[GenResult | None] = list(cache.get_many(keys)) if cache is not None else [None] * len(prompts)
        todo = [i for i, r in enumerate(results) if r is None]
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            made = []
            for i in batch:
                ids = self.tok(self.reply(prompts[i]), add_special_tokens=False)["input_ids"][:max_new_tokens]
                text, _ = cut_at_stop(self.tok.decode(ids, skip_special_tokens=True), stops)
                n_prompt = self.count_tokens(prompts[i])
                made.append((i, text.strip(), n_prompt, len(ids), SECONDS_PER_TOKEN * (n_prompt + DECODE_FACTOR * len(ids))))
            wall = sum(m[4] for m in made)
            for i, text, n_prompt, n_out, latency in made:
                results[i] = GenResult(text, n_prompt, n_out, latency, wall)
            if cache is not None:
                cache.put_many([(keys[i], results[i]) for i, *_ in made])
        return [r for r in results if r is not None]

    def with_adapter(self, adapter_dir: str | Path) -> LookupGenerator:
        raise GenerationError("the lookup backend has no weights to carry an adapter; use a real model for tuned methods")

    def score_yes(self, prompts: Sequence[str], batch_size: int = 8) -> list[float]:
        raise GenerationError("the lookup backend has no yes/no judge; set eval.groundedness = false")


def register_in_worker() -> None:
    """In another process (a Ray worker, a CLI subprocess): register the backend ``lookup`` as conftest does on import."""
    import conftest  # noqa: F401 - importing it registers "lookup"
