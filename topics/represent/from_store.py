"""The recluster job's `represent` hook: one scroll over the items feeds the `Representer`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from indexer.store.base import Point, VectorStore
from topics.catalog import Run, Topic, slot_fields
from topics.reclustering import view_vectors
from topics.represent import Representation, Representer, RepresentOptions

if TYPE_CHECKING:
    from indexer.index import Index

log = logging.getLogger(__name__)


def represent_run(
    index: Index,
    topics: list[Topic],
    items: VectorStore,
    run: Run,
    on_step: Callable[[str], None] | None = None,
) -> list[Topic]:
    """Words, exemplars, keywords and tiles for the run's live topics, stored with each topic."""
    live = {t.topic_id: t for t in topics if t.status != "vanished" and run.view in t.centroids}
    if not live:
        return topics
    options = RepresentOptions.from_settings(index.settings)
    representer = Representer(
        {tid: t.centroids[run.view] for tid, t in live.items()},
        options,
        embedder=_text_embedder(index),
        on_step=on_step,
    )
    names = slot_fields(run.slot)
    for batch in items.scroll(vectors=True, batch=1024):
        mine = [p for p in batch if p.payload.get(names["run"]) == run.run_id]
        if mine:
            _add(representer, mine, names["topic"], run.view)
    found = representer.finish()
    return [_with(t, found[t.topic_id]) if t.topic_id in found else t for t in topics]


def _text_embedder(index: Index):
    """CLIP's text tower embeds keyword vocabularies; without CLIP in the store there are none."""
    identity = index.items.identity() or {}
    if "clip" not in identity:
        return None
    try:
        return index.clip
    except Exception as error:  # keywords are optional: words and exemplars still get made
        log.warning("no keywords this run: CLIP could not be loaded (%s)", error)
        return None


def _add(representer: Representer, points: Sequence[Point], topic_field: str, view: str) -> None:
    rows, vectors = view_vectors(points, view)
    if not len(rows):
        return
    chosen = [points[i] for i in rows]
    representer.add_batch(
        np.asarray([int(p.payload[topic_field]) for p in chosen]),
        [p.id for p in chosen],
        vectors,
        image_vectors=_vectors_or_zero(chosen, "image"),
        text_vectors=_vectors_or_zero(chosen, "caption" if view == "caption" else "text"),
        captions=[p.payload.get("caption") for p in chosen],
        image_paths=[p.payload.get("path") for p in chosen],
    )


def _vectors_or_zero(points: Sequence[Point], name: str) -> np.ndarray | None:
    dims = {len(p.vectors[name]) for p in points if name in p.vectors}
    if not dims:
        return None
    out = np.zeros((len(points), dims.pop()), np.float32)
    for i, point in enumerate(points):
        if name in point.vectors:
            out[i] = point.vectors[name]
    return out


def _with(topic: Topic, rep: Representation) -> Topic:
    exemplars = rep.exemplars or rep.caption_items
    return replace(
        topic,
        label=rep.label or topic.label,
        words=tuple(w for w, _ in rep.words),
        keywords=tuple(k for k, _ in rep.keywords),
        exemplars=tuple(exemplars),
        tile=rep.tile,
        extra={**topic.extra, "representation": rep.to_payload()},
    )
