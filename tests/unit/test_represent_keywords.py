"""Keywords: vocabulary terms nearest a topic's image centroid, vectors cached per model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from indexer.embed.base import l2_normalise
from topics.represent import Representer, RepresentOptions
from topics.represent.keywords import Vocabulary

DIM = 64


class HashingTextEmbedder:
    """A deterministic test double of a text embedder: a text is the sum of its words' hashed vectors."""

    def __init__(self, model_id: str = "hashing-test/v1") -> None:
        self.model_id = model_id
        self.calls: list[list[str]] = []

    def word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(f"{self.model_id}|{word}".encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=DIM)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = [sum((self.word_vector(w) for w in text.lower().split()), np.zeros(DIM)) for text in texts]
        return l2_normalise(np.array(rows))


def test_keywords_are_the_terms_nearest_the_centroid() -> None:
    embedder = HashingTextEmbedder()
    terms = ["tractor", "boat", "harbour", "farm", "mountain", "snow"]
    vocabulary = Vocabulary.build(terms, embedder, template="{}")
    centroid = embedder.word_vector("tractor") + 0.8 * embedder.word_vector("farm")
    found = vocabulary.keywords(centroid, k=3)
    assert [t for t, _ in found[:2]] == ["tractor", "farm"]
    assert found[0][1] > found[1][1] > found[2][1]
    assert len(vocabulary.keywords(centroid, k=100)) == len(terms)


def test_vectors_are_cached_per_model_and_only_new_terms_embedded(tmp_path: Path) -> None:
    embedder = HashingTextEmbedder()
    first = Vocabulary.build(["tractor", "boat", "boat", " "], embedder, cache_dir=tmp_path)
    assert first.terms == ["tractor", "boat"]
    assert embedder.calls == [["a photo of tractor", "a photo of boat"]]

    embedder.calls.clear()
    second = Vocabulary.build(["boat", "tractor", "snow"], embedder, cache_dir=tmp_path)
    assert embedder.calls == [["a photo of snow"]]  # the other two came from the cache
    assert np.allclose(second.vectors[1], first.vectors[0])

    other_model = HashingTextEmbedder("hashing-test/v2")
    Vocabulary.build(["boat"], other_model, cache_dir=tmp_path)
    assert other_model.calls == [["a photo of boat"]]  # another model never reuses these vectors
    assert len(list(tmp_path.glob("vocabulary-*.npz"))) == 2


def test_a_budget_bounds_the_new_terms_per_run_and_later_runs_complete_the_vocabulary(tmp_path: Path):
    embedder = HashingTextEmbedder()
    terms = [f"term{i}" for i in range(10)]
    reported: list[tuple[int, int]] = []
    first = Vocabulary.build(
        terms, embedder, cache_dir=tmp_path, budget=4, batch_size=3, on_batch=lambda *a: reported.append(a)
    )
    assert first.terms == terms[:4] and sum(len(c) for c in embedder.calls) == 4  # the first (most wanted)
    assert reported == [(3, 4), (4, 4)]
    second = Vocabulary.build(terms, embedder, cache_dir=tmp_path, budget=4)
    assert second.terms == terms[:8]  # the cached four plus four new ones
    third = Vocabulary.build(terms, embedder, cache_dir=tmp_path, budget=4)
    assert third.terms == terms and sum(len(c) for c in embedder.calls) == 10  # each term embedded once


def test_topics_own_words_come_before_frequent_terms_under_a_budget(tmp_path: Path) -> None:
    embedder = HashingTextEmbedder()
    batch = image_only_corpus(embedder, np.random.default_rng(0))
    options = RepresentOptions(cache_dir=tmp_path / "cache", tiles_dir=None, vocabulary_budget=2, n_words=2)
    centroids = {t: batch["image_vectors"][batch["topic_ids"] == t].mean(axis=0) for t in (0, 1)}
    steps: list[str] = []
    representer = Representer(centroids, options, embedder=embedder, on_step=steps.append)
    representer.add_batch(**batch)
    result = representer.finish()
    embedded = {text.removeprefix("a photo of ") for call in embedder.calls[2:] for text in call}
    assert embedded == {w for w, _ in result[0].words}  # topic 0's two top words, nothing else
    assert {k for k, _ in result[0].keywords} == embedded
    assert "keywords" in steps and "keywords: embedded 2/2 new terms" in steps


