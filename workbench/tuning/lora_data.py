"""LoRA training data from the same corpus as the RAG index: chunks, train Q/A, synthetic Q/A, paraphrases.

Every part is switched by ``TrainConfig`` and counted in ``TrainingData.stats``. Examples end with
EOS and are packed into fixed ``seq_len`` blocks with no pad tokens: chunk text may run across a
block boundary (all its tokens are trained), a Q/A example never does (its prompt tokens stay -100
and a block's tail that cannot hold it is filled with its own prompt as untrained context).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SplitConfig, TrainConfig
from ..language import DEFAULT_LANGUAGE
from ..language import language as _language
from ..storage import atomic_write_json, stable_hash
from ..types import Corpus, Document, Question
from .packing import IGNORE, Example, LoraDataError, dialogue_example, pack, qa_example, text_example
from .raft_data import raft_examples
from .synthetic import paraphrase_chunks, synthetic_qa

DATA_VERSION = 4  # bump when the recipe changes so cached adapters are not reused
DIALOGUE_TURNS = 4  # generated Q/A pairs per training dialogue
PLAIN_PARTS = ("chunks", "paraphrases")  # document text, searched verbatim by the leakage guard
Progress = Callable[[str, float], None]


@dataclass
class TrainingData:
    input_ids: list[list[int]]  # packed blocks, each exactly seq_len tokens
    labels: list[list[int]]  # aligned with input_ids; -100 where no loss is taken
    stats: dict[str, Any]  # examples per part, n_tokens, n_trained_tokens, skipped, ...
    fingerprint: str  # hash of everything that produced the data (inputs and recipe)
    texts: list[str] = field(default_factory=list)  # training texts (leakage guard)
    questions: list[str] = field(default_factory=list)  # train + synthetic questions (leakage guard)
    answers: list[str] = field(default_factory=list)  # their trained answers, aligned with questions
    meta: list[dict[str, Any]] = field(default_factory=list)  # one row per example: part, id, synthetic

    def __len__(self) -> int:
        return len(self.input_ids)

    def tensors(self) -> tuple[Any, Any]:
        """(input_ids, labels) as LongTensors of shape (blocks, seq_len)."""
        import torch

        return torch.tensor(self.input_ids, dtype=torch.long), torch.tensor(self.labels, dtype=torch.long)

    def save(self, folder: str | Path) -> None:
        """Write the blocks (safetensors-free torch tensors) and the description next to an adapter."""
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        ids, labels = self.tensors()
        tmp = folder / "data.pt.tmp"
        torch.save({"input_ids": ids, "labels": labels}, tmp)
        tmp.replace(folder / "data.pt")
        atomic_write_json(folder / "data.json", {"stats": self.stats, "fingerprint": self.fingerprint, "texts": self.texts, "questions": self.questions, "answers": self.answers, "meta": self.meta})

    @classmethod
    def load(cls, folder: str | Path) -> TrainingData:
        """Read what ``save`` wrote (tensors only: ``weights_only=True``)."""
        import torch

        folder = Path(folder)
        blob = torch.load(folder / "data.pt", weights_only=True)
        desc = json.loads((folder / "data.json").read_text(encoding="utf-8"))
        return cls(blob["input_ids"].tolist(), blob["labels"].tolist(), desc["stats"], desc["fingerprint"], desc["texts"], desc["questions"], desc["answers"], desc["meta"])


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Identity of a tokenizer: vocabulary size, special tokens and chat template."""
    return stable_hash(len(tokenizer), tokenizer.eos_token_id, getattr(tokenizer, "chat_template", None) or "", type(tokenizer).__name__)


