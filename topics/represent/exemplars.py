"""Exemplars: the most typical yet diverse members of each topic, chosen from a bounded pool.

Typicality is a member's cosine to its topic's centroid in the clustering space. While the job
scrolls, each topic keeps only its `pool_size` most typical members (with the vectors that are
shown, e.g. image vectors), so memory stays the same for a topic of a hundred or ten million
items. Maximal marginal relevance then picks `k` of the pool, trading typicality against
similarity to what is already picked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import l2_normalise
from indexer.items import ItemId


@dataclass(frozen=True)
class Exemplar:
    """One picked member: its id, its typicality, and what to show for it (an image path or a caption)."""

    item_id: ItemId
    typicality: float
    shown: str | None = None


@dataclass
class _Pool:
    scores: np.ndarray  # (m,) float32, typicality
    vectors: np.ndarray  # (m, d) float16: enough for diversity, half the memory
    item_ids: list[ItemId]
    shown: list[str | None]


def typicality(vectors: np.ndarray, topic_ids: np.ndarray, centroids: Mapping[int, np.ndarray]) -> np.ndarray:
    """Cosine of each vector to its topic's centroid; NaN for members of topics without a centroid."""
    vectors = l2_normalise(vectors)
    scores = np.full(len(topic_ids), np.nan, dtype=np.float32)
    for topic in np.unique(topic_ids):
        centre = centroids.get(int(topic))
        if centre is not None:
            rows = topic_ids == topic
            scores[rows] = vectors[rows] @ l2_normalise(centre)
    return scores


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices of `k` rows by maximal marginal relevance; `vectors` must be L2-normalised.

    >>> v = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]], dtype=np.float32)
    >>> mmr(np.array([0.9, 0.89, 0.5]), v, k=2, diversity=0.7)
    [0, 2]
    """
    if len(relevance) == 0:
        return []
    chosen = [int(np.argmax(relevance))]
    closest = vectors @ vectors[chosen[0]]  # each row's highest similarity to anything chosen
    while len(chosen) < min(k, len(relevance)):
        gain = (1.0 - diversity) * relevance - diversity * closest
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        closest = np.maximum(closest, vectors @ vectors[best])
    return chosen


class ExemplarPicker:
    """Per-topic bounded pools of typical members, fed batch by batch; `pick` runs MMR on each pool."""

    def __init__(self, *, k: int = 9, diversity: float = 0.3, pool_size: int = 100) -> None:
        if not 0.0 <= diversity <= 1.0:
            raise ValueError(f"diversity must be in [0, 1], got {diversity}")
        if pool_size < k:
            raise ValueError(f"pool_size ({pool_size}) must be at least k ({k})")
        self.k, self.diversity, self.pool_size = k, diversity, pool_size
        self._pools: dict[int, _Pool] = {}

    def add(
        self,
        topic_ids: np.ndarray,
        item_ids: Sequence[ItemId],
        scores: np.ndarray,
        vectors: np.ndarray,
        shown: Sequence[str | None] | None = None,
    ) -> None:
        """Offer one batch: members with NaN scores (no centroid, or nothing to show) are ignored."""
        topic_ids = np.asarray(topic_ids)
        candidate = ~np.isnan(scores) & self._beats_pool_floor(topic_ids, scores)
        for topic in np.unique(topic_ids[candidate]):
            rows = np.flatnonzero(candidate & (topic_ids == topic))
            self._merge(
                int(topic),
                _Pool(
                    scores=scores[rows].astype(np.float32),
                    vectors=l2_normalise(vectors[rows]).astype(np.float16),
                    item_ids=[item_ids[i] for i in rows],
                    shown=[shown[i] for i in rows] if shown is not None else [None] * len(rows),
                ),
            )

    def _beats_pool_floor(self, topic_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        # Cheap vectorised filter: once a pool is full, only members above its weakest can enter.
        floor = np.full(len(scores), -np.inf, dtype=np.float32)
        for topic, pool in self._pools.items():
            if len(pool.scores) >= self.pool_size:
                floor[topic_ids == topic] = pool.scores.min()
        with np.errstate(invalid="ignore"):
            return scores > floor

    def _merge(self, topic: int, new: _Pool) -> None:
        old = self._pools.get(topic)
        if old is not None:
            new = _Pool(
                scores=np.concatenate([old.scores, new.scores]),
                vectors=np.concatenate([old.vectors, new.vectors]),
                item_ids=old.item_ids + new.item_ids,
                shown=old.shown + new.shown,
            )
        if len(new.scores) > self.pool_size:
            keep = np.argpartition(-new.scores, self.pool_size - 1)[: self.pool_size]
            new = _Pool(
                scores=new.scores[keep],
                vectors=new.vectors[keep],
                item_ids=[new.item_ids[i] for i in keep],
                shown=[new.shown[i] for i in keep],
            )
        self._pools[topic] = new

    def topics(self) -> list[int]:
        return list(self._pools)

    def pick(self) -> dict[int, list[Exemplar]]:
        """For every topic seen, up to `k` exemplars, the most typical first."""
        picked = {}
        for topic, pool in self._pools.items():
            order = np.argsort(-pool.scores, kind="stable")  # deterministic whatever the arrival order
            vectors = l2_normalise(pool.vectors[order].astype(np.float32))
            chosen = mmr(pool.scores[order], vectors, self.k, self.diversity)
            picked[topic] = [
                Exemplar(pool.item_ids[order[i]], float(pool.scores[order[i]]), pool.shown[order[i]])
                for i in chosen
            ]
        return picked
