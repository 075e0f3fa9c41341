"""The data that flows between stages: documents, questions, chunks, answers, and the Strategy protocol."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


@dataclass
class Document:
    doc_id: str  # path relative to docs/, posix style, e.g. "products/falcon.md"
    text: str
    path: str = ""  # absolute path of the source file
    meta: dict[str, Any] = field(default_factory=dict)  # format, title, pages...


@dataclass
class Question:
    id: str
    question: str
    answers: list[str]  # gold aliases; empty when unanswerable
    answerable: bool = True
    split: str = ""  # "train" | "test" ("" until split_questions assigns it)
    sources: list[str] = field(default_factory=list)  # doc_ids holding the answer
    meta: dict[str, Any] = field(default_factory=dict)  # type, plausible_answer, category, row...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Corpus:
    root: Path
    documents: list[Document]
    questions: list[Question]
    title: str = ""
    description: str = ""
    kind: str = "facts"  # "facts" | "behaviour"
    instruction: str = ""  # task instruction added to every prompt (behaviour corpora)
    language: str = "en"  # corpus.toml language (or detected from the questions): prompts, abstention reply, tokenizers
    defaults: dict[str, Any] = field(default_factory=dict)  # corpus.toml [defaults]
    twins: dict[str, Any] = field(default_factory=dict)  # twin questions grouped / withheld (twins.summary)

    def split(self, name: str) -> list[Question]:
        return [q for q in self.questions if q.split == name]

    @property
    def train(self) -> list[Question]:
        return self.split("train")

    @property
    def test(self) -> list[Question]:
        return self.split("test")


@dataclass
class Chunk:
    chunk_id: int  # position in the index
    doc_id: str
    text: str
    start: int  # character offsets into the document text
    end: int


@dataclass
class Retrieved:
    chunk_id: int
    doc_id: str
    text: str
    score: float
    rank: int  # 1-based

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    method: str
    question_id: str
    text: str
    contexts: list[dict[str, Any]] = field(default_factory=list)  # Retrieved.to_dict() or few-shot example ids
    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0  # amortised compute seconds for this answer (batch wall time / batch size)
    batch_wall_s: float = 0.0  # wall time of the batch it was answered in (what a user waits)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Strategy(Protocol):
    """One protocol for every method: questions in, answers out (batched)."""

    name: str

    def answer(self, questions: list[Question]) -> list[Answer]: ...