def data_fingerprint(corpus: Corpus, tokenizer: Any, cfg: TrainConfig, split_cfg: SplitConfig | None, seed: int) -> str:
    """Hash of the inputs and recipe of the data, computable before any (slow) generation."""
    docs = [(d.doc_id, stable_hash(d.text)) for d in corpus.documents] if (cfg.use_chunks or cfg.synthetic_qa or cfg.paraphrases or cfg.generated_qa) else []
    train = [(q.id, q.question, q.answers, q.answerable) for q in corpus.train] if cfg.use_qa else []
    keys = ("use_chunks", "use_qa", "synthetic_qa", "paraphrases", "seq_len", "generated_qa", "dev_fraction", "recipe")
    keys += ("raft_examples", "raft_distractors", "raft_gold_share", "raft_passage_tokens") if cfg.recipe == "raft" else ()
    recipe = {k: getattr(cfg, k) for k in keys}
    split = split_cfg.__dict__ if (split_cfg is not None and (cfg.synthetic_qa or cfg.paraphrases or cfg.generated_qa)) else None
    code = _language(corpus.language).code  # prompts and abstention reply; left out for English so its keys stay as they were
    lang = [code] if code != DEFAULT_LANGUAGE else []
    if lang and (cfg.generated_qa or cfg.recipe == "raft"):  # the free-form writer asks in that language: its prompt shapes the data
        from .corpus_qa import qa_prompt

        lang.append(qa_prompt(code))
    return stable_hash(DATA_VERSION, docs, train, recipe, split, corpus.instruction, tokenizer_fingerprint(tokenizer), seed, *lang)


def document_pieces(docs: list[Document], tokenizer: Any, max_tokens: int) -> list[tuple[str, str]]:
    """(doc_id, text) pieces of at most ``max_tokens`` tokens, in document order, no overlap (deterministic)."""
    pieces: list[tuple[str, str]] = []
    for doc in docs:
        if not doc.text.strip():
            continue
        enc = tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = enc["offset_mapping"]
        for i in range(0, len(offsets), max_tokens):
            window = offsets[i : i + max_tokens]
            start = window[0][0] if i else 0
            end = offsets[i + max_tokens][0] if i + max_tokens < len(offsets) else len(doc.text)
            text = doc.text[start:end]
            if text.strip():
                pieces.append((doc.doc_id, text))
    return pieces


def source_chunks(docs: list[Document], tokenizer: Any, split_cfg: SplitConfig | None, max_tokens: int) -> list[tuple[str, str]]:
    """Passages for synthetic Q/A and paraphrases: the RAG chunks when a recursive split is given."""
    if split_cfg is not None and split_cfg.mode == "recursive":
        from ..retrieval.chunking import split_documents

        return [(c.doc_id, c.text) for c in split_documents(docs, split_cfg) if c.text.strip()]
    return document_pieces(docs, tokenizer, max_tokens)


def dev_slice(corpus: Corpus, fraction: float, seed: int) -> list[Question]:
    """A seeded share of the answerable train Q/A kept out of training to pick the checkpoint (at most 24, at least 4 when on)."""
    pool = sorted((q for q in corpus.train if q.answerable and q.answers), key=lambda q: q.id)
    if fraction <= 0 or len(pool) < 10:
        return []
    random.Random(f"workbench-dev-{seed}").shuffle(pool)
    return pool[: min(24, max(4, round(len(pool) * fraction)))]


def generated_pairs(corpus: Corpus, tokenizer: Any, cfg: TrainConfig, split_cfg: SplitConfig | None, generator: Any, seed: int, progress: Progress | None) -> tuple[list[dict[str, Any]], list[tuple[str, str]], dict[str, Any]]:
    """(pairs, the chunks they came from, generation stats): ``cfg.generated_qa`` questions per sentence of every chunk (per chunk for non-English corpora), cached."""
    from .corpus_qa import generate_pairs
    from .fact_qa import generate_fact_pairs

    if generator is None:
        raise LoraDataError("generated Q/A needs the base model; pass generator= or set generated_qa to 0")
    chunks = source_chunks(corpus.documents, tokenizer, split_cfg, cfg.seq_len - 1)
    code = _language(corpus.language).code  # the same normalised code the data key is made with
    if code == DEFAULT_LANGUAGE:
        result = generate_fact_pairs(generator, chunks, cfg.generated_qa, seed, progress)
    else:  # answer spans are picked with English rules: other languages get the free-form writer, asked in their language
        result = generate_pairs(generator, chunks, cfg.generated_qa, seed, progress, language=code)
    return result["pairs"], chunks, {**result["stats"], "cache_hit": result["cache_hit"], "key": result["key"]}


