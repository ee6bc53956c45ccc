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
from topics.fit.geometry import group_rows


@dataclass(frozen=True)
class Exemplar:
    """One picked member: its id, its typicality, and what to show for it (an image path or a caption)."""

    item_id: ItemId
    typicality: float
    shown: str | None = None


@dataclass(frozen=True)
class _Candidates:
    scores: np.ndarray  # (m,) float32, typicality
    vectors: np.ndarray  # (m, d) float16 unit rows: enough for diversity, half the memory
    item_ids: list[ItemId]
    shown: list[str | None]

    def take(self, rows: np.ndarray) -> _Candidates:
        return _Candidates(
            self.scores[rows],
            self.vectors[rows],
            [self.item_ids[i] for i in rows],
            [self.shown[i] for i in rows],
        )


class _Pool:
    """One topic's best candidates. New ones gather in chunks and are cut back to the best `size`
    once twice that many wait, so each arrival is copied a bounded number of times."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.floor = -np.inf  # once full, nothing at or below this can enter
        self._chunks: list[_Candidates] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def offer(self, candidates: _Candidates) -> None:
        self._chunks.append(candidates)
        self._count += len(candidates.scores)
        if self._count >= 2 * self.size:
            self.compact()

    def compact(self) -> _Candidates:
        """The best `size` candidates so far (all of them when fewer)."""
        chunks = self._chunks
        merged = (
            chunks[0]
            if len(chunks) == 1
            else _Candidates(
                np.concatenate([c.scores for c in chunks]),
                np.concatenate([c.vectors for c in chunks]),
                [i for c in chunks for i in c.item_ids],
                [s for c in chunks for s in c.shown],
            )
        )
        if len(merged.scores) > self.size:
            merged = merged.take(np.argpartition(-merged.scores, self.size - 1)[: self.size])
        if len(merged.scores) >= self.size:
            self.floor = float(merged.scores.min())
        self._chunks, self._count = [merged], len(merged.scores)
        return merged


def typicality(vectors: np.ndarray, topic_ids: np.ndarray, centroids: Mapping[int, np.ndarray]) -> np.ndarray:
    """Cosine of each vector to its topic's centroid; NaN for members of topics without a centroid."""
    topic_ids = np.asarray(topic_ids)
    scores = np.full(len(topic_ids), np.nan, dtype=np.float32)
    known = np.array(sorted(centroids), dtype=np.int64)
    if len(known) == 0 or len(topic_ids) == 0:
        return scores
    at = np.clip(np.searchsorted(known, topic_ids), 0, len(known) - 1)
    has = known[at] == topic_ids
    centres = l2_normalise(np.stack([centroids[int(t)] for t in known]))
    if vectors.shape[1] != centres.shape[1]:
        raise ValueError(
            f"vectors have dim {vectors.shape[1]} but centroids {centres.shape[1]}: not one space"
        )
    rows = l2_normalise(vectors[has])
    scores[has] = np.einsum("ij,ij->i", rows, centres[at[has]])
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
        floors = np.full(len(scores), -np.inf, dtype=np.float32)
        for topic, rows in group_rows(topic_ids):
            pool = self._pools.get(topic)
            if pool is not None:
                floors[rows] = pool.floor
        with np.errstate(invalid="ignore"):  # NaN scores compare False: never candidates
            entering = np.flatnonzero(scores > floors)
        if len(entering) == 0:
            return
        batch = _Candidates(
            scores[entering].astype(np.float32),
            l2_normalise(vectors[entering]).astype(np.float16),
            [item_ids[i] for i in entering],
            [shown[i] for i in entering] if shown is not None else [None] * len(entering),
        )
        for topic, rows in group_rows(topic_ids[entering]):
            self._pools.setdefault(topic, _Pool(self.pool_size)).offer(batch.take(rows))

    def topics(self) -> list[int]:
        return list(self._pools)

    def pooled(self) -> dict[int, list[str]]:
        """Every topic's pool: what is shown for its up to `pool_size` most typical members."""
        return {topic: [s for s in pool.compact().shown if s] for topic, pool in self._pools.items()}

    def pick(self) -> dict[int, list[Exemplar]]:
        """For every topic seen, up to `k` exemplars, the most typical first."""
        picked = {}
        for topic, pool in self._pools.items():
            best = pool.compact()
            order = np.argsort(-best.scores, kind="stable")  # deterministic whatever the arrival order
            vectors = l2_normalise(best.vectors[order].astype(np.float32))
            chosen = mmr(best.scores[order], vectors, self.k, self.diversity)
            picked[topic] = [
                Exemplar(best.item_ids[order[i]], float(best.scores[order[i]]), best.shown[order[i]])
                for i in chosen
            ]
        return picked
