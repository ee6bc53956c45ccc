"""The recluster job's `represent` hook: one scroll over the items feeds the `Representer`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from indexer.store.base import Point, VectorStore
from topics.catalog import Run, Theme, Topic, slot_fields
from topics.ids import OUTLIER
from topics.reclustering import view_vectors
from topics.represent import Representation, Representer, RepresentOptions

if TYPE_CHECKING:
    from indexer.index import Index

log = logging.getLogger(__name__)
_Record = TypeVar("_Record", Topic, Theme)


def represent_run(
    index: Index,
    topics: list[Topic],
    themes: list[Theme],
    items: VectorStore,
    run: Run,
    on_step: Callable[[str], None] | None = None,
) -> tuple[list[Topic], list[Theme]]:
    """Words, exemplars, keywords and tiles for the run's live topics and themes, in one scroll.

    A theme is represented from its topics' items, exactly as a topic is from its own. Themes embed
    no keyword terms of their own: they use those the topics' vocabulary just embedded (the cache).
    """
    live = {t.topic_id: t for t in topics if t.status != "vanished" and run.view in t.centroids}
    if not live:
        return topics, themes
    live_themes = {t.theme_id: t for t in themes if t.status != "vanished" and run.view in t.centroids}
    theme_of = np.full(max(live) + 1, OUTLIER, np.int64)
    for topic_id, topic in live.items():
        theme_of[topic_id] = topic.theme_id if topic.theme_id in live_themes else OUTLIER
    options = RepresentOptions.from_settings(index.settings)
    embedder = _text_embedder(index)
    by_topic = Representer(
        {tid: t.centroids[run.view] for tid, t in live.items()}, options, embedder=embedder, on_step=on_step
    )
    by_theme = Representer(
        {tid: t.centroids[run.view] for tid, t in live_themes.items()},
        replace(options, tile_prefix="theme", vocabulary_budget=0),
        embedder=embedder,
    )
    names = slot_fields(run.slot)
    for batch in items.scroll(vectors=True, batch=1024):
        mine = [p for p in batch if p.payload.get(names["run"]) == run.run_id]
        if mine:
            _add(by_topic, by_theme, theme_of, mine, names["topic"], run.view)
    found, found_themes = by_topic.finish(), by_theme.finish()
    return (
        [_with(t, found[t.topic_id]) if t.topic_id in found else t for t in topics],
        [_with(t, found_themes[t.theme_id]) if t.theme_id in found_themes else t for t in themes],
    )


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


def _add(
    by_topic: Representer,
    by_theme: Representer,
    theme_of: np.ndarray,
    points: Sequence[Point],
    topic_field: str,
    view: str,
) -> None:
    rows, vectors = view_vectors(points, view)
    if not len(rows):
        return
    chosen = [points[i] for i in rows]
    topic_ids = np.asarray([int(p.payload[topic_field]) for p in chosen])
    known = (topic_ids >= 0) & (topic_ids < len(theme_of))
    columns = {
        "image_vectors": _vectors_or_zero(chosen, "image"),
        "text_vectors": _vectors_or_zero(chosen, "caption" if view == "caption" else "text"),
        "captions": [p.payload.get("caption") for p in chosen],
        "image_paths": [p.payload.get("path") for p in chosen],
    }
    item_ids = [p.id for p in chosen]
    by_topic.add_batch(topic_ids, item_ids, vectors, **columns)
    by_theme.add_batch(
        np.where(known, theme_of[np.where(known, topic_ids, 0)], OUTLIER), item_ids, vectors, **columns
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


def _with(topic: _Record, rep: Representation) -> _Record:
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
