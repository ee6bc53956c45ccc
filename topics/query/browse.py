"""What `topics list`, `show`, `history` and `exemplars` return: JSON-ready dicts with a stable schema.

Two levels: a bare number names a topic (`12`), `T` and a number a theme (`T3`); see :func:`parse_ref`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from indexer.index import Index
from topics import catalog
from topics.catalog import Level, LineageEvent, Theme, Topic
from topics.curation import layer as curation
from topics.errors import InvalidInput, NotFound

SortKey = Literal["id", "size", "change", "label"]
_REF = re.compile(r"\s*([tT]?)(\d+)\s*")


class TopicNotFound(NotFound):
    """No topic (or theme) with that id in the current run."""


@dataclass(frozen=True)
class Ref:
    """A topic or a theme, as named on the command line."""

    level: Level
    id: int

    def __str__(self) -> str:
        return f"T{self.id}" if self.level == "theme" else str(self.id)


def parse_ref(text: str) -> Ref:
    """`12` is topic 12, `T3` (or `t3`) is theme 3; anything else is a ValueError."""
    found = _REF.fullmatch(str(text))
    if found is None:
        raise InvalidInput(f"{text!r} is neither a topic id (12) nor a theme id (T3)")
    return Ref("theme" if found.group(1) else "topic", int(found.group(2)))


def _need_run(index: Index) -> catalog.Run:
    run = catalog.current_run(index.backend)
    if run is None:
        raise NotFound("no topics yet: run `topics recluster` (or `topics serve`) first")
    return run


def _scored(topic: Topic | Theme, key: str) -> list[list[Any]]:
    """Words or keywords with scores, from the stored representation (plain terms as a fallback)."""
    rep = topic.extra.get("representation") or {}
    scored = rep.get(key)
    if scored:
        return [[str(term), round(float(score), 4)] for term, score in scored]
    return [[term, None] for term in (topic.words if key == "words" else topic.keywords)]


def topic_summary(topic: Topic) -> dict[str, Any]:
    return {
        "id": topic.topic_id,
        "label": topic.label,
        "size": topic.size,
        "change": topic.change,
        "status": topic.status,
        "words": [w for w, _ in _scored(topic, "words")[:5]],
        "theme_id": topic.theme_id,
        "curation": curation.curation_of(topic),
    }


def theme_summary(theme: Theme | None, topics: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A theme and its topics' summaries (None: topics whose records name no theme, from before themes)."""
    if theme is None:
        size = sum(t["size"] for t in topics)
        return {
            "theme_id": None,
            "label": None,
            "size": size,
            "change": 0,
            "status": "active",
            "words": [],
            "topics": list(topics),
        }
    return {
        "theme_id": theme.theme_id,
        "label": theme.label,
        "size": theme.size,
        "change": theme.change,
        "status": theme.status,
        "words": [w for w, _ in _scored(theme, "words")[:5]],
        "curation": curation.curation_of(theme),
        "topics": list(topics),
    }


def list_topics(
    index: Index,
    *,
    sort: SortKey = "size",
    status: str | None = None,
    min_size: int = 0,
    include_vanished: bool = False,
    include_hidden: bool = False,
) -> list[dict[str, Any]]:
    """The current run's topics as curated, filtered and sorted (largest first by default).

    Hidden topics and topics merged into another are left out unless `include_hidden`."""
    run = _need_run(index)
    found = curation.curate(
        catalog.list_topics(
            index.backend, include_vanished=include_vanished or status == "vanished", run=run
        ),
        curation.load(index.backend, run),
    )
    chosen = [
        t
        for t in found
        if t.size >= min_size
        and (status is None or t.status == status)
        and (include_hidden or curation.shown(t))
    ]
    return [topic_summary(t) for t in sorted(chosen, key=_sort_key(sort, "topic_id"))]


def _sort_key(sort: SortKey, id_field: str) -> Any:
    return {
        "id": lambda t: getattr(t, id_field),
        "size": lambda t: (-t.size, getattr(t, id_field)),
        "change": lambda t: (-t.change, getattr(t, id_field)),
        "label": lambda t: ((t.label or "").lower(), getattr(t, id_field)),
    }[sort]


def list_tree(
    index: Index,
    *,
    sort: SortKey = "size",
    status: str | None = None,
    min_size: int = 0,
    include_hidden: bool = False,
) -> list[dict[str, Any]]:
    """Themes as curated, each with its topics nested (`topics`); filters apply to topics, and a theme
    none of whose topics pass is left out. Themes and topics within them follow the same sort.

    A theme merged into another nests its topics under that one; a hidden theme is left out with its
    topics. `include_hidden` shows every theme with its own topics."""
    topics = list_topics(index, sort=sort, status=status, min_size=min_size, include_hidden=include_hidden)
    run = _need_run(index)
    cur = curation.load(index.backend, run, level="theme")
    themes = curation.curate(catalog.list_themes(index.backend, include_vanished=True, run=run), cur)
    known = {t.theme_id for t in themes}
    nest = (lambda theme_id: theme_id) if include_hidden else cur.target
    hidden = set() if include_hidden else cur.hidden
    out = []
    for theme in sorted(themes, key=_sort_key(sort, "theme_id")):
        mine = [
            t
            for t in topics
            if t["theme_id"] in known
            and t["theme_id"] not in hidden
            and nest(t["theme_id"]) == theme.theme_id
        ]
        if mine and (include_hidden or curation.shown(theme)):
            out.append(theme_summary(theme, mine))
    orphans = [t for t in topics if t["theme_id"] not in known]
    if orphans:
        out.append(theme_summary(None, orphans))
    return out


