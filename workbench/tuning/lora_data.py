"""LoRA training data from the same corpus as the RAG index: chunks, train Q/A, synthetic Q/A, paraphrases.

Every part is switched by ``TrainConfig`` and counted in ``TrainingData.stats``. Examples end with
EOS and are packed into fixed ``seq_len`` blocks with no pad tokens: chunk text may run across a
block boundary (all its tokens are trained), a Q/A example never does (its prompt tokens stay -100
and a block's tail that cannot hold it is filled with its own prompt as untrained context).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ABSTAIN_REPLY, SplitConfig, TrainConfig
from ..errors import WorkbenchError
from ..methods import prompts
from ..storage import atomic_write_json, stable_hash
from ..textnorm import contains_tokens, normalize_answer
from ..types import Corpus, Document, Question

DATA_VERSION = 2  # bump when the recipe changes so cached adapters are not reused
IGNORE = -100
DIALOGUE_TURNS = 4  # generated Q/A pairs per training dialogue
PLAIN_PARTS = ("chunks", "paraphrases")  # document text, searched verbatim by the leakage guard
Progress = Callable[[str, float], None]

SYNTH_PROMPT = (
    "Read the passage and write one question that the passage answers, then its short answer "
    "(a few words copied from the passage).\nReply in exactly this format:\nQuestion: ...\nAnswer: ...\n\nPassage:\n{passage}"
)
PARAPHRASE_PROMPT = "Rewrite the passage in different words. Keep every fact, name, date and number.\n\nPassage:\n{passage}"


class LoraDataError(WorkbenchError, ValueError):
    """The training data cannot be built; the message says what to change."""


@dataclass
class Example:
    part: str  # "chunks" | "qa" | "synthetic_qa" | "paraphrases"
    ids: list[int]
    labels: list[int]
    text: str  # what the model reads, for the leakage guard
    splittable: bool  # plain text may be cut across blocks; Q/A may not
    question: str = ""  # the question of a Q/A example (near-duplicate leakage check)
    answer: str = ""  # its trained answer
    meta: dict[str, Any] = field(default_factory=dict)


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
    return stable_hash(DATA_VERSION, docs, train, recipe, split, corpus.instruction, tokenizer_fingerprint(tokenizer), seed)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _eos(tokenizer: Any) -> int:
    eos = tokenizer.eos_token_id
    if eos is None:
        raise LoraDataError("the tokenizer has no EOS token; packing needs one to separate examples")
    return int(eos)


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


def text_example(tokenizer: Any, text: str, part: str, meta: dict[str, Any]) -> Example:
    """Causal-LM example: every token (and the closing EOS) is trained."""
    ids = _encode(tokenizer, text) + [_eos(tokenizer)]
    return Example(part, ids, list(ids), text, True, meta=meta)


def qa_example(tokenizer: Any, question: str, answer: str, instruction: str, part: str, meta: dict[str, Any]) -> Example:
    """SFT example rendered exactly like the `lora` strategy's prompt; loss on the answer tokens only."""
    messages = prompts.zero_shot_messages(question, instruction)
    prompt = prompts.render(tokenizer, messages)
    full = prompts.render(tokenizer, messages, answer=answer)
    if not full.startswith(prompt):
        raise LoraDataError("the chat template renders the answer turn differently from the generation prompt; use a model whose template appends the answer")
    p_ids, a_ids = _encode(tokenizer, prompt), _encode(tokenizer, full[len(prompt) :])
    eos = _eos(tokenizer)
    if eos not in a_ids:
        a_ids.append(eos)
    return Example(part, p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, full, False, question=question, answer=answer, meta=meta)


def dialogue_example(tokenizer: Any, pairs: list[tuple[str, str]], instruction: str, part: str, meta: dict[str, Any], system: Any = None) -> Example:
    """Several Q/A turns under one system prompt, loss on every answer; the first turn is exactly the `lora` prompt.

    Packing pairs as turns pays the system prompt once per dialogue instead of once per pair.
    """
    messages = (system or prompts.zero_shot_messages)("", instruction)[:1]
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    eos = _eos(tokenizer)
    for q, a in pairs:
        messages = messages + [{"role": "user", "content": q}]
        prompt = prompts.render(tokenizer, messages)
        messages = messages + [{"role": "assistant", "content": a}]
        full = prompts.render(tokenizer, messages[:-1], answer=a)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise LoraDataError("the chat template renders a multi-turn dialogue differently from its prefix; use a model whose template appends turns")
        p_ids, a_ids = _encode(tokenizer, prompt[len(done) :]), _encode(tokenizer, full[len(prompt) :])
        if not any(t == eos for t in a_ids) and not prompts.has_chat_template(tokenizer):
            a_ids.append(eos)
        ids += p_ids + a_ids
        labels += [IGNORE] * len(p_ids) + a_ids
        done = full
    text = done
    return Example(part, ids, labels, text, False, question=pairs[0][0], answer=pairs[0][1], meta={**meta, "pairs": [list(p) for p in pairs]})


