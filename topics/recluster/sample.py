"""Phase 2, ``sampled``: a reservoir sample of the items, read in two steps.

One scroll over the items' ids (no vectors) draws a uniform sample (Algorithm R); the sampled items'
vectors of the clustered view and their topic under the previous run are then read by id. Memory is
the sample plus one batch, whatever the corpus size. The fused view is
normalise(normalise(image) + normalise(text)), or whichever of the two an item has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.embed.base import l2_normalise
from indexer.store.base import Filter, Point, VectorStore
from topics import catalog, priority
from topics.catalog import Run
from topics.recluster import sizes

NOT_PRESENT = -2  # a sampled item the previous run did not assign
_FUSED_PARTS = ("image", "text")


@dataclass(frozen=True)
class Sample:
    """The reservoir: vectors of the view, item ids, and each item's topic in the previous run."""

    ids: list[str]
    vectors: np.ndarray
    previous: np.ndarray  # public topic id, -1 outlier, -2 not assigned by the previous run
    n_items: int


def view_vectors(points: Sequence[Point], view: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows that have the view, their L2-normalised vectors as float32), a matrix per vector name."""
    parts = _FUSED_PARTS if view == "fused" else (view,)
    total: np.ndarray | None = None
    present = np.zeros(len(points), bool)
    for name in parts:
        rows = [i for i, point in enumerate(points) if name in point.vectors]
        if not rows:
            continue
        part = np.stack([np.asarray(points[i].vectors[name], np.float32) for i in rows])
        if total is None:
            total = np.zeros((len(points), part.shape[1]), np.float32)
        total[rows] += l2_normalise(part) if view == "fused" else part
        present[rows] = True
    if total is None:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    rows_with = np.flatnonzero(present)
    return rows_with, l2_normalise(total[rows_with])


def _needed_vectors(view: str) -> list[str]:
    return list(_FUSED_PARTS) if view == "fused" else [view]


def _previous_topics(points: Sequence[Point], previous: Run | None) -> np.ndarray:
    """Each point's public topic under the previous run, NOT_PRESENT when it had none."""
    out = np.full(len(points), NOT_PRESENT, np.int64)
    if previous is None:
        return out
    for i, point in enumerate(points):
        found = catalog.read_assignment(point.payload, previous)
        if found is not None:
            out[i] = found.topic
    return out


def reservoir_sample(
    items: VectorStore, view: str, size: int, previous: Run | None, *, seed: int = 0
) -> Sample:
    """A uniform sample of at most `size` items with the view (Algorithm R over one scroll).

    The scroll reads ids only; the chosen items' vectors and their previous run's slot are read by id
    afterwards: a scroll's cost is mostly what it converts, and 1M items are 20 times the sample. An
    item deleted in between drops out of the sample; one updated gives its new vectors."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    seen = 0
    where = None if view == "fused" else Filter(has_vector=view)  # fused: an item has image or text
    for points in items.scroll(where, payload=False, batch=sizes.SCROLL_BATCH):
        priority.SEARCHES.yield_to_searches()
        for j, slot in enumerate(_reservoir_slots(seen, len(points), size, rng)):
            if slot < 0:
                continue
            if slot == len(ids):
                ids.append(points[j].id)
            else:
                ids[slot] = points[j].id
        seen += len(points)
    kept_ids, vectors, kept_prev = _sample_vectors(items, view, ids, previous)
    return Sample(ids=kept_ids, vectors=vectors, previous=kept_prev, n_items=seen)


def _sample_vectors(
    items: VectorStore, view: str, ids: list[str], previous: Run | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The view's vectors of the sampled `ids` and their topics under `previous`, read by id in
    scroll-sized calls (sample order kept)."""
    at = {item_id: i for i, item_id in enumerate(ids)}
    vectors: np.ndarray | None = None
    found = np.zeros(len(ids), bool)
    prev = np.full(len(ids), NOT_PRESENT, np.int64)
    fields = list(catalog.slot_fields(previous.slot).values()) if previous else False
    batch_size = sizes.SCROLL_BATCH
    for start in range(0, len(ids), batch_size):
        priority.SEARCHES.yield_to_searches()
        points = items.retrieve(
            ids[start : start + batch_size], vectors=_needed_vectors(view), payload=fields
        )
        rows, batch = view_vectors(points, view)
        if len(rows) == 0:
            continue
        if vectors is None:
            vectors = np.zeros((len(ids), batch.shape[1]), np.float32)
        where = [at[points[r].id] for r in rows]
        vectors[where], found[where] = batch, True
        prev[where] = _previous_topics([points[r] for r in rows], previous)
    if vectors is None:
        return [], np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    if found.all():
        return ids, vectors, prev
    return [i for i, f in zip(ids, found, strict=True) if f], vectors[found], prev[found]


def _reservoir_slots(seen: int, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Reservoir position for each of `n` new items (-1: not kept), in arrival order."""
    index = np.arange(seen, seen + n)
    slots = np.where(index < size, index, -1)
    late = index >= size
    if late.any():
        draws = rng.integers(0, index[late] + 1)
        slots[late] = np.where(draws < size, draws, -1)
    return slots
