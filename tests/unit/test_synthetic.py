"""The synthetic generator: geometry of the mixtures and the drift scenarios' promises."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation import synthetic
from evaluation.synthetic import Cluster
from indexer.store.qdrant import QdrantBackend


def test_sibling_centres_have_the_requested_cosine() -> None:
    rng = np.random.default_rng(0)
    parent = synthetic.random_centres(1, 512, rng)[0]
    siblings = synthetic.sibling_centres(parent, 3, 0.96, rng)
    sims = siblings @ siblings.T
    assert np.allclose(np.linalg.norm(siblings, axis=1), 1.0)
    assert np.allclose(sims[np.triu_indices(3, 1)], 0.96)
    with pytest.raises(ValueError, match="cosine"):
        synthetic.sibling_centres(parent, 2, 1.5, rng)


@pytest.mark.parametrize(("noise", "expected"), [(0.3, 0.958), (0.8, 0.781)])
def test_noise_sets_the_mean_cosine_to_the_centre(noise: float, expected: float) -> None:
    rng = np.random.default_rng(1)
    centre = synthetic.random_centres(1, 512, rng)[0]
    points = synthetic.sample_cluster(Cluster(centre, 2_000, noise), rng)
    assert points.dtype == np.float32
    assert np.allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-5)
    assert float((points @ centre).mean()) == pytest.approx(expected, abs=0.01)


def test_elongation_stretches_the_spread_along_its_axes() -> None:
    rng = np.random.default_rng(2)
    centre = synthetic.random_centres(1, 512, rng)[0]
    axes = np.linalg.qr(rng.standard_normal((512, 4)))[0].T
    points = synthetic.sample_cluster(Cluster(centre, 3_000, 0.5, 4.0, axes), rng)
    residual = points - points.mean(axis=0)
    along = (residual @ axes.T).var()
    other = np.linalg.qr(rng.standard_normal((512, 4)))[0].T
    across = (residual @ other.T).var()
    assert along > 10 * across


def test_hard_mixture_has_siblings_unequal_sizes_and_noise() -> None:
    clusters = synthetic.hard_clusters(k=20, n=10_000, seed=3)
    centres = np.stack([c.centre for c in clusters])
    sims = centres @ centres.T
    np.fill_diagonal(sims, 0)
    sibling_sims = sims[sims > 0.5]
    assert len(sibling_sims) == 2 * (20 // 4)  # each pair counted twice
    assert sibling_sims.min() >= 0.95 - 1e-9 and sibling_sims.max() <= 0.97 + 1e-9
    sizes = np.array([c.size for c in clusters])
    assert sizes.max() / sizes.min() == pytest.approx(100, rel=0.1)
    corpus = synthetic.hard_mixture(k=20, n=10_000, background=0.05, seed=3)
    assert (corpus.labels == -1).sum() == 500
    assert len(set(corpus.ids)) == len(corpus)


def test_generation_is_deterministic_per_seed() -> None:
    a = synthetic.easy_mixture(k=3, n=90, seed=7)
    b = synthetic.easy_mixture(k=3, n=90, seed=7)
    c = synthetic.easy_mixture(k=3, n=90, seed=8)
    assert a.ids == b.ids and np.array_equal(a.vectors, b.vectors) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.vectors, c.vectors)


def test_stream_mixture_yields_n_items_in_batches_with_unique_ids() -> None:
    clusters = synthetic.hard_clusters(k=8, n=1_000, seed=4)
    batches = list(synthetic.stream_mixture(clusters, 2_500, batch=1_000, background=0.1, seed=4))
    assert [len(b) for b in batches] == [1_000, 1_000, 500]
    ids = [i for b in batches for i in b.ids]
    assert len(set(ids)) == 2_500
    labels = np.concatenate([b.labels for b in batches])
    assert 0.05 < (labels == -1).mean() < 0.15
    assert set(np.unique(labels)) <= set(range(-1, 8))


def test_split_moves_part_of_cluster_zero_under_the_same_ids() -> None:
    scenario = synthetic.drift_scenario("split", k=4, size=100, seed=5)
    first, second = scenario.runs
    assert first.ids == second.ids
    moved = (first.labels == 0) & (second.labels == 4)
    assert moved.sum() == 40
    assert not np.allclose(first.vectors[moved], second.vectors[moved])
    unchanged = first.labels != 0
    assert np.array_equal(first.vectors[unchanged], second.vectors[unchanged])
    assert scenario.expected == [[synthetic.ExpectedEvent("split", (0,), (0, 4))]]


def test_merge_emerge_vanish_and_steady_change_what_they_say() -> None:
    merge = synthetic.drift_scenario("merge", k=4, size=50)
    assert set(np.unique(merge.runs[1].labels)) == {0, 2, 3}
    emerge = synthetic.drift_scenario("emerge", k=4, size=50)
    assert len(emerge.runs[1]) == 250 and emerge.runs[1].ids[:200] == emerge.runs[0].ids
    assert (emerge.runs[1].labels == 4).sum() == 50
    vanish = synthetic.drift_scenario("vanish", k=4, size=50)
    assert len(vanish.runs[1]) == 150 and 0 not in vanish.runs[1].labels
    steady = synthetic.drift_scenario("steady", k=4, size=60)
    assert len(steady.runs[1]) == 60 * 4 + 3 * 4
    assert [e.kind for e in steady.expected[0]] == ["survived"] * 4


def test_store_corpus_keeps_payloads_of_drifted_items_and_prunes() -> None:
    backend = QdrantBackend.memory()
    items = backend.collection("items")
    scenario = synthetic.drift_scenario("vanish", k=3, size=20)
    first, second = scenario.runs
    survivor = next(i for i, k in zip(first.ids, first.labels, strict=True) if k != 0)
    synthetic.store_corpus(items, first)
    items.set_payload([survivor], {"topic_0": 7})
    assert items.count() == 60
    moved = synthetic.Corpus(second.ids, second.vectors[::-1].copy(), second.labels)
    synthetic.store_corpus(items, moved, prune=True)
    assert items.count() == 40
    kept = items.retrieve([survivor], vectors=True)[0]
    assert kept.payload["topic_0"] == 7
    at = second.ids.index(survivor)
    assert np.allclose(kept.vectors["image"], moved.vectors[at], atol=1e-6)
    assert set(kept.vectors) == {"image", "text"}
    backend.close()


def test_two_level_mixture_nests_sibling_topics_in_groups() -> None:
    corpus = synthetic.two_level_mixture(groups=5, n=3_000, seed=6)
    assert corpus.groups is not None and corpus.groups.shape == corpus.labels.shape
    topics = np.unique(corpus.labels[corpus.labels >= 0])
    parent = {int(t): np.unique(corpus.groups[corpus.labels == t]) for t in topics}
    assert all(len(g) == 1 for g in parent.values())  # every topic lies in one group
    per_group = np.bincount([int(g[0]) for g in parent.values()])
    assert len(per_group) == 5 and per_group.min() >= 2 and per_group.max() <= 4
    assert (corpus.groups[corpus.labels == -1] == -1).all() and (corpus.labels == -1).sum() == 150
    centres = np.stack([corpus.vectors[corpus.labels == t].mean(axis=0) for t in topics])
    centres = synthetic.normalise(centres)
    same_group = np.array([[parent[a][0] == parent[b][0] for b in topics] for a in topics])
    sims = centres @ centres.T
    off_diagonal = ~np.eye(len(topics), dtype=bool)
    assert sims[same_group & off_diagonal].min() > 0.85  # siblings: close (0.95-0.97 between centres)
    assert sims[~same_group].max() < 0.3  # other groups: near-orthogonal
