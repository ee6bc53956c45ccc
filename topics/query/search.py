"""Concept search: a text (and/or image) query ▸ matching topics and matching items grouped by topic,
and the topics grouped by theme (`SearchResult.themes`, in the order of their best topic).

The query is embedded once per space: CLIP (finds images and texts, since CLIP puts both in one space)
and, when the store has a `caption` view, the sentence model. Each stored view is searched on its own
and the rankings are fused with reciprocal rank fusion, which needs no calibration between cosine
scales of different models. `--not` terms push the query away from a concept (vector subtraction).

On the embedded store, a big run is searched through its topics (`topics.query.routing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.embed.base import l2_normalise
from indexer.images import BadImage, decode_image
from indexer.index import Index
from indexer.store.base import Filter, ScoredPoint
from topics import catalog
from topics.curation import layer as curation
from topics.errors import InvalidInput, NotFound
from topics.priority import SEARCHES
from topics.query import routing

RRF_K = 60  # the usual constant: rank 1 scores 1/61; a second view's rank 1 doubles it
NOT_WEIGHT = 0.5


@dataclass(frozen=True)
class ItemHit:
    item_id: str
    score: float  # fused reciprocal-rank score (higher is better)
    topic: int | None  # None: not assigned to a topic yet
    caption: str | None
    path: str | None
    source: str | None
    created_at: str | None
    views: dict[str, float] = field(default_factory=dict)  # cosine per view that matched


@dataclass(frozen=True)
class TopicHit:
    topic_id: int
    label: str | None
    size: int
    score: float  # fused reciprocal-rank score of the centroids
    similarity: float  # best centroid cosine
    items: list[ItemHit] = field(default_factory=list)
    theme_id: int | None = None


@dataclass(frozen=True)
class ThemeHit:
    """A theme that some matching topics belong to; `topics` are their ids, best first."""

    theme_id: int | None  # None: topics from before themes existed
    label: str | None
    size: int
    topics: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SearchResult:
    query: str | None
    topics: list[TopicHit]
    unassigned: list[ItemHit]  # matching items outside any topic (outliers, or not assigned yet)
    themes: list[ThemeHit] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchFilters:
    topic: int | None = None
    theme: int | None = None
    source: str | None = None
    since: str | None = None  # ISO date or datetime, on created_at
    until: str | None = None


def search(
    index: Index,
    text: str | None = None,
    *,
    image: Path | bytes | None = None,
    negatives: Sequence[str] = (),
    filters: SearchFilters | None = None,
    limit: int = 10,
) -> SearchResult:
    """Topics and items matching the query; items are grouped under the topics they belong to.

    `image` is a file or its bytes. A recluster in this process waits while it runs (`topics.priority`).
    """
    if not text and image is None:
        raise InvalidInput("search needs a text query or --image")
    with SEARCHES.serving():
        return _search(index, text, image, negatives, filters or SearchFilters(), limit)


def _search(
    index: Index,
    text: str | None,
    image: Path | bytes | None,
    negatives: Sequence[str],
    filters: SearchFilters,
    limit: int,
) -> SearchResult:
    run = catalog.current_run(index.backend)
    queries = _queries(index, text, image, negatives)
    routed = filters.topic is None and filters.theme is None and routing.routes_by_topic(index, run)
    themes = None if filters.theme is None or run is None else _theme_group(index, run, filters.theme)
    ranked = _ranked_topics(index, queries, run, max(limit, routing.PROBE_TOPICS if routed else 0), themes)
    where = _item_filter(index, filters, run)
    wheres = routing.routed_filters(where, run, routing.probed_topics(ranked)) if routed else [where]
    hits = _item_hits(index, queries, wheres, limit, run)
    topics = ranked[:limit] if filters.topic is None else []
    return _by_theme(_curated(_grouped(text, topics, hits, index, run), index, run), index, run)


# -- query vectors -------------------------------------------------------------------------------


def _queries(
    index: Index, text: str | None, image: Path | bytes | None, negatives: Sequence[str]
) -> dict[str, np.ndarray]:
    """One query vector per stored view: CLIP's for `image` and `text`, the sentence model's for `caption`."""
    layout = set(_stored_views(index))
    out: dict[str, np.ndarray] = {}
    if layout & {"image", "text"}:
        clip = index.clip
        parts = []
        if text:
            parts.append(clip.embed_texts([text])[0])
        if image is not None:
            parts.append(clip.embed_images([_query_image(index, image)])[0])
        vector = l2_normalise(np.sum(parts, axis=0))
        if negatives:
            vector = l2_normalise(vector - NOT_WEIGHT * clip.embed_texts(list(negatives)).mean(axis=0))
        out.update({view: vector for view in layout & {"image", "text"}})
    if "caption" in layout and text and index.caption_embedder is not None:
        vector = index.caption_embedder.embed_texts([text])[0]
        if negatives:
            vector = vector - NOT_WEIGHT * index.caption_embedder.embed_texts(list(negatives)).mean(axis=0)
        out["caption"] = l2_normalise(vector)
    if not out:
        raise NotFound("nothing to search: the store holds no vectors this query can be compared with")
    return out


def _stored_views(index: Index) -> list[str]:
    """Views worth searching. CLIP views made with random weights (a smoke-test store) carry no meaning
    and would only add noise to the fusion, so they are left out when a caption view exists."""
    identity = index.items.identity() or {}
    clip = identity.get("clip")
    views = ["image", "text"] if clip else []
    if "caption" in identity:
        if clip and clip.get("random_weights"):
            views = []
        views.append("caption")
    return views


# -- items ---------------------------------------------------------------------------------------


def _item_filter(index: Index, filters: SearchFilters, run: catalog.Run | None) -> Filter:
    must: dict[str, Any] = {}
    if filters.source:
        must["source"] = filters.source
    if (filters.topic is not None or filters.theme is not None) and run is None:
        raise NotFound("no topics yet: run `topics recluster` before filtering by topic or theme")
    if filters.theme is not None:
        if catalog.get_theme(index.backend, filters.theme, run=run) is None:
            raise NotFound(f"no theme T{filters.theme} (see `topics list`)")
        must.update(catalog.theme_filter(index.backend, run, *_theme_group(index, run, filters.theme)).must)
    if filters.topic is not None:
        must.update(catalog.topic_filter(run, filters.topic).must)
        group = curation.load(index.backend, run).merges.get(filters.topic, ())
        if group:
            must[catalog.slot_fields(run.slot)["topic"]] = [filters.topic, *group]
    ranges = {}
    if filters.since or filters.until:
        ranges["created_at"] = (filters.since, filters.until)
    return Filter(must=must, ranges=ranges)


def _item_hits(
    index: Index, queries: dict[str, np.ndarray], wheres: list[Filter], limit: int, run: catalog.Run | None
) -> list[ItemHit]:
    per_view = {view: _view_hits(index, view, vector, wheres, limit * 4) for view, vector in queries.items()}
    fused = _fuse(per_view)
    payloads = {p.id: p.payload for hits in per_view.values() for p in hits}
    out = []
    for item_id, (score, views) in sorted(fused.items(), key=lambda kv: -kv[1][0])[:limit]:
        payload = payloads[item_id]
        assignment = catalog.read_assignment(payload, run)
        out.append(
            ItemHit(
                item_id=item_id,
                score=round(score, 6),
                topic=assignment.topic if assignment and assignment.topic >= 0 else None,
                caption=payload.get("caption"),
                path=payload.get("path") or payload.get("url"),
                source=payload.get("source"),
                created_at=payload.get("created_at"),
                views={v: round(s, 4) for v, s in views.items()},
            )
        )
    return out


def _view_hits(
    index: Index, view: str, vector: np.ndarray, wheres: list[Filter], limit: int
) -> list[ScoredPoint]:
    """The best `limit` items of one view over the union of `wheres` (an item found twice counts once)."""
    best: dict[str, ScoredPoint] = {}
    for where in wheres:
        for hit in index.items.search(view, vector, limit=limit, where=where):
            if hit.id not in best or hit.score > best[hit.id].score:
                best[hit.id] = hit
    return sorted(best.values(), key=lambda h: -h.score)[:limit]


def _fuse(per_view: dict[str, list[ScoredPoint]]) -> dict[str, tuple[float, dict[str, float]]]:
    """Reciprocal rank fusion across views, keeping each view's cosine for display."""
    fused: dict[str, tuple[float, dict[str, float]]] = {}
    for view, hits in per_view.items():
        for rank, hit in enumerate(hits, start=1):
            score, views = fused.get(hit.id, (0.0, {}))
            fused[hit.id] = (score + 1.0 / (RRF_K + rank), {**views, view: hit.score})
    return fused


