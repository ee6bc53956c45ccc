"""Nearest-centroid assignment between reclusters, with centroids that follow their online members.

Each topic has the centroid of the last run (its *anchor*), the run's member count, and a cosine
threshold calibrated on the run's members. A new vector joins the nearest topic when its cosine clears
that topic's threshold, else it is an outlier (-1): one matrix product per batch.

Drift: a topic's centroid is ``normalise(size · anchor + w · online_mean)`` where ``online_mean`` is
the mean direction of the items it took online and ``w = min(online_count, drift_cap · size)``. The
online members can therefore never outweigh the run's by more than ``drift_cap``, and the centroid
stays within ``atan(drift_cap)`` of its anchor (27° for 0.5) however long the stream runs. The next
recluster replaces anchors and clears the drift.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from topics.fit.geometry import unit_rows
from topics.ids import OUTLIER, TopicId

DEFAULT_DRIFT_CAP = 0.5


class OnlineAssigner:
    """Topics of the last run as a centroid matrix; assigns batches and drifts centroids (bounded)."""

    def __init__(
        self,
        centroids: Mapping[TopicId, np.ndarray],
        thresholds: Mapping[TopicId, float],
        sizes: Mapping[TopicId, int] | None = None,
        *,
        drift_cap: float = DEFAULT_DRIFT_CAP,
        dim: int | None = None,
    ) -> None:
        if drift_cap < 0:
            raise ValueError(f"drift_cap must be >= 0, got {drift_cap}")
        missing = set(centroids) ^ set(thresholds)
        if missing:
            raise ValueError(
                f"centroids and thresholds must name the same topics; differ on {sorted(missing)}"
            )
        if OUTLIER in centroids:
            raise ValueError("topic id -1 means outlier and cannot be a topic")
        self.drift_cap = float(drift_cap)
        ids = sorted(int(t) for t in centroids)
        if dim is None:
            dim = int(np.asarray(centroids[ids[0]]).shape[-1]) if ids else 0
        self.dim = dim
        self._ids = np.asarray(ids, dtype=np.int64)
        self._anchors = unit_rows(np.stack([centroids[t] for t in ids]) if ids else np.zeros((0, dim)), dim)
        self._thresholds = np.asarray([thresholds[t] for t in ids], dtype=np.float32)
        sizes = sizes or {}
        self._sizes = np.asarray([max(1, int(sizes.get(t, 1))) for t in ids], dtype=np.float64)
        self._sums = np.zeros((len(ids), dim), dtype=np.float64)
        self._counts = np.zeros(len(ids), dtype=np.int64)
        self._current = self._anchors.copy()

    # ---- reading ----

    @property
    def topic_ids(self) -> list[TopicId]:
        return [int(t) for t in self._ids]

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, topic_id: object) -> bool:
        return isinstance(topic_id, int | np.integer) and bool((self._ids == topic_id).any())

    def centroid(self, topic_id: TopicId) -> np.ndarray:
        """The drifted centroid of one topic (a copy)."""
        return self._current[self._row(topic_id)].copy()

    def threshold(self, topic_id: TopicId) -> float:
        return float(self._thresholds[self._row(topic_id)])

    def online_count(self, topic_id: TopicId) -> int:
        """How many items this topic took online since its anchor was set."""
        return int(self._counts[self._row(topic_id)])

    def _row(self, topic_id: TopicId) -> int:
        rows = np.flatnonzero(self._ids == topic_id)
        if len(rows) == 0:
            raise KeyError(f"no topic {topic_id}")
        return int(rows[0])

    # ---- the hot path ----

    def assign(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Topic ids (-1 = outlier) and the cosine to the nearest centroid, for each row."""
        x = unit_rows(vectors, self.dim)
        n = x.shape[0]
        if n == 0 or len(self._ids) == 0:
            return np.full(n, OUTLIER, np.int64), np.zeros(n, np.float32)
        sims = x @ self._current.T
        best = sims.argmax(axis=1)
        scores = sims[np.arange(n), best]
        topics = np.where(scores >= self._thresholds[best], self._ids[best], OUTLIER)
        return topics.astype(np.int64), scores.astype(np.float32)

    def learn(self, vectors: np.ndarray, topic_ids: np.ndarray) -> None:
        """Fold items assigned online into their topics' running means (outliers are ignored)."""
        x = unit_rows(vectors, self.dim)
        topic_ids = np.asarray(topic_ids, dtype=np.int64)
        if topic_ids.shape != (x.shape[0],):
            raise ValueError(f"need one topic id per vector: {topic_ids.shape} ids for {x.shape[0]} vectors")
        kept = topic_ids != OUTLIER
        if not kept.any():
            return
        rows = self._rows_of(topic_ids[kept])
        order = np.argsort(rows, kind="stable")
        rows, members = rows[order], x[kept][order].astype(np.float64)
        touched, starts = np.unique(rows, return_index=True)
        self._sums[touched] += np.add.reduceat(members, starts, axis=0)
        self._counts[touched] += np.diff(np.append(starts, len(rows)))
        self._refresh(touched)

    def _rows_of(self, topic_ids: np.ndarray) -> np.ndarray:
        if len(self._ids) == 0:
            raise KeyError(f"unknown topic ids: {sorted(set(topic_ids.tolist()))}")
        rows = np.minimum(np.searchsorted(self._ids, topic_ids), len(self._ids) - 1)
        bad = self._ids[rows] != topic_ids
        if bad.any():
            raise KeyError(f"unknown topic ids: {sorted(set(topic_ids[bad].tolist()))}")
        return rows

    def _refresh(self, rows: np.ndarray) -> None:
        counts = self._counts[rows].astype(np.float64)
        means = self._sums[rows] / np.maximum(np.linalg.norm(self._sums[rows], axis=1, keepdims=True), 1e-12)
        weight = np.minimum(counts, self.drift_cap * self._sizes[rows])
        mixed = self._sizes[rows, None] * self._anchors[rows] + weight[:, None] * means
        self._current[rows] = unit_rows(mixed, self.dim)

    # ---- change ----

    def add_topic(self, topic_id: TopicId, centroid: np.ndarray, threshold: float, size: int) -> None:
        """A topic born between runs (emerging): its founders' mean is its anchor."""
        if topic_id == OUTLIER or topic_id in self:
            raise ValueError(f"topic id {topic_id} is taken or invalid")
        at = int(np.searchsorted(self._ids, topic_id))
        anchor = unit_rows(np.asarray(centroid).reshape(1, -1), self.dim)
        self._ids = np.insert(self._ids, at, topic_id)
        self._anchors = np.insert(self._anchors, at, anchor[0], axis=0)
        self._current = np.insert(self._current, at, anchor[0], axis=0)
        self._thresholds = np.insert(self._thresholds, at, np.float32(threshold))
        self._sizes = np.insert(self._sizes, at, float(max(1, size)))
        self._sums = np.insert(self._sums, at, 0.0, axis=0)
        self._counts = np.insert(self._counts, at, 0)

    # ---- persistence ----

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to continue exactly where this assigner stands."""
        return {
            "ids": self._ids.copy(),
            "anchors": self._anchors.copy(),
            "thresholds": self._thresholds.copy(),
            "sizes": self._sizes.copy(),
            "sums": self._sums.copy(),
            "counts": self._counts.copy(),
            "drift_cap": np.asarray(self.drift_cap),
            "dim": np.asarray(self.dim),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> OnlineAssigner:
        """The inverse of :meth:`to_arrays`; refuses inconsistent shapes."""
        ids = np.asarray(arrays["ids"], dtype=np.int64)
        k, dim = len(ids), int(arrays["dim"])
        shapes = {"anchors": (k, dim), "thresholds": (k,), "sizes": (k,), "sums": (k, dim), "counts": (k,)}
        for name, shape in shapes.items():
            if np.asarray(arrays[name]).shape != shape:
                raise ValueError(
                    f"online state: {name} has shape {np.asarray(arrays[name]).shape}, want {shape}"
                )
        out = cls({}, {}, drift_cap=float(arrays["drift_cap"]), dim=dim)
        out._ids = ids
        out._anchors = np.asarray(arrays["anchors"], dtype=np.float32)
        out._thresholds = np.asarray(arrays["thresholds"], dtype=np.float32)
        out._sizes = np.asarray(arrays["sizes"], dtype=np.float64)
        out._sums = np.asarray(arrays["sums"], dtype=np.float64)
        out._counts = np.asarray(arrays["counts"], dtype=np.int64)
        out._current = out._anchors.copy()
        touched = np.flatnonzero(out._counts > 0)
        if len(touched):
            out._refresh(touched)
        return out
