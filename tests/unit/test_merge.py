"""topics.fit.communities: arbitrary cuts through one group merge back; boundaries between groups stay."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.synthetic import hard_mixture
from topics.fit.communities import cut_score, merge_cut_communities
from topics.fit.graph import knn_igraph


def _graph(vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The recluster's kNN graph as edge pairs and weights, as `_leiden_labels` hands them over."""
    graph = knn_igraph(vectors, k)
    return np.asarray(graph.get_edgelist(), np.int64), np.asarray(graph.es["weight"], np.float64)


def _blobs(
    sizes: list[int], dim: int = 32, spread: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    truth = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[truth] / np.linalg.norm(centres[truth], axis=1, keepdims=True)
    x = x + rng.normal(scale=spread, size=x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def test_a_random_split_scores_about_one_and_a_cut_free_pair_zero() -> None:
    assert abs(cut_score((50, 50), (100.0, 100.0), 200.0) - 200 / (0.5 * 400)) < 1e-9
    assert cut_score((50, 50), (100.0, 100.0), 0.0) == 0.0
    assert cut_score((10, 90), (10.0, 890.0), 0.18 * 900 / (1 - 0.18)) > 0.9  # unequal sizes too


def test_pieces_of_one_group_merge_and_separate_groups_stay_apart() -> None:
    x, truth = _blobs([300, 200])
    edges, weights = _graph(x)
    # each true group cut in two along its first coordinate: a cut through one group
    pieces = truth * 2 + (x[:, 0] > np.median(x[:, 0])).astype(np.int64)
    merged = merge_cut_communities(edges, weights, pieces, threshold=0.55)
    assert len(np.unique(merged)) == 2
    for group in (0, 1):
        assert len(np.unique(merged[truth == group])) == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_siblings_of_the_hard_mixture_are_never_merged(seed: int) -> None:
    """Siblings at centre cosine 0.95-0.97, 16 to 1,000 members, as whole communities."""
    corpus = hard_mixture(k=10, n=4000, seed=seed)
    members = corpus.labels >= 0
    truth = corpus.labels[members].astype(np.int64)
    edges, weights = _graph(corpus.vectors[members], k=15)
    merged = merge_cut_communities(edges, weights, truth, threshold=0.55)
    assert len(np.unique(merged)) == len(np.unique(truth)) == 10


def test_nothing_to_merge_gives_the_labels_back() -> None:
    x, truth = _blobs([40])
    edges, weights = _graph(x)
    assert (merge_cut_communities(edges, weights, truth, threshold=0.55) == truth).all()
    assert (merge_cut_communities(edges, weights, truth * 0, threshold=0.0) == 0).all()
