"""Phase 5, ``items_written`` (and ``items_batch`` per batch): every item's topic into the spare slot.

A second scroll; sampled items keep their fit label, the rest are assigned by the clustering; the
assignments go to the item slot the current run does not use (see `topics.catalog`), invisible to
readers, written grouped by topic and score every `sizes.WRITE_BUFFER` items (`AssignmentWriter`).
Sizes and per-view centroid sums are accumulated on the way, and the optional represent feed sees
each batch (words, exemplar candidates): the items are read twice in all, not three times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from indexer.embed.base import l2_normalise
from indexer.store.base import Point, VectorStore
from topics import catalog, priority
from topics.catalog import ItemAssignment
from topics.fit.clustering import Clustering
from topics.fit.geometry import group_rows
from topics.fit.matching import Identity
from topics.ids import OUTLIER
from topics.recluster import sizes
from topics.recluster.feed import RepresentPass
from topics.recluster.sample import Sample, view_vectors

NO_VECTOR = -2  # an item without the clustered view: skipped, its slot left as it was


@dataclass
class WriteTotals:
    """Accumulated while writing items: sizes and centroid sums per raw label."""

    n_items: int = 0
    n_outliers: int = 0
    n_skipped: int = 0
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: dict[str, np.ndarray] = field(default_factory=dict)


def _sample_scores(sample: Sample, clustering: Clustering) -> np.ndarray:
    """Cosine of each sampled vector to its cluster's centroid (outliers: to the nearest one)."""
    if clustering.centroids.shape[0] == 0:
        return np.zeros(len(sample.ids), np.float32)
    scores = np.empty(len(sample.ids), np.float32)
    for start in range(0, len(scores), 8192):
        part = slice(start, start + 8192)
        sims = sample.vectors[part] @ clustering.centroids.T
        labels = clustering.labels[part]
        own = sims[np.arange(sims.shape[0]), np.maximum(labels, 0)]
        scores[part] = np.where(labels >= 0, own, sims.max(axis=1))
    return scores


def write_items(
    items: VectorStore,
    view: str,
    sample: Sample,
    clustering: Clustering,
    identity: Identity,
    run_id: int,
    slot: int,
    tick: Callable[[str], None],
    feed: RepresentPass | None,
) -> WriteTotals:
    """Every item's assignment into `slot`; `feed` (represent) sees each batch with its topics."""
    k = clustering.centroids.shape[0]
    written = WriteTotals(sizes=np.zeros(k, np.int64))
    in_sample = {item_id: i for i, item_id in enumerate(sample.ids)}
    sample_scores = _sample_scores(sample, clustering)
    public = np.array([identity.ids[b] for b in range(k)], np.int64)
    fields = list(feed.payload_fields) if feed is not None else False
    writes = AssignmentWriter(items, slot, run_id)
    for points in items.scroll(vectors=True, payload=fields, batch=sizes.SCROLL_BATCH):
        priority.SEARCHES.yield_to_searches()
        rows, vectors = view_vectors(points, view)
        labels, scores = _label_batch(points, rows, vectors, clustering, in_sample, sample_scores)
        topic_ids = np.where(labels >= 0, public[np.maximum(labels, 0)] if k else OUTLIER, OUTLIER)
        if feed is not None:
            priority.SEARCHES.yield_to_searches()  # labelling and word counts hold the GIL too
            feed.add(points, rows, vectors, topic_ids[rows])
        writes.add(points, topic_ids, scores)
        _accumulate(written, points, labels, k)
        tick("items_batch")
    writes.flush()
    return written


