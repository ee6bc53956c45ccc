"""Small topics survive the community search running on a subset of a big sample."""

from __future__ import annotations

import numpy as np

from evaluation.synthetic import Cluster, random_centres, sample_cluster, sibling_centres
from topics.fit.clustering import fit_clusters
from topics.fit.graph_sample import stratified_subsample
from topics.fit.params import ClusterParams


def _sample() -> tuple[np.ndarray, np.ndarray]:
    """A 4,000-item topic, a 30-item sibling (cosine 0.96) and a 30-item topic apart, shuffled."""
    rng = np.random.default_rng(0)
    parent, apart = random_centres(2, 128, rng)
    big, small = sibling_centres(parent, 2, 0.96, rng)
    parts = [
        sample_cluster(Cluster(big, 4000, 0.5), rng),
        sample_cluster(Cluster(small, 30, 0.5), rng),
        sample_cluster(Cluster(apart, 30, 0.5), rng),
    ]
    labels = np.repeat([0, 1, 2], [4000, 30, 30])
    order = rng.permutation(len(labels))
    return np.concatenate(parts)[order], labels[order]


def test_a_small_distinct_topic_keeps_its_items_and_the_size_is_exact() -> None:
    sample, labels = _sample()
    chosen = stratified_subsample(sample, 600, seed=0)
    assert len(chosen) == 600 == len(np.unique(chosen))
    assert np.bincount(labels[chosen], minlength=3)[2] >= 20  # a uniform 600 of 4,060 keeps ~4
    assert np.array_equal(chosen, stratified_subsample(sample, 600, seed=0))


def test_a_small_sibling_under_the_minimum_on_the_graph_is_found_on_the_whole_sample() -> None:
    """60 items beside a 3,000-item sibling: ~20 on a 1,000-node graph, under the 40 a topic needs."""
    rng = np.random.default_rng(1)
    big, small = sibling_centres(random_centres(1, 512, rng)[0], 2, 0.96, rng)
    sample = np.concatenate(
        [sample_cluster(Cluster(big, 3000, 0.5), rng), sample_cluster(Cluster(small, 60, 0.5), rng)]
    )
    truth = np.repeat([0, 1], [3000, 60])
    fit = fit_clusters(sample, ClusterParams(graph_size=1000, min_cluster_size=40))
    assert fit.n_topics == 2
    small_label = np.bincount(fit.labels[truth == 1][fit.labels[truth == 1] >= 0]).argmax()
    assert (fit.labels[truth == 1] == small_label).mean() > 0.9


def test_a_sample_within_the_size_is_kept_whole() -> None:
    sample, _ = _sample()
    assert np.array_equal(stratified_subsample(sample[:500], 600, seed=0), np.arange(500))
