"""LoRA training data: parts selected by TrainConfig, SFT prompt masking, packing without pad tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import ABSTAIN_REPLY, ConfigError, TrainConfig
from workbench.tuning.lora_data import build_training_data, document_pieces
from workbench.tuning.packing import IGNORE, Example, pack, qa_example
from workbench.types import Corpus, Document, Question

DOC = (
    "Kestrel Labs builds the Harrier flight controller. The company was founded in 2011 by Mira Holt in Tromso. "
    "Its second product, the Merlin telemetry radio, shipped in 2015 and supports 868 MHz and 915 MHz bands. "
) * 6


def small_corpus() -> Corpus:
    docs = [Document("company/history.md", DOC), Document("products/merlin.md", "Merlin weighs 41 grams. " * 30)]
    qs = [
        Question("t1", "Who founded Kestrel Labs?", ["Mira Holt", "Holt"], split="train"),
        Question("t2", "When did Merlin ship?", ["2015"], split="train"),
        Question("t3", "What is the CEO's shoe size?", [], answerable=False, split="train"),
        Question("h1", "How much does Merlin weigh?", ["41 grams"], split="test"),
    ]
    return Corpus(Path("/tmp/corpus"), docs, qs)


def test_sft_example_masks_prompt_and_trains_answer(qwen_tokenizer):
    ex = qa_example(qwen_tokenizer, "Who founded Kestrel Labs?", "Mira Holt", "", "qa", {})
    n_prompt = sum(1 for t in ex.labels if t == IGNORE)
    assert n_prompt > 10 and all(t == IGNORE for t in ex.labels[:n_prompt])
    trained = ex.labels[n_prompt:]
    assert trained == ex.ids[n_prompt:]
    assert qwen_tokenizer.decode(trained).startswith("Mira Holt<|im_end|>")
    assert qwen_tokenizer.eos_token_id in trained
    assert "Who founded Kestrel Labs?" in qwen_tokenizer.decode(ex.ids[:n_prompt])


def test_build_counts_parts_and_teaches_abstention(qwen_tokenizer):
    corpus = small_corpus()
    data = build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128), seed=0)
    st = data.stats
    assert st["examples"]["qa"] == 3  # train split only: the test question is never used
    assert st["examples"]["chunks"] >= 2
    assert st["blocks"] == len(data.input_ids) == len(data.labels)
    assert st["n_tokens"] == 128 * st["blocks"]
    assert st["n_trained_tokens"] == sum(t != IGNORE for row in data.labels for t in row)
    assert not any("How much does Merlin weigh" in t for t in data.texts)
    assert any(ABSTAIN_REPLY in t and "shoe size" in t for t in data.texts)
    assert sorted(data.questions) == sorted(q.question for q in corpus.train)


def test_packing_has_no_pad_tokens_and_keeps_labels_aligned(qwen_tokenizer):
    data = build_training_data(small_corpus(), qwen_tokenizer, TrainConfig(seq_len=128), seed=3)
    pad = qwen_tokenizer.pad_token_id
    assert pad != qwen_tokenizer.eos_token_id
    for ids, labels in zip(data.input_ids, data.labels, strict=True):
        assert len(ids) == len(labels) == 128
        assert pad not in ids
        assert all(lab in (IGNORE, tok) for lab, tok in zip(labels, ids, strict=True))
    flat = [t for row in data.input_ids for t in row]
    assert flat.count(qwen_tokenizer.eos_token_id) >= 3 + 2  # every example ends with EOS


def _ex(start: int, n: int, prompt: int, splittable: bool) -> Example:
    ids = list(range(start, start + n))
    labels = list(ids) if splittable else [IGNORE] * prompt + ids[prompt:]
    return Example("chunks" if splittable else "qa", ids, labels, "", splittable)


def test_pack_never_splits_a_qa_example_and_fills_gaps():
    qa1, text, qa2 = _ex(1000, 20, 12, False), _ex(2000, 50, 0, True), _ex(3000, 20, 12, False)
    qa3 = _ex(4000, 25, 15, False)
    blocks, labels, filler = pack([qa1, qa2, qa3, text], seq_len=32)
    assert all(len(b) == 32 for b in blocks)
    for qa in (qa1, qa2, qa3):
        whole = [i for i, b in enumerate(blocks) if all(t in b for t in qa.ids)]
        assert whole, "a Q/A example was cut across blocks"
        b = whole[0]
        pos = blocks[b].index(qa.ids[0])
        assert blocks[b][pos : pos + len(qa.ids)] == qa.ids
        assert labels[b][pos : pos + len(qa.ids)] == qa.labels
    trained = sorted(t for row in labels for t in row if t != IGNORE)
    assert trained == sorted(t for ex in (qa1, qa2, qa3, text) for t in ex.labels if t != IGNORE)  # each trained exactly once
    assert filler == sum(t == IGNORE for row in labels for t in row) - sum(t == IGNORE for ex in (qa1, qa2, qa3) for t in ex.labels)


def test_pack_without_plain_text_fills_with_untrained_context():
    blocks, labels, filler = pack([_ex(1000, 20, 12, False), _ex(2000, 20, 12, False)], seq_len=32)
    assert len(blocks) == 2 and filler == 12 + 12
    assert labels[0][20:] == [IGNORE] * 12  # tail of block 0 holds the next prompt, untrained
    assert blocks[1][:20] == list(range(2000, 2020))


def test_pack_puts_a_later_qa_that_fits_into_the_gap_before_filling_it():
    a, b, c, d = _ex(1000, 20, 12, False), _ex(2000, 20, 12, False), _ex(3000, 12, 6, False), _ex(4000, 12, 6, False)
    blocks, labels, filler = pack([a, b, c, d], seq_len=32)
    assert filler == 0 and len(blocks) == 2  # first fit: a + c, b + d (in order, a + 12 filler, b + c, d + 20 filler)
    assert blocks[0] == a.ids + c.ids and blocks[1] == b.ids + d.ids
    assert labels[0] == a.labels + c.labels
    before = pack([a, b, c, d], seq_len=32, first_fit=False)  # the packing before first fit, kept for the bench
    assert len(before[0]) == 3 and before[2] == 12 + 20


def test_parts_are_selectable_and_deterministic(qwen_tokenizer):
    corpus = small_corpus()
    only_qa = build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128, use_chunks=False), seed=0)
    assert only_qa.stats["examples"] == {"chunks": 0, "qa": 3, "synthetic_qa": 0, "paraphrases": 0, "generated_qa": 0, "raft": 0}
    only_chunks = build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128, use_qa=False), seed=0)
    assert only_chunks.stats["examples"]["qa"] == 0 and not only_chunks.questions
    a = build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128), seed=0)
    b = build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128), seed=0)
    assert a.input_ids == b.input_ids and a.fingerprint == b.fingerprint
    assert a.fingerprint != only_qa.fingerprint
    with pytest.raises(ConfigError):
        TrainConfig(use_chunks=False, use_qa=False)


def test_document_pieces_cover_documents_without_overlap(qwen_tokenizer):
    docs = small_corpus().documents
    pieces = document_pieces(docs, qwen_tokenizer, 40)
    for doc in docs:
        assert "".join(t for d, t in pieces if d == doc.doc_id).strip() == doc.text.strip()
    assert all(len(qwen_tokenizer(t, add_special_tokens=False)["input_ids"]) <= 42 for _, t in pieces)


def test_empty_data_is_an_error(qwen_tokenizer):
    from workbench.tuning.packing import LoraDataError

    corpus = Corpus(Path("/tmp/empty"), [], [Question("h1", "Q?", ["a"], split="test")])
    with pytest.raises(LoraDataError, match="no LoRA training examples"):
        build_training_data(corpus, qwen_tokenizer, TrainConfig(seq_len=128))


def test_save_and_load_round_trip(qwen_tokenizer, tmp_path):
    from workbench.tuning.lora_data import TrainingData

    data = build_training_data(small_corpus(), qwen_tokenizer, TrainConfig(seq_len=128), seed=0)
    data.save(tmp_path)
    back = TrainingData.load(tmp_path)
    assert back.input_ids == data.input_ids and back.labels == data.labels and back.stats == data.stats


def test_synthetic_parts_need_the_model_and_are_marked(qwen_tokenizer, tiny_lm_dir):
    from workbench.backends.models import load_generator
    from workbench.tuning.packing import LoraDataError

    corpus = small_corpus()
    cfg = TrainConfig(seq_len=128, use_qa=False, use_chunks=False, synthetic_qa=2, paraphrases=1)
    with pytest.raises(LoraDataError, match="need the base model"):
        build_training_data(corpus, qwen_tokenizer, cfg)
    model, tok = load_generator(str(tiny_lm_dir))
    corpus.documents = [Document("short.md", "Merlin weighs 41 grams and ships in a blue box.")]
    cfg = TrainConfig(seq_len=128, use_qa=False, use_chunks=True, synthetic_qa=1, paraphrases=1)
    data = build_training_data(corpus, tok, cfg, seed=0, model=model)
    # a random tiny model writes no "Question: ... Answer: ..." pair: it is rejected and counted, never trained
    assert data.stats["examples"]["synthetic_qa"] == 0 and data.stats["synthetic_rejected"] == 1
    assert data.stats["examples"]["paraphrases"] + data.stats["paraphrases_rejected"] == 1  # one rewrite asked for
    assert data.stats["examples"]["chunks"] == 1


SYNTH_DOCS = {
    "merlin.md": "Merlin weighs 41 grams and ships in a blue box.",
    "harrier.md": "The Harrier control loop runs at 400 Hz.",
    "history.md": "Kestrel Labs opened its first office in Tromso.",
}
# What a well-behaved writer model replies for each passage: one good pair, one that copies a held-out
# question, one whose answer is not in its passage; paraphrases: two faithful rewrites and one too short.
SYNTH_REPLIES = {
    "merlin.md": ("Question: How much does Merlin weigh?\nAnswer: 41 grams", "Merlin has a weight of 41 grams; it is shipped in a blue box."),
    "harrier.md": ("Question: How fast is the Harrier control loop?\nAnswer: 400 Hz", "Ok."),
    "history.md": ("Question: Who founded Kestrel Labs?\nAnswer: Mira Holt", "The first Kestrel Labs office opened in the city of Tromso."),
}


def test_accepted_synthetic_qa_is_trained_marked_and_leaks_are_dropped(qwen_tokenizer, monkeypatch):
    from workbench.tuning import synthetic

    calls: list[tuple[int, float]] = []

    def writer(model, tokenizer, prompts_, max_new_tokens, temperature, seed, progress):
        calls.append((len(prompts_), temperature))
        out = []
        for p in prompts_:
            doc = next(d for d, text in SYNTH_DOCS.items() if text in p)
            out.append(SYNTH_REPLIES[doc][0 if p.startswith("Read the passage") else 1])
        return out

    monkeypatch.setattr(synthetic, "_generate", writer)
    corpus = small_corpus()
    corpus.documents = [Document(d, t) for d, t in SYNTH_DOCS.items()]
    held_out = [Question("h-loop", "How fast is the Harrier control loop?", ["400 Hz"], split="test")]
    cfg = TrainConfig(seq_len=128, use_qa=False, use_chunks=False, synthetic_qa=3, paraphrases=1)
    data = build_training_data(corpus, qwen_tokenizer, cfg, seed=0, model=object(), held_out=held_out)
    st = data.stats
    assert calls == [(3, 0.0), (3, 0.0)]  # one passage per pair asked for (greedy), then one rewrite per passage
    assert st["examples"] == {"chunks": 0, "qa": 0, "synthetic_qa": 1, "paraphrases": 2, "generated_qa": 0, "raft": 0}
    assert (st["synthetic_rejected"], st["synthetic_dropped_leak"], st["paraphrases_rejected"]) == (1, 1, 1)
    assert data.questions == ["How much does Merlin weigh?"] and data.answers == ["41 grams"]  # the held-out twin never trains
    synth = [m for m in data.meta if m["part"] == "synthetic_qa"]
    assert synth == [{"part": "synthetic_qa", "doc_id": "merlin.md", "synthetic": True}]
    rewrites = sorted(m["doc_id"] for m in data.meta if m["part"] == "paraphrases")
    assert rewrites == ["history.md", "merlin.md"] and all(m["synthetic"] for m in data.meta)
    assert not any("Harrier control loop" in t for t in data.texts)
    # the accepted pair is an SFT example: its answer tokens are trained, its prompt is not
    ex = qa_example(qwen_tokenizer, "How much does Merlin weigh?", "41 grams", corpus.instruction, "synthetic_qa", {})
    answer_ids = [t for t, lab in zip(ex.ids, ex.labels, strict=True) if lab != IGNORE]
    assert qwen_tokenizer.decode(answer_ids).startswith("41 grams")
    n = len(answer_ids)
    assert any(row[i : i + n] == answer_ids for row in data.labels for i in range(len(row) - n + 1))
    without_guard = build_training_data(corpus, qwen_tokenizer, cfg, seed=0, model=object())
    assert without_guard.stats["examples"]["synthetic_qa"] == 2 and "How fast is the Harrier control loop?" in without_guard.questions


def test_training_skips_the_unlabelled_tail_of_a_batch_and_the_loss_is_unchanged(tiny_lm_dir):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.tuning.lora import _loss, _trim_unlabelled_tail

    ids = torch.arange(100, 124).view(2, 12)
    labels = torch.full_like(ids, IGNORE)
    labels[0, 3:6], labels[1, 2:8] = ids[0, 3:6], ids[1, 2:8]  # rows end in untrained filler after column 7
    x, y = _trim_unlabelled_tail(ids, labels)
    assert x.shape == (2, 8) and torch.equal(y, labels[:, :8]) and torch.equal(x, ids[:, :8])
    none = torch.full_like(ids, IGNORE)
    assert _trim_unlabelled_tail(ids, none)[0].shape == ids.shape  # nothing labelled: left as it is
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32), LoraConfig(r=2, target_modules=["q_proj"]))
    with torch.no_grad():
        assert torch.allclose(_loss(model, ids, labels), _loss(model, x, y), atol=1e-5)