def _drop_leaks(pairs: list[dict[str, Any]], held_out: list[Question] | None, embedder: Any) -> tuple[list[dict[str, Any]], int]:
    if not held_out or not pairs:
        return pairs, 0
    from .leakage import leaking_indices

    bad = set(leaking_indices([p["question"] for p in pairs], held_out, embedder, answers=[p["answer"] for p in pairs]))
    return [p for i, p in enumerate(pairs) if i not in bad], len(bad)


def build_training_data(
    corpus: Corpus,
    tokenizer: Any,
    cfg: TrainConfig,
    split_cfg: SplitConfig | None = None,
    seed: int = 0,
    model: Any = None,
    held_out: list[Question] | None = None,
    embedder: Any = None,
    progress: Progress | None = None,
    generator: Any = None,
) -> TrainingData:
    """Examples from the corpus as selected by ``cfg``, shuffled (seeded) and packed into blocks.

    ``model`` (the base model) is needed only for synthetic Q/A and paraphrases; synthetic questions
    that duplicate a ``held_out`` question are dropped (and counted) rather than trained on. Prompts and
    the abstention reply are the corpus's language's, as the strategies render them at evaluation.
    """
    spoken = _language(corpus.language)
    lang, abstain = spoken.code, spoken.abstain_reply
    examples: list[Example] = []
    stats: dict[str, Any] = {"examples": {"chunks": 0, "qa": 0, "synthetic_qa": 0, "paraphrases": 0, "generated_qa": 0, "raft": 0}, "skipped_too_long": 0, "seq_len": cfg.seq_len, "recipe": cfg.recipe}
    if (cfg.generated_qa or cfg.recipe == "raft") and generator is None and model is not None:
        from ..backends.hf import HFGenerator as Generator

        generator = Generator(model, tokenizer)
    dev_ids = {q.id for q in dev_slice(corpus, cfg.dev_fraction, seed)}
    stats["dev_questions"] = len(dev_ids)
    if cfg.recipe == "raft":
        pairs, chunks, stats["generation"] = generated_pairs(corpus, tokenizer, cfg, split_cfg, generator, seed, progress)
        pairs, stats["generated_dropped_leak"] = _drop_leaks(pairs, held_out, embedder)
        examples += raft_examples(tokenizer, pairs, chunks, cfg, corpus.instruction, seed, lang)
        stats["raft_with_gold"] = sum(ex.meta["gold_in_passages"] for ex in examples)
        stats["raft_abstain"] = sum(ex.meta["abstain"] for ex in examples)
        return _finish(examples, stats, corpus, tokenizer, cfg, split_cfg, seed)
    if cfg.use_chunks:
        for doc_id, text in document_pieces(corpus.documents, tokenizer, cfg.seq_len - 1):
            examples.append(text_example(tokenizer, text, "chunks", {"doc_id": doc_id}))
    if cfg.use_qa:
        for q in corpus.train:
            if q.id in dev_ids:
                continue
            answer = q.answers[0] if (q.answerable and q.answers) else abstain
            examples.append(qa_example(tokenizer, q.question, answer, corpus.instruction, "qa", {"id": q.id, "answerable": q.answerable}, lang))
    if cfg.synthetic_qa or cfg.paraphrases:
        if model is None:
            raise LoraDataError("synthetic Q/A and paraphrases need the base model; pass model= or set synthetic_qa and paraphrases to 0")
        chunks = source_chunks(corpus.documents, tokenizer, split_cfg, cfg.seq_len - 1)
        if cfg.synthetic_qa:
            pairs, rejected = synthetic_qa(model, tokenizer, chunks, cfg.synthetic_qa, seed, progress)
            stats["synthetic_rejected"] = rejected
            if held_out:
                from .leakage import leaking_indices

                bad = set(leaking_indices([q for q, _, _ in pairs], held_out, embedder, answers=[a for _, a, _ in pairs]))
                stats["synthetic_dropped_leak"] = len(bad)
                pairs = [p for i, p in enumerate(pairs) if i not in bad]
            for q, a, doc_id in pairs:
                examples.append(qa_example(tokenizer, q, a, corpus.instruction, "synthetic_qa", {"doc_id": doc_id, "synthetic": True}, lang))
        if cfg.paraphrases:
            rewrites, stats["paraphrases_rejected"] = paraphrase_chunks(model, tokenizer, chunks, cfg.paraphrases, seed, progress)
            for doc_id, text in rewrites:
                examples.append(text_example(tokenizer, text, "paraphrases", {"doc_id": doc_id, "synthetic": True}))
    if cfg.generated_qa:
        pairs, _chunks, stats["generation"] = generated_pairs(corpus, tokenizer, cfg, split_cfg, generator, seed, progress)
        pairs, stats["generated_dropped_leak"] = _drop_leaks(pairs, held_out, embedder)
        order = list(range(len(pairs)))
        random.Random(f"workbench-dialogues-{seed}").shuffle(order)  # mix chunks: no turn answers from an earlier one
        turns: list[dict[str, Any]] = []
        for i in order + [-1]:
            if i >= 0:
                candidate = turns + [pairs[i]]
                ex = dialogue_example(tokenizer, [(p["question"], p["answer"]) for p in candidate], corpus.instruction, "generated_qa", {}, language=lang)
                if len(candidate) <= DIALOGUE_TURNS and (len(ex.ids) <= cfg.seq_len or not turns):
                    turns = candidate
                    continue
            if turns:  # the dialogue is full (turns or seq_len): emit it, start the next with this pair
                examples.append(dialogue_example(tokenizer, [(p["question"], p["answer"]) for p in turns], corpus.instruction, "generated_qa", {"synthetic": True, "doc_ids": [p["doc_id"] for p in turns]}, language=lang))
            turns = [pairs[i]] if i >= 0 else []
    return _finish(examples, stats, corpus, tokenizer, cfg, split_cfg, seed)