def pack(examples: list[Example], seq_len: int) -> tuple[list[list[int]], list[list[int]], int]:
    """Pack examples into ``seq_len`` blocks without pad tokens; returns (ids, labels, filler_tokens).

    Plain text runs across block boundaries. A Q/A example that does not fit in the current block
    starts the next one; the gap is filled first by pulling the next plain-text example forward,
    else with the example's own leading tokens as untrained context. The last block is topped up
    with untrained tokens from the start of the stream.
    """
    blocks: list[list[int]] = []
    block_labels: list[list[int]] = []
    cur: list[int] = []
    cur_lab: list[int] = []
    filler = 0
    queue = list(examples)

    def emit() -> None:
        nonlocal cur, cur_lab
        blocks.append(cur)
        block_labels.append(cur_lab)
        cur, cur_lab = [], []

    while queue:
        ex = queue.pop(0)
        if ex.splittable:
            pos = 0
            while pos < len(ex.ids):
                take = min(seq_len - len(cur), len(ex.ids) - pos)
                cur += ex.ids[pos : pos + take]
                cur_lab += ex.labels[pos : pos + take]
                pos += take
                if len(cur) == seq_len:
                    emit()
            continue
        room = seq_len - len(cur)
        if len(ex.ids) <= room:
            cur += ex.ids
            cur_lab += ex.labels
        else:
            j = next((k for k, e in enumerate(queue) if e.splittable), None)
            if j is not None:
                queue.insert(0, ex)
                queue.insert(0, queue.pop(j + 1))
                continue
            cur += ex.ids[:room]
            cur_lab += [IGNORE] * room
            filler += room
            emit()
            cur, cur_lab = list(ex.ids), list(ex.labels)
        if len(cur) == seq_len:
            emit()
    if cur:
        stream = [t for e in examples for t in e.ids]
        need = seq_len - len(cur)
        top = (stream * (need // max(len(stream), 1) + 1))[:need]
        cur += top
        cur_lab += [IGNORE] * need
        filler += need
        emit()
    return blocks, block_labels, filler


def _generate(model: Any, tokenizer: Any, prompts_: list[str], max_new_tokens: int, temperature: float, seed: int, progress: Progress | None) -> list[str]:
    from ..backends.hf import HFGenerator as Generator

    gen = Generator(model, tokenizer)
    rendered = [prompts.render(tokenizer, [{"role": "user", "content": p}]) for p in prompts_]
    out = gen.generate(rendered, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stop=prompts.stop_strings(tokenizer), batch_size=8, progress=progress)
    return [r.text for r in out]


_QA_RE = re.compile(r"Question:\s*(.+?)\s*\n+\s*Answer:\s*(.+)", re.S)


def synthetic_qa(model: Any, tokenizer: Any, chunks: list[tuple[str, str]], n: int, seed: int, progress: Progress | None = None) -> tuple[list[tuple[str, str, str]], int]:
    """Up to ``n`` (question, answer, doc_id) pairs written by the base model; answers must occur in their passage."""
    rng = random.Random(seed)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    picked = [order[i % len(order)] for i in range(n)] if order else []
    texts = _generate(model, tokenizer, [SYNTH_PROMPT.format(passage=chunks[i][1]) for i in picked], 48, 0.0 if n <= len(chunks) else 0.7, seed, progress)
    pairs, seen, rejected = [], set(), 0
    for i, text in zip(picked, texts, strict=True):
        m = _QA_RE.search(text)
        q, a = (m.group(1).strip(), m.group(2).strip().split("\n")[0].strip()) if m else ("", "")
        key = normalize_answer(q)
        if not q or not a or key in seen or not contains_tokens(chunks[i][1], a):
            rejected += 1
            continue
        seen.add(key)
        pairs.append((q, a, chunks[i][0]))
    return pairs, rejected


def paraphrase_chunks(model: Any, tokenizer: Any, chunks: list[tuple[str, str]], per_chunk: int, seed: int, progress: Progress | None = None) -> tuple[list[tuple[str, str]], int]:
    """``per_chunk`` rewrites of every passage by the base model (greedy first, then sampled); too-short ones are rejected."""
    out: list[tuple[str, str]] = []
    rejected = 0
    lengths = [len(_encode(tokenizer, t)) for _, t in chunks]
    for k in range(per_chunk):
        texts = _generate(model, tokenizer, [PARAPHRASE_PROMPT.format(passage=t) for _, t in chunks], min(int(max(lengths, default=0) * 1.3) + 8, 400), 0.0 if k == 0 else 0.8, seed + k, progress)
        for (doc_id, _), n, text in zip(chunks, lengths, texts, strict=True):
            if len(_encode(tokenizer, text)) >= max(4, n // 3):
                out.append((doc_id, text))
            else:
                rejected += 1
    return out, rejected


def dev_slice(corpus: Corpus, fraction: float, seed: int) -> list[Question]:
    """A seeded share of the answerable train Q/A kept out of training to pick the checkpoint (at most 24, at least 4 when on)."""
    pool = sorted((q for q in corpus.train if q.answerable and q.answers), key=lambda q: q.id)
    if fraction <= 0 or len(pool) < 10:
        return []
    random.Random(f"workbench-dev-{seed}").shuffle(pool)
    return pool[: min(24, max(4, round(len(pool) * fraction)))]


def _words(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def _window(text: str, chars: int, answer: str | None, rng: random.Random) -> str:
    """About ``chars`` characters of a passage on word boundaries; with ``answer``, a window that contains it."""
    if len(text) <= chars:
        return text
    at = text.lower().find(answer.lower()) if answer else -1
    if at < 0:
        start = 0 if answer is None else rng.randrange(0, len(text) - chars + 1)
    else:
        lo, hi = max(0, at + len(answer) - chars), min(at, len(text) - chars)
        start = rng.randint(lo, max(lo, hi))
    cut = text[start : start + chars]
    return (cut.split(" ", 1)[-1] if start else cut).rsplit(" ", 1)[0]


def raft_examples(
    tokenizer: Any, pairs: list[dict[str, Any]], chunks: list[tuple[str, str]], cfg: TrainConfig, instruction: str, seed: int
) -> list[Example]:
    """RAFT examples: a generated question, its gold chunk among lexically similar distractors (or only distractors), answered from the passages.

    The target is the answer when a passage holds it, else the abstention reply, matching the rag prompt.
    """
    rng = random.Random(f"workbench-raft-{seed}")
    picked = list(pairs)
    rng.shuffle(picked)
    # one question per chunk first, so the examples cover as many chunks as possible
    by_chunk: dict[int, dict[str, Any]] = {}
    rest = []
    for p in picked:
        if p["chunk"] in by_chunk:
            rest.append(p)
        else:
            by_chunk[p["chunk"]] = p
    picked = (list(by_chunk.values()) + rest)[: cfg.raft_examples]
    words = [_words(t) for _, t in chunks]
    chars = cfg.raft_passage_tokens * 4
    out = []
    for i, p in enumerate(picked):
        qw = _words(p["question"])
        ranked = sorted((j for j in range(len(chunks)) if j != p["chunk"]), key=lambda j: (-len(qw & words[j]), j))
        distractors = [_window(chunks[j][1], chars, None, rng) for j in ranked[: cfg.raft_distractors]]
        with_gold = rng.random() < cfg.raft_gold_share
        passages = list(distractors)
        if with_gold:
            passages.insert(rng.randrange(len(passages) + 1), _window(chunks[p["chunk"]][1], chars, p["answer"], rng))
        held = any(contains_tokens(t, p["answer"]) for t in passages)
        target = p["answer"] if held else ABSTAIN_REPLY
        messages = prompts.rag_messages(p["question"], passages, instruction)
        prompt = prompts.render(tokenizer, messages)
        full = prompts.render(tokenizer, messages, answer=target)
        p_ids, a_ids = _encode(tokenizer, prompt), _encode(tokenizer, full[len(prompt) :])
        eos = _eos(tokenizer)
        if eos not in a_ids:
            a_ids.append(eos)
        meta = {"doc_id": p["doc_id"], "synthetic": True, "gold_in_passages": with_gold, "abstain": not held, "n": i}
        out.append(Example("raft", p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, full, False, question=p["question"], answer=target, meta=meta))
    return out


def generated_pairs(corpus: Corpus, tokenizer: Any, cfg: TrainConfig, split_cfg: SplitConfig | None, generator: Any, seed: int, progress: Progress | None) -> tuple[list[dict[str, Any]], list[tuple[str, str]], dict[str, Any]]:
    """(pairs, the chunks they came from, generation stats) for ``cfg.generated_qa`` pairs asked per chunk (cached)."""
    from .corpus_qa import generate_pairs

    if generator is None:
        raise LoraDataError("generated Q/A needs the base model; pass generator= or set generated_qa to 0")
    chunks = source_chunks(corpus.documents, tokenizer, split_cfg, cfg.seq_len - 1)
    result = generate_pairs(generator, chunks, cfg.generated_qa, seed, progress)
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
    that duplicate a ``held_out`` question are dropped (and counted) rather than trained on.
    """
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
        examples += raft_examples(tokenizer, pairs, chunks, cfg, corpus.instruction, seed)
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
            answer = q.answers[0] if (q.answerable and q.answers) else ABSTAIN_REPLY
            examples.append(qa_example(tokenizer, q.question, answer, corpus.instruction, "qa", {"id": q.id, "answerable": q.answerable}))
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
                examples.append(qa_example(tokenizer, q, a, corpus.instruction, "synthetic_qa", {"doc_id": doc_id, "synthetic": True}))
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
                ex = dialogue_example(tokenizer, [(p["question"], p["answer"]) for p in candidate], corpus.instruction, "generated_qa", {})
                if len(candidate) <= DIALOGUE_TURNS and (len(ex.ids) <= cfg.seq_len or not turns):
                    turns = candidate
                    continue
            if turns:  # the dialogue is full (turns or seq_len): emit it, start the next with this pair
                examples.append(dialogue_example(tokenizer, [(p["question"], p["answer"]) for p in turns], corpus.instruction, "generated_qa", {"synthetic": True, "doc_ids": [p["doc_id"] for p in turns]}))
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