def test_a_corrupt_cache_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    embedder = HashingTextEmbedder()
    Vocabulary.build(["boat"], embedder, cache_dir=tmp_path)
    (cache,) = tmp_path.glob("vocabulary-*.npz")
    cache.write_bytes(b"not an npz")
    embedder.calls.clear()
    assert Vocabulary.build(["boat"], embedder, cache_dir=tmp_path).terms == ["boat"]
    assert embedder.calls == [["a photo of boat"]]


def test_wrong_space_is_refused() -> None:
    vocabulary = Vocabulary.build(["boat"], HashingTextEmbedder())
    with pytest.raises(ValueError, match="centroid dim 8 differs from vocabulary dim 64"):
        vocabulary.keywords(np.ones(8))
    assert Vocabulary.build([], HashingTextEmbedder()).keywords(np.ones(8)) == []


def image_only_corpus(embedder: HashingTextEmbedder, rng: np.random.Generator) -> dict[str, object]:
    """Topic 0: captioned farm posts. Topic 1: uncaptioned photos whose vectors sit near 'sailing boat'."""
    farm_captions = [f"tractor on the farm {w}" for w in ["today", "again", "field", "barn", "dawn"]] * 4
    boat = embedder.embed_texts(["a photo of sailing boat"])[0]
    farm = embedder.embed_texts(["a photo of tractor"])[0]
    images = l2_normalise(
        np.vstack([farm + 0.05 * rng.normal(size=(20, DIM)), boat + 0.05 * rng.normal(size=(20, DIM))])
    )
    return {
        "topic_ids": np.repeat([0, 1], 20),
        "item_ids": [f"i{i}" for i in range(40)],
        "vectors": images,
        "image_vectors": images,
        "captions": farm_captions + [None] * 20,
    }


def test_image_only_topic_is_named_by_keywords_from_corpus_and_user_vocabulary(tmp_path: Path) -> None:
    embedder = HashingTextEmbedder()
    batch = image_only_corpus(embedder, np.random.default_rng(0))
    user_terms = tmp_path / "terms.txt"
    user_terms.write_text("sailing boat\nmountain\nsnow\n", encoding="utf-8")
    options = RepresentOptions(vocabulary_file=user_terms, cache_dir=tmp_path / "cache", tiles_dir=None)
    centroids = {t: batch["image_vectors"][batch["topic_ids"] == t].mean(axis=0) for t in (0, 1)}
    representer = Representer(centroids, options, embedder=embedder)
    representer.add_batch(**batch)
    result = representer.finish()

    assert result[1].keywords[0][0] == "sailing boat"  # from the user's file
    assert result[1].label.startswith("sailing boat")  # no words: the label comes from keywords
    assert result[1].words == ()
    assert result[0].keywords[0][0] == "tractor"  # a corpus caption term
    assert "tractor" in result[0].label and "farm" in result[0].label  # words win when a topic has them
    assert list((tmp_path / "cache").glob("vocabulary-*.npz"))


@pytest.mark.slow
def test_keywords_with_a_real_clip_text_tower(tmp_path: Path) -> None:
    """The real embedder path: tiny random open_clip weights, so only shapes and ranking mechanics."""
    try:
        from models.tiny import tiny_clip
    except ImportError as exc:  # pragma: no cover - lands with indexer/embed/clip.py
        pytest.skip(f"tiny CLIP not available yet: {exc}")
    clip = tiny_clip()
    vocabulary = Vocabulary.build(["tractor", "boat", "snow"], clip, cache_dir=tmp_path)
    target = clip.embed_texts(["a photo of boat"])[0]
    assert vocabulary.keywords(target, k=1)[0][0] == "boat"
    assert vocabulary.vectors.shape == (3, clip.embed_texts(["x"]).shape[1])