def _finish(examples: list[Example], stats: dict[str, Any], corpus: Corpus, tokenizer: Any, cfg: TrainConfig, split_cfg: SplitConfig | None, seed: int) -> TrainingData:
    kept = []
    for ex in examples:
        if not ex.splittable and len(ex.ids) > cfg.seq_len:
            stats["skipped_too_long"] += 1
            continue
        stats["examples"][ex.part] += len(ex.meta.get("pairs", [])) or 1
        kept.append(ex)
    if not kept:
        raise LoraDataError(f"corpus {corpus.root}: no LoRA training examples (enabled parts: {_enabled(cfg)}; {len(corpus.train)} train questions, {len(corpus.documents)} documents); add data or enable another part")
    random.Random(seed).shuffle(kept)
    ids, labels, filler = pack(kept, cfg.seq_len)
    stats.update(
        blocks=len(ids),
        n_tokens=len(ids) * cfg.seq_len,
        n_trained_tokens=sum(1 for row in labels for t in row if t != IGNORE),
        filler_tokens=filler,
        content_hash=stable_hash(ids, labels),
    )
    return TrainingData(
        ids,
        labels,
        stats,
        data_fingerprint(corpus, tokenizer, cfg, split_cfg, seed),
        texts=[ex.text for ex in kept],
        questions=[q for ex in kept for q, _ in _pairs_of(ex)],
        answers=[a for ex in kept for _, a in _pairs_of(ex)],
        meta=[{"part": ex.part, **ex.meta} for ex in kept],
    )


def _pairs_of(ex: Example) -> list[tuple[str, str]]:
    """Every (question, trained answer) an example holds: one, or each turn of a dialogue."""
    if ex.meta.get("pairs"):
        return [(q, a) for q, a in ex.meta["pairs"]]
    return [(ex.question, ex.answer)] if ex.question else []


def _enabled(cfg: TrainConfig) -> str:
    parts = [name for name, on in (("chunks", cfg.use_chunks), ("qa", cfg.use_qa), ("synthetic_qa", cfg.synthetic_qa), ("paraphrases", cfg.paraphrases), ("generated_qa", cfg.generated_qa)) if on]
    return ", ".join(parts) or "none"
