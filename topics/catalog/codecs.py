"""Records to points and back; an item's assignment to its slot's payload fields and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import numpy as np

from indexer.store.base import Point
from topics.catalog.records import ItemAssignment, LineageEvent, Run, Theme, Topic
from topics.catalog.schema import POINTER_ID, record_id, slot_fields


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def topic_point(topic: Topic) -> Point:
    """A topic as a point of the topics collection."""
    payload = {
        "kind": "topic",
        "topic_id": topic.topic_id,
        **_shared_payload(topic),
        "threshold": topic.threshold,
        "theme_id": topic.theme_id,
    }
    return Point(
        id=record_id("topic", topic.run_id, topic.topic_id), vectors=_vectors(topic), payload=payload
    )


def _shared_payload(record: Topic | Theme) -> dict[str, Any]:
    """The payload fields topics and themes both have."""
    return {
        "run_id": record.run_id,
        "size": record.size,
        "change": record.change,
        "status": record.status,
        "first_seen": _iso(record.first_seen),
        "last_seen": _iso(record.last_seen),
        "label": record.label,
        "words": list(record.words),
        "exemplars": list(record.exemplars),
        "keywords": list(record.keywords),
        "tile": record.tile,
        "extra": dict(record.extra),
    }


def _vectors(record: Topic | Theme) -> dict[str, np.ndarray]:
    return {v: np.asarray(c, dtype=np.float32) for v, c in record.centroids.items()}


def _shared_fields(point: Point) -> dict[str, Any]:
    """The `Topic` and `Theme` fields read back alike from a record's point."""
    p = point.payload
    return {
        "size": int(p["size"]),
        "status": p["status"],
        "run_id": int(p["run_id"]),
        "first_seen": _parse_time(p["first_seen"]),
        "last_seen": _parse_time(p["last_seen"]),
        "change": int(p.get("change", 0)),
        "label": p.get("label"),
        "centroids": {v: np.asarray(c, dtype=np.float32) for v, c in point.vectors.items()},
        "words": tuple(p.get("words") or ()),
        "exemplars": tuple(p.get("exemplars") or ()),
        "keywords": tuple(p.get("keywords") or ()),
        "tile": p.get("tile"),
        "extra": dict(p.get("extra") or {}),
    }


def vanished_point(record: Topic | Theme) -> Point:
    """An ended topic or theme as its one lasting record: the payload of its last point, no vectors."""
    if isinstance(record, Topic):
        payload = {**topic_point(record).payload, "kind": "vanished", "status": "vanished"}
        return Point(id=record_id("vanished", record.topic_id), payload=payload)
    payload = {**theme_point(record).payload, "kind": "vanished_theme", "status": "vanished"}
    return Point(id=record_id("vanished_theme", record.theme_id), payload=payload)


def topic_of(point: Point) -> Topic:
    """A topic read back from its point."""
    p = point.payload
    return Topic(
        topic_id=int(p["topic_id"]),
        **_shared_fields(point),
        threshold=p.get("threshold"),
        theme_id=None if p.get("theme_id") is None else int(p["theme_id"]),
    )


def theme_point(theme: Theme) -> Point:
    """A theme as a point of the topics collection."""
    payload = {"kind": "theme", "theme_id": theme.theme_id, **_shared_payload(theme)}
    return Point(
        id=record_id("theme", theme.run_id, theme.theme_id), vectors=_vectors(theme), payload=payload
    )


def theme_of(point: Point) -> Theme:
    """A theme read back from its point."""
    return Theme(theme_id=int(point.payload["theme_id"]), **_shared_fields(point))


def lineage_point(event: LineageEvent, index: int) -> Point:
    """One event; `index` numbers the run's events of both levels (it orders them in history)."""
    payload = {
        "kind": "lineage",
        "level": event.level,
        "run_id": event.run_id,
        "index": index,
        "event": event.kind,
        "before": list(event.before),
        "after": list(event.after),
        "at": _iso(event.at),
    }
    return Point(id=record_id("lineage", event.run_id, index), payload=payload)


def lineage_of(point: Point) -> LineageEvent:
    p = point.payload
    return LineageEvent(
        run_id=int(p["run_id"]),
        kind=p["event"],
        before=tuple(int(t) for t in p["before"]),
        after=tuple(int(t) for t in p["after"]),
        at=_parse_time(p["at"]),
        level=p.get("level") or "topic",
    )


