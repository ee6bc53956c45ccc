"""Contract of topics.fit.clustering: shapes, scaling defaults, assign/fit consistency, outliers, quality."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.quality import adjusted_rand
from evaluation.synthetic import two_level_mixture
from indexer.config import ClusterSettings
from topics.fit.clustering import Clustering, fit_clusters
from topics.fit.graph import fuzzy_weights
from topics.fit.params import ClusterParams, default_min_cluster_size
from topics.fit.refine import _refine
from topics.fit.split import separation, split_separated

DIM = 128
Mixture = tuple[np.ndarray, np.ndarray]


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def sibling_mixture(
    n_parents: int = 6, seed: int = 0, spread: float = 0.02, sibling_cos: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of sibling topics (centroid cosine ~sibling_cos), sizes unequal up to 10x, some noise."""
    rng = np.random.default_rng(seed)
    parents = _unit(rng.normal(size=(n_parents, DIM)))
    offset = np.sqrt(2 * (1 - sibling_cos)) / 2  # each child half the sibling distance from the parent
    centres = []
    for p in parents:
        for _ in range(2):
            step = _unit(rng.normal(size=DIM))
            step -= (step @ p) * p
            centres.append(_unit(p + offset * _unit(step)))
    sizes = rng.integers(40, 400, len(centres))
    truth = np.repeat(np.arange(len(centres)), sizes)
    x = np.asarray(centres)[truth] + rng.normal(scale=spread, size=(len(truth), DIM))
    noise = rng.normal(size=(len(truth) // 50, DIM))  # 2 % background noise, true label -1
    return _unit(np.vstack([x, noise])), np.concatenate([truth, np.full(len(noise), -1)])


@pytest.fixture(scope="module")
def mixture() -> Mixture:
    return sibling_mixture()


@pytest.fixture(scope="module")
def fitted(mixture: Mixture) -> Clustering:
    return fit_clusters(mixture[0], ClusterParams())


def test_fit_returns_labels_and_unit_centroids_in_input_space(mixture: Mixture, fitted: Clustering) -> None:
    x, _ = mixture
    k = fitted.centroids.shape[0]
    assert fitted.labels.shape == (len(x),) and fitted.labels.dtype == np.int64
    assert fitted.centroids.shape == (k, DIM) and fitted.centroids.dtype == np.float32
    assert np.allclose(np.linalg.norm(fitted.centroids, axis=1), 1.0, atol=1e-5)
    assert set(np.unique(fitted.labels)) <= set(range(-1, k))
    assert set(range(k)) <= set(np.unique(fitted.labels))  # every topic has members


def test_finds_sibling_topics_of_unequal_size(mixture: Mixture, fitted: Clustering) -> None:
    _, truth = mixture
    assert adjusted_rand(truth, fitted.labels) >= 0.9


def test_assign_gives_sample_items_their_own_label(mixture: Mixture, fitted: Clustering) -> None:
    x, _ = mixture
    labels, scores = fitted.assign(x)
    assert labels.shape == scores.shape == (len(x),)
    clustered = fitted.labels >= 0
    assert (labels[clustered] == fitted.labels[clustered]).mean() >= 0.95
    assert np.all(scores <= 1.0 + 1e-5) and np.all(scores >= -1.0 - 1e-5)


def test_assign_in_batches_equals_one_pass(mixture: Mixture, fitted: Clustering) -> None:
    x, _ = mixture
    small = Clustering(**{**fitted.__dict__, "batch_size": 97})
    (labels_a, scores_a), (labels_b, scores_b) = small.assign(x), fitted.assign(x)
    assert np.array_equal(labels_a, labels_b)
    assert np.allclose(scores_a, scores_b, atol=1e-5)


def test_assign_marks_far_vectors_as_outliers(fitted: Clustering) -> None:
    far = _unit(np.random.default_rng(9).normal(size=(50, DIM)))
    labels, scores = fitted.assign(far)
    assert (labels == -1).mean() >= 0.9
    assert scores.max() < 0.5


def test_outlier_threshold_absorbs_outliers_into_nearest_topic(mixture: Mixture) -> None:
    x, _ = mixture
    strict = fit_clusters(x, ClusterParams(outlier_threshold=None))
    absorbing = fit_clusters(x, ClusterParams(outlier_threshold=-1.0))
    assert (strict.labels == -1).sum() > 0
    assert (absorbing.labels == -1).sum() == 0
    far = _unit(np.random.default_rng(9).normal(size=(20, DIM)))
    assert (absorbing.assign(far)[0] >= 0).all()


def test_same_seed_same_topics(mixture: Mixture, fitted: Clustering) -> None:
    again = fit_clusters(mixture[0], ClusterParams())
    assert np.array_equal(again.labels, fitted.labels)
    assert np.allclose(again.centroids, fitted.centroids)


def test_min_cluster_size_default_grows_with_the_corpus() -> None:
    sizes = [default_min_cluster_size(n) for n in (100, 1_000, 10_000, 100_000, 1_000_000)]
    assert sizes == sorted(sizes) and sizes[0] >= 5 and sizes[-1] > sizes[1]


def test_params_come_from_settings() -> None:
    s = ClusterSettings(
        min_cluster_size=40, min_samples=3, reduce_dim=16, outlier_threshold=0.4, seed=7, theme_resolution=3
    )
    p = ClusterParams.from_settings(s)
    got = (p.min_cluster_size, p.min_samples, p.reduce_dim, p.outlier_threshold, p.seed, p.theme_resolution)
    assert got == (40, 3, 16, 0.4, 7, 3)
    assert (p.split_resolution, p.split_separation) == (16.0, 6.0)
    off = ClusterParams.from_settings(ClusterSettings(split_resolution=0, split_separation=4))
    assert (off.split_resolution, off.split_separation) == (None, 4.0)


def _blob(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float = 0.03) -> np.ndarray:
    return _unit(centre + spread * rng.normal(size=(n, DIM)))


def test_separation_tells_a_cut_blob_from_two_blobs_whatever_their_size() -> None:
    rng = np.random.default_rng(0)
    centre = _unit(rng.normal(size=DIM))
    for n in (60, 600, 3000):
        blob = _blob(rng, centre, 2 * n)
        axis = np.linalg.svd(blob - blob.mean(axis=0), full_matrices=False)[2][0]
        side = (blob - blob.mean(axis=0)) @ axis > 0
        assert separation(blob[side], blob[~side]) < 3.5  # ~2.3: a plane through one group
        other = _unit(centre + 12 * 0.03 * _unit(rng.normal(size=DIM)))  # 12 spreads away
        two = separation(_blob(rng, centre, n), _blob(rng, other, n // 3))
        assert 9 < two < 15


def test_separation_of_a_small_group_split_at_random_stays_low() -> None:
    """Eight members against eight in 128 dimensions: a line drawn with each member would separate them."""
    rng = np.random.default_rng(3)
    values = []
    for _ in range(40):
        blob = _blob(rng, _unit(rng.normal(size=DIM)), 16)
        values.append(separation(blob[:8], blob[8:]))
    assert np.median(values) < 1.0 and max(values) < 4.5
    with pytest.raises(ValueError, match="two members"):
        separation(blob[:1], blob[1:])


def test_separation_holds_when_some_members_belong_to_the_other_group() -> None:
    rng = np.random.default_rng(1)
    a_centre = _unit(rng.normal(size=DIM))
    b_centre = _unit(a_centre + 12 * 0.03 * _unit(rng.normal(size=DIM)))
    a, b = _blob(rng, a_centre, 300), _blob(rng, b_centre, 100)
    mixed_a = np.concatenate([a, b[:30]])  # 9 % of a's members are b's
    assert separation(mixed_a, b[30:]) > 0.75 * separation(a, b) > 6


def test_split_separated_keeps_separate_groups_apart_and_a_cut_group_whole() -> None:
    rng = np.random.default_rng(2)
    a_centre = _unit(rng.normal(size=DIM))
    b_centre = _unit(a_centre + 12 * 0.03 * _unit(rng.normal(size=DIM)))
    vectors = np.concatenate([_blob(rng, a_centre, 400), _blob(rng, b_centre, 200), _blob(rng, a_centre, 50)])
    truth = np.repeat([0, 1, 0], [400, 200, 50])
    labels = np.zeros(len(vectors), np.int64)  # one topic holding both groups
    fine = np.repeat([0, 1, 2, 3], [200, 200, 200, 50])  # group a cut in two, b, and a crumb of a
    fine[-50:] = -1  # the crumb: outliers of the finer partition
    split = split_separated(vectors, labels, fine, min_size=20, apart=6.0)
    assert adjusted_rand(truth, split) == 1.0
    assert set(np.unique(split)) == {0, 1}  # the first piece keeps the topic's id, the new one is next
    one_group = split_separated(vectors[truth == 0], labels[truth == 0], fine[truth == 0], 20, 6.0)
    assert (one_group == 0).all()


def test_hundreds_of_small_topics_survive_modularitys_resolution_limit() -> None:
    """At one resolution modularity merges siblings that each hold a small share of the graph (the scale
    corpus: ~300 fine topics); the split step gets them back (docs/scaling.md)."""
    from dataclasses import replace

    from evaluation.scale_corpus import chunks
    from evaluation.scale_corpus import two_level_mixture as many_topics
    from indexer.embed.base import l2_normalise

    corpus = next(chunks(many_topics(), 12_000, seed=5, chunk=12_000))
    fused = l2_normalise(l2_normalise(corpus.image) + l2_normalise(corpus.text)).astype(np.float32)
    with_splits = fit_clusters(fused, ClusterParams())
    without = fit_clusters(fused, replace(ClusterParams(), split_resolution=None))
    ari = adjusted_rand(corpus.labels, with_splits.labels)
    ari_without = adjusted_rand(corpus.labels, without.labels)
    assert ari > 0.9 and ari > ari_without + 0.1
    assert with_splits.n_topics > without.n_topics


def test_bad_input_is_refused(fitted: Clustering) -> None:
    with pytest.raises(ValueError, match="2-d"):
        fit_clusters(np.zeros(10, np.float32), ClusterParams())
    with pytest.raises(ValueError, match="NaN"):
        fit_clusters(np.full((10, 4), np.nan, np.float32), ClusterParams())
    with pytest.raises(ValueError, match="dimension"):
        fitted.assign(np.ones((3, DIM + 1), np.float32))


def test_tiny_or_uniform_sample_gives_no_topics_rather_than_an_error() -> None:
    x = _unit(np.random.default_rng(1).normal(size=(30, DIM)))
    result = fit_clusters(x, ClusterParams())
    labels, _ = result.assign(x)
    assert labels.shape == (30,)
    assert result.centroids.shape[1] == DIM


def test_refine_gives_no_vector_to_the_empty_label_of_a_gap() -> None:
    """Labels 0 and 2 (1 was dropped): label 1's centroid would be zero and beat two negative cosines."""
    near_x = _unit(np.array([[1.0, 0.1], [1.0, -0.1], [1.0, 0.0]]))
    near_y = _unit(np.array([[0.1, 1.0], [-0.1, 1.0], [0.0, 1.0]]))
    opposite = _unit(np.array([[-1.0, -1.0]]))
    sample = np.vstack([near_x, near_y, opposite])
    labels = np.array([0, 0, 0, 2, 2, 2, -1])
    refined = _refine(sample, labels, rounds=1)
    assert refined[0] != refined[3]
    assert set(refined.tolist()) == {refined[0], refined[3]}  # the last vector joins one of the two


def test_hdbscan_method_also_separates_siblings(mixture: Mixture) -> None:
    x, truth = mixture
    result = fit_clusters(x, ClusterParams(method="hdbscan"))
    assert adjusted_rand(truth, result.labels) >= 0.9


@pytest.fixture(scope="module")
def two_level() -> tuple[np.ndarray, np.ndarray, np.ndarray, Clustering]:
    corpus = two_level_mixture(groups=6, n=4_000, dim=DIM, seed=1)
    assert corpus.groups is not None
    return corpus.vectors, corpus.labels, corpus.groups, fit_clusters(corpus.vectors, ClusterParams(seed=1))


def test_themes_are_the_groups_and_topics_the_siblings_of_a_two_level_mixture(two_level) -> None:
    _, siblings, groups, fit = two_level
    assert adjusted_rand(siblings, fit.labels) >= 0.9
    assert adjusted_rand(groups, fit.theme_of(fit.labels)) >= 0.9
    assert 1 < fit.n_themes < fit.n_topics


def test_every_topic_has_one_theme_and_an_item_has_its_topics(two_level) -> None:
    vectors, _, _, fit = two_level
    assert fit.themes.shape == (fit.n_topics,) and fit.themes.dtype == np.int64
    assert set(fit.themes.tolist()) == set(range(fit.n_themes))
    labels, _ = fit.assign(vectors[:200])
    assert np.array_equal(fit.theme_of(labels), np.where(labels >= 0, fit.themes[np.maximum(labels, 0)], -1))


def test_theme_resolution_refines_themes_without_touching_topics(two_level) -> None:
    vectors, _, _, fit = two_level
    fine = fit_clusters(vectors, ClusterParams(seed=1, theme_resolution=50.0, theme_join_cosine=1.0))
    assert np.array_equal(fine.labels, fit.labels)
    assert fit.n_themes < fine.n_themes == fine.n_topics  # so fine that every topic is a theme


def test_fuzzy_weights_scale_each_neighbourhood_to_the_same_total() -> None:
    sims = np.array([[0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.45, 0.1]], np.float32)
    w = fuzzy_weights(sims)
    assert np.allclose(w[:, 0], 1.0)  # the nearest neighbour is a full member
    assert np.allclose(w.sum(axis=1), np.log2(4), atol=1e-3)  # dense and sparse neighbourhoods alike
    assert (np.diff(w, axis=1) <= 1e-6).all()  # farther weighs less


def test_tight_sibling_topics_without_shared_edges_still_share_a_theme() -> None:
    """Siblings at cosine 0.7 with tight members share no kNN edge; their centroids tell."""
    rng = np.random.default_rng(3)
    parents = _unit(rng.normal(size=(3, DIM)))
    centres = [c for p in parents for c in _unit(p + 0.65 * _unit(rng.normal(size=(3, DIM))))]
    truth = np.repeat(np.arange(9), 60)
    x = _unit(np.asarray(centres)[truth] + rng.normal(scale=0.02, size=(len(truth), DIM)))
    fit = fit_clusters(x, ClusterParams())
    assert adjusted_rand(truth, fit.labels) == pytest.approx(1.0)
    assert adjusted_rand(truth // 3, fit.theme_of(fit.labels)) == pytest.approx(1.0)
    apart = fit_clusters(x, ClusterParams(theme_join_cosine=1.0))
    assert apart.n_themes == 9  # without the join every tight topic is a theme of its own
