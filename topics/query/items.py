"""Items one at a time and a topic's (or theme's) items a page at a time: what the web pages show.

- :func:`item`: one stored item (caption, source fields, its topic and theme as curated, score) and
  its nearest items by the same view.
- :func:`topic_items`: every item of a topic or theme under the current run (a merge group's members
  too), by score or by time, `per_page` at a time.

Both read the current run and apply the curation layer, as `list`, `show` and `search` do.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog
from topics.curation import layer as curation
from topics.errors import InvalidInput, NotFound
from topics.priority import SEARCHES
from topics.query.browse import Ref, TopicNotFound

Order = Literal["score", "time"]
ORDERS: tuple[Order, ...] = ("score", "time")
PER_PAGE = 60
NEAREST = 12
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHOWN_FIELDS = ("caption", "path", "url", "created_at", "ingested_at", "source")


class ItemNotFound(NotFound):
    """No stored item with that id."""


def parse_item_id(text: str) -> str:
    """An item id as stored (a lower-case UUID); anything else is a ValueError."""
    if not _UUID.fullmatch(str(text)):
        raise InvalidInput(f"{str(text)[:60]!r} is not an item id (a UUID)")
    return str(text)


def _shown_topic(index: Index, run: catalog.Run | None) -> Any:
    """A function from a stored topic id to (shown topic id, its theme id) under the curation layer."""
    if run is None:
        return lambda topic_id: (None, None)
    cur = curation.load(index.backend, run)
    themes = catalog.topic_themes(index.backend, run)
    theme_cur = curation.load(index.backend, run, level="theme")

    def shown(topic_id: int | None) -> tuple[int | None, int | None]:
        if topic_id is None or topic_id < 0:
            return None, None
        target = cur.target(topic_id)
        theme = themes.get(target, themes.get(topic_id))
        return target, (None if theme is None else theme_cur.target(theme))

    return shown


def _row(point_id: str, payload: dict[str, Any], run: catalog.Run | None, shown: Any) -> dict[str, Any]:
    assignment = catalog.read_assignment(payload, run)
    topic, theme = shown(assignment.topic if assignment else None)
    return {
        "item_id": point_id,
        "caption": payload.get("caption"),
        "has_picture": bool(payload.get("path") or payload.get("url")),
        "created_at": payload.get("created_at"),
        "source": payload.get("source"),
        "topic": topic,
        "theme_id": theme,
        "score": assignment.score if assignment and assignment.topic >= 0 else None,
    }


def item(index: Index, item_id: str, *, nearest: int = NEAREST) -> dict[str, Any]:
    """One item: its fields as ingested (a source's own `id` as given), topic and theme as curated, score,
    and its `nearest` items by its image view (else its text view), best first."""
    item_id = parse_item_id(item_id)
    found = index.items.retrieve([item_id], vectors=True) if index.items.exists() else []
    if not found:
        raise ItemNotFound(f"no item {item_id}")
    point = found[0]
    payload = dict(point.payload)
    run = catalog.current_run(index.backend)
    shown = _shown_topic(index, run)
    row = _row(point.id, payload, run, shown)
    topic_label = theme_label = None
    if run is not None and row["topic"] is not None:
        topic = _curated_record(index, run, row["topic"], "topic")
        topic_label = topic.label if topic else None
    if run is not None and row["theme_id"] is not None:
        theme = _curated_record(index, run, row["theme_id"], "theme")
        theme_label = theme.label if theme else None
    view = next((v for v in ("image", "text", "caption") if v in point.vectors), None)
    return {
        **row,
        "source_id": payload.get("source_id"),
        "path": payload.get("path"),
        "url": payload.get("url"),
        "origin": payload.get("origin"),
        "ingested_at": payload.get("ingested_at"),
        "meta": payload.get("meta") or {},
        "topic_label": topic_label,
        "theme_label": theme_label,
        "view": view,
        "nearest": [] if view is None else _nearest(index, point, view, nearest, run, shown),
    }


def _curated_record(index: Index, run: catalog.Run, record_id: int, level: catalog.Level) -> Any:
    cur = curation.load(index.backend, run, level)
    return curation.curated_topic(index.backend, run, cur, record_id, level)


def _nearest(index: Index, point: Any, view: str, limit: int, run: Any, shown: Any) -> list[dict[str, Any]]:
    with SEARCHES.serving():
        hits = index.items.search(view, point.vectors[view], limit=limit + 1)
    out = []
    for hit in hits:
        if hit.id == point.id:
            continue
        out.append({**_row(hit.id, hit.payload, run, shown), "similarity": round(float(hit.score), 4)})
    return out[:limit]


def topic_items(
    index: Index, ref: Ref, *, order: Order = "score", page: int = 1, per_page: int = PER_PAGE
) -> dict[str, Any]:
    """Page `page` (from 1) of a topic's or theme's items under the current run, best score or newest
    first (created time, else ingest time). A merge group's target shows its members' items too."""
    if order not in ORDERS:
        raise InvalidInput(f"order by {' or '.join(ORDERS)}, not {order!r}")
    if page < 1 or per_page < 1:
        raise InvalidInput("page and per_page start at 1")
    run, record = _record(index, ref)
    if record.status == "vanished":
        return _page([], order, page, per_page, ref)
    where = _members_filter(index, run, ref)
    shown = _shown_topic(index, run)
    slot = catalog.slot_fields(run.slot)
    fields = [*_SHOWN_FIELDS, *slot.values()]
    rows = [
        _row(p.id, p.payload, run, shown)
        | {"_time": p.payload.get("created_at") or p.payload.get("ingested_at") or ""}
        for batch in index.items.scroll(where, vectors=False, payload=fields)
        for p in batch
    ]
    return _page(rows, order, page, per_page, ref)


def _record(index: Index, ref: Ref) -> tuple[catalog.Run, catalog.Topic | catalog.Theme]:
    run = catalog.current_run(index.backend)
    if run is None:
        raise NotFound("no topics yet: run `topics recluster` (or `topics serve`) first")
    get = catalog.get_theme if ref.level == "theme" else catalog.get_topic
    record = get(index.backend, ref.id, run=run)
    if record is None:
        raise TopicNotFound(f"no {ref.level} {ref} (see `topics list`)")
    return run, record


def _members_filter(index: Index, run: catalog.Run, ref: Ref) -> Filter:
    if ref.level == "theme":
        group = [ref.id, *curation.load(index.backend, run, level="theme").merges.get(ref.id, ())]
        return catalog.theme_filter(index.backend, run, *group)
    group = [ref.id, *curation.load(index.backend, run).merges.get(ref.id, ())]
    return catalog.topic_filter(run, group)


def _page(rows: list[dict[str, Any]], order: Order, page: int, per_page: int, ref: Ref) -> dict[str, Any]:
    if order == "score":
        rows.sort(key=lambda r: (-(r["score"] or 0.0), r["item_id"]))
    else:
        rows.sort(key=lambda r: (r["_time"], r["item_id"]), reverse=True)
    pages = max(1, -(-len(rows) // per_page))
    chosen = rows[(page - 1) * per_page : page * per_page]
    return {
        "id": str(ref),
        "level": ref.level,
        "order": order,
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "total": len(rows),
        "items": [{k: v for k, v in r.items() if k != "_time"} for r in chosen],
    }


__all__ = ["ORDERS", "PER_PAGE", "ItemNotFound", "TopicNotFound", "item", "parse_item_id", "topic_items"]
