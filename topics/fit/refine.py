"""What the fit does with raw communities: nearest-centroid rounds, size and chance tests, merges of
communities closer than noise, per-topic cosine floors, strays and outliers."""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse

from topics.ids import OUTLIER

_MERGE_Z = 2.0  # communities closer than this many noise spreads are one topic (see _merge_indistinct)
_CHANCE_MARGIN = 3.0  # a topic must be this many times tighter than random vectors would be
_FLOOR_SIGMAS = 4.0  # robust sigmas below a topic's median cosine where its edge lies


def _refine(sample: np.ndarray, labels: np.ndarray, rounds: int) -> np.ndarray:
    """Nearest-centroid rounds over the whole sample: the fit then agrees with `assign` by construction.

    Also spreads topics found on the graph subsample to the rest of the sample.
    """
    for _ in range(rounds):
        labels = _relabel_by_size(labels)  # no gaps: an empty label's zero centroid could win the argmax
        centroids = _centroids(sample, labels)
        if centroids.shape[0] == 0:
            return labels
        labels = np.concatenate(
            [(sample[s : s + 65_536] @ centroids.T).argmax(axis=1) for s in range(0, len(sample), 65_536)]
        ).astype(np.int64)
    return labels


def _drop_small(labels: np.ndarray, mcs: int) -> np.ndarray:
    """Topics under `mcs` members become outliers."""
    sizes = np.bincount(labels[labels >= 0], minlength=1)
    return np.where((labels >= 0) & (sizes[np.maximum(labels, 0)] >= mcs), labels, OUTLIER)


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Raw labels 0..k-1 in decreasing size: stable across equal fits, readable in logs."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = np.full(labels.max() + 2 if len(labels) else 1, OUTLIER, np.int64)
    mapping[order] = np.arange(len(order))
    out = np.full_like(labels, OUTLIER)
    kept = labels >= 0
    out[kept] = mapping[labels[kept]]
    return out


def _centroids(sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit mean direction of each topic's members (a sparse one-hot product: np.add.at is slow)."""
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    kept = np.flatnonzero(labels >= 0)
    ones = np.ones(len(kept), np.float32)
    members = sparse.csr_matrix((ones, (labels[kept], kept)), shape=(k, len(labels)))
    sums = np.asarray(members @ sample, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return (sums / norms).astype(np.float32)


def _floors(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float | None
) -> np.ndarray:
    """Per-topic cosine below which a vector is an outlier: median - 4 robust sigmas of its members.

    The threshold, when set, lowers the floor to it (outliers above it join their nearest topic).
    """
    k = centroids.shape[0]
    floors = np.zeros(k, np.float32)
    for topic in range(k):
        sims = sample[labels == topic] @ centroids[topic]
        median = np.median(sims)
        spread = 1.4826 * np.median(np.abs(sims - median))
        floors[topic] = median - _FLOOR_SIGMAS * spread
    if threshold is not None:
        floors = np.minimum(floors, np.float32(threshold))
    return floors


def _drop_incoherent(sample: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A community no tighter than chance (uniform noise the graph had to put somewhere) is outliers.

    m random unit vectors in d dims have cosine about 1/sqrt(m) to their mean, give or take 1/sqrt(d);
    a real topic must clear that by `_CHANCE_MARGIN` of those spreads. (A bound of 3/sqrt(m) alone
    exceeds 0.86 below 13 members and dropped every small real topic.)
    """
    out = labels.copy()
    spread = 1.0 / math.sqrt(sample.shape[1])
    for topic in np.unique(labels[labels >= 0]):
        members = sample[labels == topic]
        centre = members.sum(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        if np.median(members @ centre) < 1.0 / math.sqrt(len(members)) + _CHANCE_MARGIN * spread:
            out[labels == topic] = OUTLIER
    return out


def _merge_indistinct(sample: np.ndarray, labels: np.ndarray, z: float = _MERGE_Z) -> np.ndarray:
    """Merge communities whose centroids are no further apart than sampling noise explains.

    Modularity at a fixed resolution cuts one large homogeneous topic into pieces. Pieces of one
    topic differ only by the noise of their centroid estimates, about s·sqrt(1/m_a + 1/m_b) (s: member
    spread); sibling topics differ by more. Measured: the pieces Leiden cut from the drift "merge"
    scenario's 120-member topic sit at 1.2–1.4 noise spreads from each other; the closest true pair of
    the hard mixture (siblings at centre cosine 0.95–0.97, sizes 22–2,169) at 2.6, most above 5.
    """
    out = labels.copy()
    while True:
        topics = np.unique(out[out >= 0])
        if len(topics) < 2:
            return out
        sums = np.stack([sample[out == t].sum(axis=0) for t in topics]).astype(np.float64)
        sizes = np.array([(out == t).sum() for t in topics], np.float64)
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        spread = 2.0 * (1.0 - np.linalg.norm(sums, axis=1) / sizes)  # mean |x - c|^2 of the members
        gap = np.sqrt(np.maximum(2.0 - 2.0 * centroids @ centroids.T, 0.0))
        pooled = (sizes[:, None] * spread[:, None] + sizes[None, :] * spread[None, :]) / (
            sizes[:, None] + sizes[None, :]
        )
        noise = np.sqrt(pooled * (1.0 / sizes[:, None] + 1.0 / sizes[None, :]))
        ratio = gap / np.maximum(noise, 1e-12)
        np.fill_diagonal(ratio, np.inf)
        a, b = np.unravel_index(np.argmin(ratio), ratio.shape)
        if ratio[a, b] >= z:
            return out
        out[out == topics[b]] = topics[a]


def _drop_strays(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, floors: np.ndarray
) -> np.ndarray:
    """Members far below their topic's floor are outliers: a graph puts every node in some community."""
    out = labels.copy()
    kept = np.flatnonzero(labels >= 0)
    sims = np.einsum("ij,ij->i", sample[kept], centroids[labels[kept]])
    out[kept[sims < floors[labels[kept]]]] = OUTLIER
    return out


def _absorb_outliers(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float
) -> np.ndarray:
    out = labels.copy()
    idx = np.flatnonzero(labels == OUTLIER)
    if len(idx) == 0 or centroids.shape[0] == 0:
        return out
    sims = sample[idx] @ centroids.T
    best = sims.argmax(axis=1)
    ok = sims[np.arange(len(idx)), best] >= threshold
    out[idx[ok]] = best[ok]
    return out
