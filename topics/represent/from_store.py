"""The recluster job's `represent` hook: its items pass feeds the `Representer`s of topics and themes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from indexer.embed.clip import clip_model_id
from indexer.store.base import Point
from topics.catalog import Theme, Topic
from topics.ids import OUTLIER
from topics.represent import Representation, Representer, RepresentOptions
from topics.represent.keywords import EmbedderUnavailable, TextEmbedder

if TYPE_CHECKING:
    from indexer.index import Index
    from topics.recluster.feed import Centroids

log = logging.getLogger(__name__)
_Record = TypeVar("_Record", Topic, Theme)


class StoreRepresent:
    """The recluster's `Represent` hook: a `Representer` for topics and one for themes, fed by the
    recluster's own items pass (`topics.recluster.feed.RepresentPass`), so it reads nothing itself.

    A theme is represented from its topics' items, exactly as a topic is from its own. Themes embed
    no keyword terms of their own: they use those the topics' vocabulary just embedded (the cache).
    """

    def __init__(self, index: Index, on_step: Callable[[str], None] | None = None) -> None:
        self._index = index
        self._on_step = on_step

    def start(self, view: str, topics: Centroids, themes: Centroids, theme_of: Mapping[int, int]) -> _Pass:
        return _Pass(self._index, view, topics, themes, theme_of, self._on_step)


class _Pass:
    payload_fields = ("caption", "path")

    def __init__(
        self,
        index: Index,
        view: str,
        topics: Mapping[int, np.ndarray],
        themes: Mapping[int, np.ndarray],
        theme_of: Mapping[int, int],
        on_step: Callable[[str], None] | None,
    ) -> None:
        self._view = view
        self._theme_of = np.full(max(topics, default=0) + 1, OUTLIER, np.int64)  # never empty
        for topic_id, theme_id in theme_of.items():
            self._theme_of[topic_id] = theme_id if theme_id in themes else OUTLIER
        options = RepresentOptions.from_settings(index.settings)
        # CLIP is loaded when the keywords need it, after the pass (`Vocabulary.build`), not here.
        embedder = _LazyTexts(index) if _has_clip(index) else None
        self._topics = Representer(topics, options, embedder=embedder, on_step=on_step)
        self._themes = Representer(
            themes, replace(options, tile_prefix="theme", vocabulary_budget=0), embedder=embedder
        )

    def add(
        self, points: Sequence[Point], rows: np.ndarray, vectors: np.ndarray, topic_ids: np.ndarray
    ) -> None:
        if not len(rows):
            return
        chosen = [points[i] for i in rows]
        ids = np.asarray(topic_ids, np.int64)
        known = (ids >= 0) & (ids < len(self._theme_of))
        columns = {
            "image_vectors": _vectors_or_zero(chosen, "image"),
            "text_vectors": _vectors_or_zero(chosen, "caption" if self._view == "caption" else "text"),
            "captions": [p.payload.get("caption") for p in chosen],
            "image_paths": [p.payload.get("path") for p in chosen],
        }
        item_ids = [p.id for p in chosen]
        terms = self._topics.terms(columns["captions"])  # analysed once for both levels (same settings)
        self._topics.add_batch(ids, item_ids, vectors, **columns, caption_terms=terms)
        themes = np.where(known, self._theme_of[np.where(known, ids, 0)], OUTLIER)
        self._themes.add_batch(themes, item_ids, vectors, **columns, caption_terms=terms)

    def finish(self, topics: list[Topic], themes: list[Theme]) -> tuple[list[Topic], list[Theme]]:
        found, found_themes = self._topics.finish(), self._themes.finish()
        return (
            [_with(t, found[t.topic_id]) if t.topic_id in found else t for t in topics],
            [_with(t, found_themes[t.theme_id]) if t.theme_id in found_themes else t for t in themes],
        )


class _LazyTexts:
    """CLIP's text tower, loaded on the first terms to embed: never when the vocabulary is cached."""

    def __init__(self, index: Index) -> None:
        self._index = index
        self.model_id = clip_model_id(index.items.identity()["clip"])
        self._loaded: TextEmbedder | None = None

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self._loaded is None:
            try:
                self._loaded = self._index.clip_texts
            except Exception as error:  # keywords are optional: words and exemplars still get made
                raise EmbedderUnavailable(f"CLIP could not be loaded ({error})") from error
        return self._loaded.embed_texts(texts)


def _has_clip(index: Index) -> bool:
    """Keyword vocabularies are embedded with CLIP's text tower; without CLIP in the store there are none."""
    return "clip" in (index.items.identity() or {})


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