# -- topics --------------------------------------------------------------------------------------


def _theme_group(index: Index, run: catalog.Run, theme_id: int) -> list[int]:
    """A theme and the themes a person merged into it."""
    return [theme_id, *curation.load(index.backend, run, level="theme").merges.get(theme_id, ())]


def _ranked_topics(
    index: Index,
    queries: dict[str, np.ndarray],
    run: catalog.Run | None,
    limit: int,
    themes: list[int] | None,
) -> list[TopicHit]:
    if run is None or not index.topics.exists():
        return []
    must = {"kind": "topic", "run_id": run.run_id} | ({} if themes is None else {"theme_id": themes})
    where = Filter(must=must, must_not={"status": "vanished"})
    per_view = {view: index.topics.search(view, q, limit=limit, where=where) for view, q in queries.items()}
    fused = _fuse(per_view)
    payloads = {p.id: p.payload for hits in per_view.values() for p in hits}
    ranked = sorted(fused.items(), key=lambda kv: -kv[1][0])[:limit]
    return [
        TopicHit(
            topic_id=int(payloads[pid]["topic_id"]),
            label=payloads[pid].get("label"),
            size=int(payloads[pid].get("size", 0)),
            score=round(score, 6),
            similarity=round(max(views.values()), 4),
            theme_id=payloads[pid].get("theme_id"),
        )
        for pid, (score, views) in ranked
    ]