def _run_payload(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "n_items": run.n_items,
        "n_topics": run.n_topics,
        "slot": run.slot,
        "next_topic_id": run.next_topic_id,
        "view": run.view,
        "params": dict(run.params),
        "n_themes": run.n_themes,
        "next_theme_id": run.next_theme_id,
    }


def run_point(run: Run) -> Point:
    return Point(id=record_id("run", run.run_id), payload={"kind": "run", **_run_payload(run)})


def pointer_point(run: Run) -> Point:
    """The switch: the single point naming the current run (the run record travels with it)."""
    return Point(id=POINTER_ID, payload={"kind": "pointer", **_run_payload(run)})


def run_of(point: Point) -> Run:
    p = point.payload
    return Run(
        run_id=int(p["run_id"]),
        started=_parse_time(p["started"]),
        finished=_parse_time(p["finished"]),
        n_items=int(p["n_items"]),
        n_topics=int(p["n_topics"]),
        slot=int(p["slot"]),
        next_topic_id=int(p["next_topic_id"]),
        view=str(p["view"]),
        params=dict(p.get("params") or {}),
        n_themes=int(p.get("n_themes") or 0),
        next_theme_id=int(p.get("next_theme_id") or 0),
    )


# ---- item assignment ----


SCORE_DECIMALS = 2  # an assignment's cosine as stored: a topic's items share few payloads (reclustering)


def score_units(scores: np.ndarray) -> np.ndarray:
    """Scores as integers in units of the stored precision (`SCORE_DECIMALS`)."""
    return np.rint(np.asarray(scores, np.float64) * 10**SCORE_DECIMALS).astype(np.int64)


def score_of_units(units: int) -> float:
    return round(units / 10**SCORE_DECIMALS, SCORE_DECIMALS)


def assignment_payload(slot: int, assignment: ItemAssignment) -> dict[str, Any]:
    """The payload fields that record `assignment` in `slot`."""
    names = slot_fields(slot)
    return {
        names["topic"]: int(assignment.topic),
        names["score"]: round(float(assignment.score), SCORE_DECIMALS),
        names["run"]: int(assignment.run_id),
        names["assigned"]: assignment.assigned,
    }


def read_assignment(payload: Mapping[str, Any], run: Run | None) -> ItemAssignment | None:
    """An item's topic under `run` (the current run), or None when it has none yet."""
    if run is None:
        return None
    names = slot_fields(run.slot)
    if payload.get(names["run"]) != run.run_id or payload.get(names["topic"]) is None:
        return None
    return ItemAssignment(
        topic=int(payload[names["topic"]]),
        score=float(payload.get(names["score"]) or 0.0),
        run_id=run.run_id,
        assigned=payload.get(names["assigned"]) or "recluster",
    )


def read_assignments(payloads: Sequence[Mapping[str, Any]], run: Run) -> dict[str, list[Any]]:
    """`read_assignment` of many items at once, as columns: ``topic``, ``score``, ``assigned``
    (None where an item has no topic under `run`). For exports: no object per item."""
    names = slot_fields(run.slot)
    fields = [names[k] for k in ("run", "topic", "score", "assigned")]
    runs, topics, scores, assigned = payload_columns(payloads, fields)
    if runs.count(run.run_id) == len(runs) and None not in topics and None not in scores:
        return _all_current(topics, scores, assigned)  # the usual case, in C-level passes
    current = [t if r == run.run_id else None for t, r in zip(topics, runs, strict=True)]
    return {
        "topic": [None if t is None else int(t) for t in current],
        "score": [None if t is None else float(s or 0.0) for t, s in zip(current, scores, strict=True)],
        "assigned": [None if t is None else a or "recluster" for t, a in zip(current, assigned, strict=True)],
    }


def _all_current(topics: list[Any], scores: list[Any], assigned: list[Any]) -> dict[str, list[Any]]:
    if None in assigned or "" in assigned:
        assigned = [a or "recluster" for a in assigned]
    return {"topic": list(map(int, topics)), "score": list(map(float, scores)), "assigned": assigned}


def payload_columns(payloads: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[list[Any]]:
    """Fields `names` of every payload, one list per name (None where missing); C-level passes
    when the payloads are dicts (as both stores return them)."""
    get = dict.get if set(map(type, payloads)) <= {dict} else Mapping.get
    return [list(map(get, payloads, repeat(name))) for name in names]
