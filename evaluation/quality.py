"""Clustering quality against ground truth, counted over all items.

Outliers (-1) are kept and counted as one more cluster: a method cannot look good by declaring
the hard half of a corpus noise. AMI and ARI are chance-adjusted (random labels score about 0 however
many clusters they have) and choose the defaults; NMI rewards finer partitions and is kept as a column.
NMI and ARI come from one contingency table; AMI is scikit-learn's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topics.ids import OUTLIER


@dataclass(frozen=True)
class Agreement:
    """How well found labels match true classes, over all items."""

    n_items: int
    n_topics: int  # clusters found, outliers excluded
    outlier_share: float
    nmi: float
    ari: float
    ami: float


def contingency(truth: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Counts table (true class x found label); -1 in `found` is one column like any other."""
    truth, found = _check(truth, found)
    _, t_idx = np.unique(truth, return_inverse=True)
    _, f_idx = np.unique(found, return_inverse=True)
    table = np.zeros((t_idx.max() + 1, f_idx.max() + 1), np.int64)
    np.add.at(table, (t_idx, f_idx), 1)
    return table


def adjusted_rand(truth: np.ndarray, found: np.ndarray) -> float:
    """Adjusted Rand index (Hubert and Arabie), 1.0 for identical partitions."""
    table = contingency(truth, found).astype(np.float64)
    n = table.sum()
    sum_cells = _pairs(table).sum()
    sum_rows = _pairs(table.sum(axis=1)).sum()
    sum_cols = _pairs(table.sum(axis=0)).sum()
    expected = sum_rows * sum_cols / _pairs(n)
    best = (sum_rows + sum_cols) / 2
    if best == expected:  # both partitions trivial (one cluster, or all singletons)
        return 1.0
    return float((sum_cells - expected) / (best - expected))


def normalized_mutual_info(truth: np.ndarray, found: np.ndarray) -> float:
    """NMI with the arithmetic mean of the two entropies (scikit-learn's default)."""
    table = contingency(truth, found).astype(np.float64)
    n = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    h_truth, h_found = _entropy(rows / n), _entropy(cols / n)
    if h_truth == 0.0 and h_found == 0.0:
        return 1.0
    mi = _mutual_info(table)
    denom = (h_truth + h_found) / 2
    return max(0.0, mi / denom) if denom > 0 else 0.0


def adjusted_mutual_info(truth: np.ndarray, found: np.ndarray) -> float:
    """AMI with the arithmetic mean of the two entropies (scikit-learn's, whose expected mutual
    information is the costly part); -1 in `found` is one cluster like any other."""
    from sklearn.metrics import adjusted_mutual_info_score

    truth, found = _check(truth, found)
    return float(adjusted_mutual_info_score(truth, found))


def agreement(truth: np.ndarray, found: np.ndarray) -> Agreement:
    """All the figures the quality benchmark reports for one clustering."""
    truth, found = _check(truth, found)
    return Agreement(
        n_items=len(found),
        n_topics=len(np.unique(found[found != OUTLIER])),
        outlier_share=float((found == OUTLIER).mean()) if len(found) else 0.0,
        nmi=normalized_mutual_info(truth, found),
        ari=adjusted_rand(truth, found),
        ami=adjusted_mutual_info(truth, found),
    )


def grouping_ceiling(truth: np.ndarray, found: np.ndarray, passes: int = 3) -> tuple[float, np.ndarray]:
    """How far grouping whole clusters of `found` can go against `truth`, with the answers known: the AMI
    and the grouping (one group per item) that a label-aware search reaches.

    Each found cluster (outliers, -1, are one cluster and may be grouped too) starts in the group of
    its most common true class (or alone, where that scores higher); then, cluster by cluster, it moves
    to whichever other group or a new group of its own raises AMI most, for up to `passes` rounds. A
    greedy search: a bound found, not proven, but any unsupervised grouping of the same clusters
    (themes made of whole topics) that scores above it would beat a search that reads the labels.
    Costs one AMI per cluster and group per pass.
    """
    truth, found = _check(truth, found)
    clusters, of_item = np.unique(found, return_inverse=True)
    class_of = np.unique(truth, return_inverse=True)[1]
    group = np.array([np.bincount(class_of[of_item == i]).argmax() for i in range(len(clusters))])
    best = adjusted_mutual_info(truth, group[of_item])
    alone = adjusted_mutual_info(truth, of_item)
    if alone > best:  # every cluster a group of its own is a grouping too
        best, group = alone, np.arange(len(clusters))
    for _ in range(passes):
        improved = False
        for i in range(len(clusters)):
            was, choice = group[i], group[i]
            for candidate in [*np.unique(group), group.max() + 1]:
                group[i] = candidate
                score = adjusted_mutual_info(truth, group[of_item]) if candidate != was else best
                if score > best + 1e-9:
                    best, choice, improved = score, candidate, True
            group[i] = choice
        if not improved:
            break
    return best, group[of_item]


def _check(truth: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, found = np.asarray(truth).ravel(), np.asarray(found).ravel()
    if truth.shape != found.shape:
        raise ValueError(f"truth has {truth.size} labels, found has {found.size}")
    if truth.size == 0:
        raise ValueError("cannot score an empty labelling")
    return truth, found


def _pairs(x: np.ndarray | float) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x * (x - 1) / 2


def _mutual_info(table: np.ndarray) -> float:
    n = table.sum()
    rows, cols = table.sum(axis=1), table.sum(axis=0)
    nz = table > 0
    outer = np.outer(rows, cols)[nz]
    return float((table[nz] / n * np.log(table[nz] * n / outer)).sum())


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
