"""The items pass's per-batch arithmetic: each view's vectors, sums per topic, words counted once."""

from __future__ import annotations

import numpy as np

from indexer.store.base import Point
from topics.recluster.assign import _sum_by_label
from topics.recluster.sample import view_vectors
from topics.represent.words import WordCounter


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_view_vectors_fuse_each_items_own_parts_and_skip_items_without_the_view() -> None:
    rng = np.random.default_rng(0)
    image, text = rng.standard_normal((4, 8)) * 3, rng.standard_normal((4, 8))
    points = [
        Point("a", {"image": image[0], "text": text[0]}, {}),
        Point("b", {"text": text[1]}, {}),
        Point("c", {}, {}),
        Point("d", {"image": image[3]}, {}),
    ]
    rows, fused = view_vectors(points, "fused")
    assert rows.tolist() == [0, 1, 3]
    expected = [_unit(_unit(image[0]) + _unit(text[0])), _unit(text[1]), _unit(image[3])]
    np.testing.assert_allclose(fused, np.stack(expected), atol=1e-6)
    rows, images = view_vectors(points, "image")
    assert rows.tolist() == [0, 3]
    np.testing.assert_allclose(images, _unit(image[[0, 3]]), atol=1e-6)
    rows, none = view_vectors(points[2:3], "fused")
    assert rows.size == 0 and none.size == 0


def test_sums_by_label_match_a_loop_over_items() -> None:
    rng = np.random.default_rng(1)
    labels, vectors = rng.integers(0, 5, size=50), rng.standard_normal((50, 6)).astype(np.float32)
    expected = np.zeros((7, 6))
    for label, vector in zip(labels, vectors, strict=True):
        expected[label] += vector
    got = _sum_by_label(labels, vectors, 7)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_words_counted_from_terms_analysed_once_equal_words_counted_from_captions() -> None:
    captions = ["red tractor protest", None, "tractor protest in town", "blue sea", "sea and sand"]
    topics = [0, 0, 0, 1, 1]
    direct, shared = WordCounter(min_df=1), WordCounter(min_df=1)
    direct.add(topics, captions)
    shared.add(topics, captions, terms=WordCounter(min_df=1).terms(captions))
    assert direct.top_words(n=3) == shared.top_words(n=3)
    assert WordCounter(min_df=1).terms([None, ""]) == [[], []]
