"""Metrics in evaluation.quality agree with scikit-learn and count outliers as one cluster."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

from evaluation.quality import (
    adjusted_mutual_info,
    adjusted_rand,
    agreement,
    contingency,
    grouping_ceiling,
    normalized_mutual_info,
)


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_on_random_labellings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 6, 300)
    found = np.where(rng.random(300) < 0.7, truth, rng.integers(-1, 8, 300))
    assert adjusted_rand(truth, found) == pytest.approx(adjusted_rand_score(truth, found), abs=1e-10)
    assert normalized_mutual_info(truth, found) == pytest.approx(
        normalized_mutual_info_score(truth, found), abs=1e-10
    )
    assert adjusted_mutual_info(truth, found) == pytest.approx(
        adjusted_mutual_info_score(truth, found), abs=1e-10
    )


def test_random_fine_labels_score_high_nmi_but_no_chance_adjusted_agreement() -> None:
    """Why AMI and ARI choose the defaults: NMI rewards a partition for being fine, even at random."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, 2_000)
    shattered = rng.integers(0, 400, 2_000)
    a = agreement(truth, shattered)
    assert a.nmi > 0.2
    assert abs(a.ami) < 0.02 and abs(a.ari) < 0.02


def test_identical_partitions_score_one_whatever_the_names() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    found = np.array([5, 5, -1, -1, 7, 7])
    assert adjusted_rand(truth, found) == pytest.approx(1.0)
    assert normalized_mutual_info(truth, found) == pytest.approx(1.0)


def test_all_outliers_is_one_cluster_and_scores_zero() -> None:
    truth = np.array([0, 0, 1, 1, 2, 2])
    found = np.full(6, -1)
    a = agreement(truth, found)
    assert (a.n_topics, a.outlier_share) == (0, 1.0)
    assert a.ari == pytest.approx(adjusted_rand_score(truth, found))
    assert a.nmi == pytest.approx(0.0)
    assert a.ami == pytest.approx(adjusted_mutual_info_score(truth, found))


def test_agreement_reports_topics_and_outlier_share() -> None:
    truth = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    found = np.array([3, 3, -1, 4, 4, 4, -1, 9])
    a = agreement(truth, found)
    assert (a.n_items, a.n_topics, a.outlier_share) == (8, 3, 0.25)


def test_contingency_counts_outliers_as_a_column() -> None:
    table = contingency(np.array([0, 0, 1]), np.array([-1, 2, 2]))
    assert table.tolist() == [[1, 1], [0, 1]]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="labels"):
        agreement(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="empty"):
        agreement(np.zeros(0), np.zeros(0))


def test_grouping_ceiling_rebuilds_classes_cut_into_pieces() -> None:
    truth = np.repeat(np.arange(4), 30)
    found = np.arange(120) // 10  # every class cut into three pure clusters
    score, grouped = grouping_ceiling(truth, found)
    assert score == pytest.approx(1.0)
    assert adjusted_rand(truth, grouped) == pytest.approx(1.0)


def test_grouping_ceiling_is_no_lower_than_either_start() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 400)
    found = np.where(rng.random(400) < 0.7, truth * 3 + rng.integers(0, 3, 400), rng.integers(-1, 15, 400))
    majority = np.array([np.bincount(truth[found == f]).argmax() for f in found])
    score, grouped = grouping_ceiling(truth, found)
    assert score >= adjusted_mutual_info(truth, majority) - 1e-12
    assert score >= adjusted_mutual_info(truth, found) - 1e-12
    assert score == pytest.approx(adjusted_mutual_info(truth, grouped))
    # whole clusters only: items of one found cluster share a group
    for f in np.unique(found):
        assert len(np.unique(grouped[found == f])) == 1
