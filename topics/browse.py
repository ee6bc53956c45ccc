"""What `topics list`, `show`, `history` and `exemplars` return: JSON-ready dicts with a stable schema."""

from __future__ import annotations

from typing import Any, Literal

from indexer.index import Index
from topics import catalog, curation
from topics.catalog import LineageEvent, Topic

SortKey = Literal["id", "size", "change", "label"]


class TopicNotFound(LookupError):
    """No topic with that id in the current run."""


def _need_run(index: Index) -> catalog.Run:
    run = catalog.current_run(index.backend)
    if run is None:
        raise LookupError("no topics yet: run `topics recluster` (or `topics serve`) first")
    return run


def _scored(topic: Topic, key: str) -> list[list[Any]]:
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
        "curation": curation.curation_of(topic),
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
    key = {
        "id": lambda t: t.topic_id,
        "size": lambda t: (-t.size, t.topic_id),
        "change": lambda t: (-t.change, t.topic_id),
        "label": lambda t: ((t.label or "").lower(), t.topic_id),
    }[sort]
    return [topic_summary(t) for t in sorted(chosen, key=key)]


def _get(index: Index, topic_id: int) -> tuple[catalog.Run, Topic]:
    run = _need_run(index)
    topic = catalog.get_topic(index.backend, topic_id, run=run)
    if topic is None:
        raise TopicNotFound(f"no topic {topic_id} (see `topics list`)")
    cur = curation.load(index.backend, run)
    if cur.is_empty():
        return run, topic
    return run, curation.curated_topic(index.backend, run, cur, topic_id) or topic


def exemplars(index: Index, topic_id: int) -> dict[str, Any]:
    """A topic's exemplar items (paths, captions) and its tile."""
    _, topic = _get(index, topic_id)
    points = {p.id: p.payload for p in index.items.retrieve(list(topic.exemplars))}
    return {
        "id": topic.topic_id,
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


def show_topic(index: Index, topic_id: int) -> dict[str, Any]:
    """Everything about one topic: words with scores, keywords, exemplars, size history, lineage."""
    run, topic = _get(index, topic_id)
    rep = topic.extra.get("representation") or {}
    return {
        **topic_summary(topic),
        "run_id": run.run_id,
        "first_seen": topic.first_seen.isoformat(),
        "last_seen": topic.last_seen.isoformat(),
        "words": _scored(topic, "words"),
        "keywords": _scored(topic, "keywords"),
        "captions": list(rep.get("captions") or []),
        "exemplars": exemplars(index, topic_id)["exemplars"],
        "tile": topic.tile,
        "size_history": [list(pair) for pair in topic.extra.get("size_history", [])],
        "lineage": [event_dict(e) for e in catalog.lineage(index.backend, topic_id)],
    }


def event_dict(event: LineageEvent) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "kind": event.kind,
        "before": list(event.before),
        "after": list(event.after),
        "at": event.at.isoformat(),
    }


def history(index: Index, topic_id: int | None = None) -> dict[str, Any]:
    """Runs (when, how many items and topics) and lineage events, for one topic or all."""
    _need_run(index)
    return {
        "runs": [
            {
                "run_id": r.run_id,
                "started": r.started.isoformat(),
                "finished": r.finished.isoformat(),
                "items": r.n_items,
                "topics": r.n_topics,
            }
            for r in catalog.runs(index.backend)
        ],
        "events": [event_dict(e) for e in catalog.lineage(index.backend, topic_id)],
        "curation": curation.notes(index.backend, topic_id),
    }