def _grouped(
    text: str | None, topics: list[TopicHit], hits: list[ItemHit], index: Index, run: catalog.Run | None
) -> SearchResult:
    """Items under their topics; a topic that only its items matched joins the list after the others."""
    by_topic: dict[int, list[ItemHit]] = {}
    unassigned = []
    for hit in hits:
        if hit.topic is None:
            unassigned.append(hit)
        else:
            by_topic.setdefault(hit.topic, []).append(hit)
    listed = {t.topic_id for t in topics}
    extra = []
    for topic_id in by_topic.keys() - listed:
        topic = catalog.get_topic(index.backend, topic_id, run=run)
        if topic is not None:
            extra.append(TopicHit(topic_id, topic.label, topic.size, 0.0, 0.0, theme_id=topic.theme_id))
    extra.sort(key=lambda t: -max(h.score for h in by_topic[t.topic_id]))
    grouped = [TopicHit(**{**asdict(t), "items": by_topic.get(t.topic_id, [])}) for t in [*topics, *extra]]
    return SearchResult(query=text, topics=grouped, unassigned=unassigned)


def _curated(result: SearchResult, index: Index, run: catalog.Run | None) -> SearchResult:
    """Hits as curated: merge members under their target, pinned labels, hidden topics left out."""
    cur = curation.load(index.backend, run) if run is not None else curation.Curation()
    if cur.is_empty() or run is None:
        return result
    merged: dict[int, TopicHit] = {}
    for hit in result.topics:
        target = cur.target(hit.topic_id)
        if hit.topic_id in cur.hidden or target in cur.hidden:
            continue
        items = [replace(i, topic=target) for i in hit.items]
        if target in merged:
            seen = merged[target]
            merged[target] = replace(seen, items=[*seen.items, *items], score=max(seen.score, hit.score))
            continue
        topic = curation.curated_topic(index.backend, run, cur, target)
        if topic is None:
            merged[target] = replace(hit, topic_id=target, items=items)
            continue
        merged[target] = replace(
            hit, topic_id=target, label=topic.label, size=topic.size, theme_id=topic.theme_id, items=items
        )
    for hit in merged.values():
        hit.items.sort(key=lambda i: -i.score)
    return replace(result, topics=list(merged.values()))


def _by_theme(result: SearchResult, index: Index, run: catalog.Run | None) -> SearchResult:
    """The result with its topics' curated themes (a merged theme's topics under its target, those of
    hidden themes left out), in the order of each theme's best topic."""
    cur = curation.load(index.backend, run, level="theme") if run is not None else curation.Curation()
    order: dict[int | None, list[int]] = {}
    kept = []
    for topic in result.topics:
        theme_id = None if topic.theme_id is None else cur.target(topic.theme_id)
        if theme_id in cur.hidden or topic.theme_id in cur.hidden:
            continue
        kept.append(topic)
        order.setdefault(theme_id, []).append(topic.topic_id)
    themes = []
    for theme_id, topic_ids in order.items():
        found = (
            None
            if theme_id is None or run is None
            else curation.curated_topic(index.backend, run, cur, theme_id, level="theme")
        )
        label, size = (found.label, found.size) if found is not None else (None, 0)
        themes.append(ThemeHit(theme_id, label, size, topic_ids))
    return replace(result, topics=kept, themes=themes)


def search_anywhere(index: Index, text: str | None = None, **options: Any) -> dict[str, Any]:
    """Search here, or in `topics serve` when it owns the store (its model is already loaded).

    An `image` path names a file of this process (relative to its working directory), so the service
    is sent the file's bytes, never the path.
    """
    if index.remote:
        if isinstance(options.get("image"), Path):
            options["image"] = _read_query_image(options["image"])
        return index.backend.call_owner("search", text, **options)
    return search(index, text, **options).as_dict()


def _query_image(index: Index, image: Path | bytes) -> Image.Image:
    try:
        return decode_image(image, max_pixels=index.settings.ingest.max_image_pixels).image
    except BadImage as error:
        raise InvalidInput(f"--image: {error.reason} ({error.detail})") from None


def _read_query_image(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise InvalidInput(f"--image {path}: {error.strerror or error}") from None