def _get(index: Index, ref: Ref | int) -> tuple[catalog.Run, Topic | Theme]:
    ref = ref if isinstance(ref, Ref) else Ref("topic", int(ref))
    run = _need_run(index)
    if ref.level == "theme":
        found: Topic | Theme | None = catalog.get_theme(index.backend, ref.id, run=run)
    else:
        found = catalog.get_topic(index.backend, ref.id, run=run)
    if found is None:
        raise TopicNotFound(f"no {ref.level} {ref} (see `topics list`)")
    cur = curation.load(index.backend, run, ref.level)
    if not cur.is_empty():
        found = curation.curated_topic(index.backend, run, cur, ref.id, ref.level) or found
    return run, found


def _id(record: Topic | Theme) -> int:
    return record.topic_id if isinstance(record, Topic) else record.theme_id


def exemplars(index: Index, ref: Ref | int) -> dict[str, Any]:
    """A topic's (or theme's) exemplar items (paths, captions) and its tile; `id` as in `list`."""
    _, topic = _get(index, ref)
    points = {p.id: p.payload for p in index.items.retrieve(list(topic.exemplars))}
    return {
        "id": _id(topic),
        "tile": topic.tile,
        "exemplars": [
            {
                "item_id": item_id,
                "path": points.get(item_id, {}).get("path") or points.get(item_id, {}).get("url"),
                "caption": points.get(item_id, {}).get("caption"),
            }
            for item_id in topic.exemplars
        ],
    }


def show(index: Index, ref: Ref) -> dict[str, Any]:
    """`topics show`: a topic or a theme."""
    return show_theme(index, ref.id) if ref.level == "theme" else show_topic(index, ref.id)


def show_topic(index: Index, topic_id: int) -> dict[str, Any]:
    """Everything about one topic: words with scores, keywords, exemplars, size history, lineage."""
    run, topic = _get(index, topic_id)
    assert isinstance(topic, Topic)
    theme = catalog.get_theme(index.backend, topic.theme_id, run=run) if topic.theme_id is not None else None
    return {
        **topic_summary(topic),
        **_details(index, run, topic, Ref("topic", topic_id)),
        "theme_label": theme.label if theme is not None else None,
    }


def show_theme(index: Index, theme_id: int) -> dict[str, Any]:
    """Everything about one theme, as for a topic, and the summaries of its topics (largest first; those
    of the themes merged into it too)."""
    ref = Ref("theme", theme_id)
    run, theme = _get(index, ref)
    assert isinstance(theme, Theme)
    group = {theme_id, *curation.curation_of(theme).get("merged", ())}
    found = catalog.list_topics(index.backend, include_vanished=theme.status == "vanished", run=run)
    mine = sorted((t for t in found if t.theme_id in group), key=_sort_key("size", "topic_id"))
    summary = theme_summary(theme, [topic_summary(t) for t in mine])
    return {**summary, **_details(index, run, theme, ref)}


def _details(index: Index, run: catalog.Run, topic: Topic | Theme, ref: Ref) -> dict[str, Any]:
    rep = topic.extra.get("representation") or {}
    return {
        "run_id": run.run_id,
        "first_seen": topic.first_seen.isoformat(),
        "last_seen": topic.last_seen.isoformat(),
        "words": _scored(topic, "words"),
        "keywords": _scored(topic, "keywords"),
        "captions": list(rep.get("captions") or []),
        "exemplars": exemplars(index, ref)["exemplars"],
        "tile": topic.tile,
        "size_history": [list(pair) for pair in topic.extra.get("size_history", [])],
        "lineage": [event_dict(e) for e in catalog.lineage(index.backend, ref.id, level=ref.level)],
    }


def event_dict(event: LineageEvent) -> dict[str, Any]:
    return {
        "level": event.level,
        "run_id": event.run_id,
        "kind": event.kind,
        "before": list(event.before),
        "after": list(event.after),
        "at": event.at.isoformat(),
    }


def history(index: Index, ref: Ref | int | None = None) -> dict[str, Any]:
    """Runs (when, how many items, topics and themes) and lineage events, for one topic or theme, or all
    events of both levels."""
    _need_run(index)
    ref = Ref("topic", ref) if isinstance(ref, int) else ref
    events = (
        catalog.lineage(index.backend, ref.id, level=ref.level)
        if ref
        else catalog.lineage(index.backend, level=None)
    )
    return {
        "runs": [
            {
                "run_id": r.run_id,
                "started": r.started.isoformat(),
                "finished": r.finished.isoformat(),
                "items": r.n_items,
                "topics": r.n_topics,
                "themes": r.n_themes,
            }
            for r in catalog.runs(index.backend)
        ],
        "events": [event_dict(e) for e in events],
        "curation": curation.notes(index.backend, *((ref.id, ref.level) if ref else ())),
    }