class AssignmentWriter:
    """The items pass's assignments, written grouped. On the embedded engine each distinct payload is
    one call, and a score makes nearly every item's payload its own. Scores are stored to
    `catalog.SCORE_DECIMALS` (2), so a topic's items share a few dozen payloads; held until
    `WRITE_BUFFER` items, each (topic, score) group is one call of up to `WRITE_IDS` ids, with a yield
    to searches before each. 50k items of a 1M store (`bench/assignment_writes.py`): 49 us an item,
    against 69 for a call per item and 62 for two grouped writes (topic; score to 3 decimals): what is
    left is the engine's own cost per point (its payload read, merged, written, indexed). Each
    buffer is flushed to disk once written."""

    def __init__(self, items: VectorStore, slot: int, run_id: int) -> None:
        self.items, self.slot, self.run_id = items, slot, run_id
        self.ids: list[str] = []
        self.keys: list[np.ndarray] = []

    def add(self, points: Sequence[Point], topic_ids: np.ndarray, scores: np.ndarray) -> None:
        self.ids.extend(p.id for p in points)
        self.keys.append(np.stack([np.asarray(topic_ids, np.int64), catalog.score_units(scores)], axis=1))
        if len(self.ids) >= sizes.WRITE_BUFFER:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        ids, keys = np.array(self.ids, dtype=object), np.concatenate(self.keys)
        self.ids, self.keys = [], []
        distinct, group = np.unique(keys, axis=0, return_inverse=True)
        for g, rows in group_rows(group.ravel()):
            topic, units = distinct[g]
            payload = catalog.assignment_payload(
                self.slot,
                ItemAssignment(int(topic), catalog.score_of_units(int(units)), self.run_id, "recluster"),
            )
            members = ids[rows]
            for start in range(0, len(members), sizes.WRITE_IDS):
                priority.SEARCHES.yield_to_searches()
                self.items.set_payload(members[start : start + sizes.WRITE_IDS].tolist(), payload)
        priority.SEARCHES.yield_to_searches()
        self.items.flush()  # a share of the run's writes made durable now: the flush before the
        # switch would otherwise hold the process for all of them (17 s at 1M, searches waiting)


def _label_batch(
    points: Sequence[Point],
    rows: np.ndarray,
    vectors: np.ndarray,
    clustering: Clustering,
    in_sample: Mapping[str, int],
    sample_scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw labels and scores of a scroll batch (`rows`, `vectors`: its `view_vectors`): fit labels for
    sampled items, assignment for the rest, `NO_VECTOR` for items without the view."""
    labels = np.full(len(points), OUTLIER, np.int64)
    scores = np.zeros(len(points), np.float32)
    fresh: list[int] = []
    for j, row in enumerate(rows):
        at = in_sample.get(points[row].id)
        if at is None:
            fresh.append(j)
        else:
            labels[row], scores[row] = clustering.labels[at], sample_scores[at]
    if fresh:
        got_labels, got_scores = clustering.assign(vectors[fresh])
        labels[rows[fresh]], scores[rows[fresh]] = got_labels, got_scores
    labels = np.where(np.isin(np.arange(len(points)), rows), labels, NO_VECTOR)
    return labels, scores


def _accumulate(written: WriteTotals, points: Sequence[Point], labels: np.ndarray, k: int) -> None:
    written.n_items += len(points)
    written.n_skipped += int((labels == NO_VECTOR).sum())
    written.n_outliers += int((labels < 0).sum())
    member = labels >= 0
    written.sizes += np.bincount(labels[member], minlength=k)
    for view_name in {name for p in points for name in p.vectors}:
        rows = [i for i, p in enumerate(points) if member[i] and view_name in p.vectors]
        if not rows:
            continue
        vectors = l2_normalise(np.stack([np.asarray(points[i].vectors[view_name], np.float32) for i in rows]))
        sums = written.sums.setdefault(view_name, np.zeros((k, vectors.shape[1]), np.float64))
        sums += _sum_by_label(labels[rows], vectors, k)


def _sum_by_label(labels: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """(k, d) float64 sums of `vectors` per label 0..k-1: one sparse product (np.add.at was 40 s of a
    1M-item recluster)."""
    members = sparse.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels))
    )
    return np.asarray(members @ vectors.astype(np.float64))
