"""Recluster: fit topics on a sample of L2-normalised vectors, then assign the rest in batches.

First version: PCA to ``reduce_dim`` + HDBSCAN on the reduced, re-normalised sample; topics are
centroids in the input space; assignment is nearest centroid with an outlier floor per topic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import hdbscan
import numpy as np
from sklearn.decomposition import PCA

if TYPE_CHECKING:
    from indexer.config import ClusterSettings

OUTLIER = -1
_FLOOR_QUANTILE = 0.02  # members below this cosine quantile of their topic mark the topic's edge


@dataclass(frozen=True)
class ClusterParams:
    """Knobs of one recluster run; ``None`` means a default that scales with the sample size."""

    min_cluster_size: int | None = None
    min_samples: int | None = None
    reduce_dim: int = 32
    outlier_threshold: float | None = None  # cosine: outliers above it join the nearest topic
    seed: int = 0

    @classmethod
    def from_settings(cls, s: ClusterSettings) -> ClusterParams:
        """Take the clustering knobs from the ``cluster`` settings section."""
        return cls(
            min_cluster_size=s.min_cluster_size,
            min_samples=s.min_samples,
            reduce_dim=s.reduce_dim,
            outlier_threshold=s.outlier_threshold,
            seed=s.seed,
        )


def default_min_cluster_size(n: int) -> int:
    """Smallest topic worth naming: grows like sqrt(n) so big corpora do not shatter into crumbs."""
    return max(5, round(math.sqrt(n) / 2))


@dataclass(frozen=True)
class Clustering:
    """The fitted topics: raw labels of the sample and centroids in the input space."""

    labels: np.ndarray  # (n_sample,) int64; -1 outlier, else 0..k-1
    centroids: np.ndarray  # (k, d) float32, L2-normalised, input space
    floors: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # (k,) cosine floor per topic
    batch_size: int = 65_536

    @property
    def n_topics(self) -> int:
        return int(self.centroids.shape[0])

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels (-1 allowed) and cosine scores for vectors outside the sample; streaming batches."""
        vectors = _as_unit_rows(vectors, self.centroids.shape[1] if self.n_topics else None)
        n = vectors.shape[0]
        labels = np.full(n, OUTLIER, np.int64)
        scores = np.zeros(n, np.float32)
        if self.n_topics == 0 or n == 0:
            return labels, scores
        for start in range(0, n, self.batch_size):
            part = slice(start, start + self.batch_size)
            labels[part], scores[part] = self._assign_batch(vectors[part])
        return labels, scores

    def _assign_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sims = batch @ self.centroids.T
        best = sims.argmax(axis=1)
        score = sims[np.arange(len(best)), best].astype(np.float32)
        floors = self.floors[best] if len(self.floors) else np.full(len(best), -np.inf, np.float32)
        labels = np.where(score >= floors, best, OUTLIER).astype(np.int64)
        return labels, score


def fit_clusters(sample: np.ndarray, params: ClusterParams) -> Clustering:
    """Fit on an L2-normalised sample (n, d) float32."""
    sample = _as_unit_rows(sample, None)
    n = sample.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 vectors to cluster, got {n}")
    reduced = _reduce(sample, params)
    mcs = min(params.min_cluster_size or default_min_cluster_size(n), n)
    mcs = max(mcs, 2)
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=mcs,
        min_samples=params.min_samples,
        metric="euclidean",
        core_dist_n_jobs=1,
    )
    labels = clusterer.fit_predict(reduced).astype(np.int64)
    labels = _relabel_by_size(labels)
    centroids = _centroids(sample, labels)
    floors = _floors(sample, labels, centroids, params.outlier_threshold)
    if params.outlier_threshold is not None:
        labels = _absorb_outliers(sample, labels, centroids, params.outlier_threshold)
    return Clustering(labels=labels, centroids=centroids, floors=floors)


def _as_unit_rows(x: np.ndarray, dim: int | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"vectors have dimension {x.shape[1]}, the topics have {dim}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _reduce(sample: np.ndarray, params: ClusterParams) -> np.ndarray:
    n, d = sample.shape
    k = min(params.reduce_dim, d, n - 1)
    if k >= d or k < 2:
        return sample.astype(np.float64)
    pca = PCA(n_components=k, svd_solver="randomized", random_state=params.seed)
    reduced = pca.fit_transform(sample)
    reduced /= np.maximum(np.linalg.norm(reduced, axis=1, keepdims=True), 1e-12)
    return reduced.astype(np.float64)


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
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    d = sample.shape[1]
    sums = np.zeros((k, d), np.float64)
    kept = labels >= 0
    np.add.at(sums, labels[kept], sample[kept])
    norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return (sums / norms).astype(np.float32)


def _floors(
    sample: np.ndarray, labels: np.ndarray, centroids: np.ndarray, threshold: float | None
) -> np.ndarray:
    """Per-topic cosine below which a new vector is an outlier (the threshold caps it when set)."""
    k = centroids.shape[0]
    floors = np.zeros(k, np.float32)
    for topic in range(k):
        sims = sample[labels == topic] @ centroids[topic]
        floors[topic] = np.quantile(sims, _FLOOR_QUANTILE)
    if threshold is not None:
        floors = np.minimum(floors, np.float32(threshold))
    return floors


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
