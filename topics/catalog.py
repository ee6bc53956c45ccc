"""Topic records: the domain values of the `topics` collection and the one way to read and write them.

Layout of the `topics` collection (every point has a payload ``kind``):

- ``topic``: one point per (run, live topic id); named vectors = the topic's centroid per view
  (``image``, ``text``, ``caption`` and the clustered view, e.g. ``fused``). ``theme_id`` names the
  topic's theme. Only the current run's are kept.
- ``theme``: one point per (run, live theme id), the coarse level of the tree: same fields and vectors
  as a topic (no threshold). Theme ids are public and stable like topic ids, in their own sequence.
- ``vanished`` / ``vanished_theme``: one point per topic (theme) id that ended, written once by the
  run it ended in (its ``run_id``), without vectors, and never rewritten: "topic 12" always resolves,
  and a year of churn costs one small point per ended id instead of every ended topic's vectors
  rewritten each night. (Stores written before this carried vanished ids as ``topic``/``theme``
  points of every run; the next run turns those into ``vanished`` points.)
- ``lineage``: one point per event (survived, split, merged, emerged, vanished), kept for history;
  ``level`` says whether it is about topic ids or theme ids.
- ``run``: one point per finished run (timings, counts, parameters), kept for history.
- ``pointer``: a single point naming the current run. It is written last, with one upsert of one
  point, which Qdrant applies atomically: this is the switch.

Item assignment is double-buffered: each item's payload has two slots of fields,
``topic_<s>``, ``topic_score_<s>``, ``topic_run_<s>``, ``assigned_<s>`` for s in {0, 1}. The current
run (the pointer) names its slot; a recluster writes the *other* slot, which no reader looks at, then
flips the pointer. So a reader sees all items under the old topics or all under the new ones, never a
mix, and a kill -9 at any moment leaves the old run's slot and records intact. A slot value counts only
when its ``topic_run_<s>`` equals the current run id: a stale value left in a slot by an older or an
interrupted run is ignored. Why not rewrite ``topic`` in place: a bulk update of 1M points is not
atomic in Qdrant, and keeping one assignment per run would grow payloads without bound.

``pending: 1`` marks items not yet assigned under the current run (the pipeline sets it; the
online assigner and the recluster set it to 0 once they wrote the current slot). It is an integer,
not a bool: qdrant-edge-py 0.9.0 matches a bool condition as the integer 1. Use
:func:`read_assignment` to interpret a payload and :func:`assign_items` to write one.

An item's theme is not stored with the item: it is its topic's ``theme_id`` in the same run's topic
record. The slot names the run, the run's topic records name the themes, and the pointer switches
both at once, so a reader can never pair a topic of one run with a theme of another; an online
assignment or a topic born online needs no second write for the theme. Use :func:`topic_themes`.

Topic and theme records of old runs are deleted after the switch; records of an interrupted run (run
id above the pointer's, ``vanished`` ones included) are deleted when the next run starts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from indexer.store.base import ITEMS, TOPICS, Backend, CollectionSchema, Filter, IndexType, Point, VectorStore
from topics.ids import OUTLIER, ThemeId, TopicId

TopicStatus = Literal["active", "emerging", "vanished"]
EventKind = Literal["survived", "split", "merged", "emerged", "vanished"]
AssignedBy = Literal["recluster", "online"]
Level = Literal["topic", "theme"]

SLOTS = (0, 1)
RECORDS_VERSION = "topics/1"
_NAMESPACE = uuid.UUID("3c1f0e8a-5b6d-5e2f-a4c7-91d2e3f40a5b")

TOPIC_INDEXES: dict[str, IndexType] = {
    "kind": "keyword",
    "run_id": "integer",
    "topic_id": "integer",
    "theme_id": "integer",
    "status": "keyword",
}


def slot_fields(slot: int) -> dict[str, str]:
    """The item payload field names of one assignment slot."""
    if slot not in SLOTS:
        raise ValueError(f"slot must be 0 or 1, got {slot}")
    return {
        "topic": f"topic_{slot}",
        "score": f"topic_score_{slot}",
        "run": f"topic_run_{slot}",
        "assigned": f"assigned_{slot}",
    }


ASSIGNMENT_INDEXES: dict[str, IndexType] = {  # the topic slots of items
    "pending": "integer",
    **{slot_fields(s)["topic"]: "integer" for s in SLOTS},
    **{slot_fields(s)["run"]: "integer" for s in SLOTS},
}


@dataclass(frozen=True)
class Topic:
    """One public topic as of one run. `threshold`: the cosine an online item needs to join it."""

    topic_id: TopicId
    size: int
    status: TopicStatus
    run_id: int
    first_seen: datetime
    last_seen: datetime
    change: int = 0  # size minus the size in the previous run (= size when new)
    label: str | None = None
    centroids: Mapping[str, np.ndarray] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    exemplars: tuple[str, ...] = ()  # item ids
    keywords: tuple[str, ...] = ()
    tile: str | None = None  # path of the exemplar mosaic image
    threshold: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    theme_id: ThemeId | None = None  # None: a record written before themes existed


@dataclass(frozen=True)
class Theme:
    """One public theme (a group of topics) as of one run; its fields mean what a topic's do."""

    theme_id: ThemeId
    size: int
    status: TopicStatus
    run_id: int
    first_seen: datetime
    last_seen: datetime
    change: int = 0
    label: str | None = None
    centroids: Mapping[str, np.ndarray] = field(default_factory=dict)
    words: tuple[str, ...] = ()
    exemplars: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    tile: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LineageEvent:
    """What happened to topic (or theme) ids in one run: `before` ids became `after` ids."""

    run_id: int
    kind: EventKind
    before: tuple[TopicId, ...]
    after: tuple[TopicId, ...]
    at: datetime
    level: Level = "topic"


@dataclass(frozen=True)
class Run:
    """One finished recluster run; the current one also says which item slot it owns."""

    run_id: int
    started: datetime
    finished: datetime
    n_items: int
    n_topics: int
    slot: int
    next_topic_id: int
    view: str
    params: Mapping[str, Any] = field(default_factory=dict)
    n_themes: int = 0
    next_theme_id: int = 0


@dataclass(frozen=True)
class ItemAssignment:
    """An item's topic under the current run."""

    topic: TopicId
    score: float
    run_id: int
    assigned: AssignedBy


# ---- ids ----


def record_id(*parts: object) -> str:
    """Deterministic point id of a record in the topics collection (rewrites are idempotent)."""
    return str(uuid.uuid5(_NAMESPACE, ":".join(str(p) for p in parts)))


POINTER_ID = record_id("pointer")


# ---- schema ----


def topics_schema(
    centroid_dims: Mapping[str, int], items_identity: Mapping[str, Any] | None
) -> CollectionSchema:
    """The topics collection: a centroid vector per view, tied to the items' model identity."""
    identity = {"records": RECORDS_VERSION, "items": dict(items_identity or {})}
    return CollectionSchema(vectors=dict(centroid_dims), identity=identity, indexes=TOPIC_INDEXES)


def ensure_item_indexes(items: VectorStore) -> None:
    """Add the assignment indexes to an existing items collection (its vectors and identity unchanged)."""
    items.ensure(CollectionSchema(vectors={}, identity=items.identity() or {}, indexes=ASSIGNMENT_INDEXES))


# ---- encoding ----


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


def assign_items(
    items: VectorStore,
    run: Run,
    assignments: Mapping[str, tuple[TopicId, float]],
    *,
    assigned: AssignedBy = "online",
) -> None:
    """Record topics for items under the current run and clear their `pending` flag (online assigner)."""
    updates = {
        item_id: {
            **assignment_payload(run.slot, ItemAssignment(t, s, run.run_id, assigned)),
            "pending": 0,
        }
        for item_id, (t, s) in assignments.items()
    }
    items.set_payloads(updates)


def topic_filter(run: Run, topic_id: TopicId | Sequence[TopicId]) -> Filter:
    """Items of `topic_id` (or of any of several topics) under `run` (outliers: -1)."""
    names = slot_fields(run.slot)
    wanted = int(topic_id) if isinstance(topic_id, int | np.integer) else [int(t) for t in topic_id]
    return Filter(must={names["topic"]: wanted, names["run"]: run.run_id})


def theme_filter(backend: Backend, run: Run, *theme_ids: ThemeId) -> Filter:
    """Items of these themes under `run`: those of their topics (born online ones included)."""
    members = [t for t, th in topic_themes(backend, run).items() if th in theme_ids]
    return topic_filter(run, members or [OUTLIER - 1])  # no topic: a filter that matches nothing


# ---- reads ----


def _topics_store(backend: Backend) -> VectorStore | None:
    store = backend.collection(TOPICS)
    return store if store.exists() else None


def current_run(backend: Backend) -> Run | None:
    """The run readers see now (None before the first recluster finished)."""
    store = _topics_store(backend)
    if store is None:
        return None
    found = store.retrieve([POINTER_ID])
    return run_of(found[0]) if found else None


def _scroll_records(store: VectorStore, where: Filter, vectors: bool = False) -> Iterator[Point]:
    for batch in store.scroll(where, vectors=vectors):
        yield from batch


R = TypeVar("R")  # a Topic or a Theme


@dataclass(frozen=True)
class _Level(Generic[R]):
    """How one level of the tree (topics or themes) is stored in the topics collection."""

    kind: str  # the record kind of a live id in one run
    gone_kind: str  # the kind of an ended id's one lasting record
    id_field: str
    read: Callable[[Point], R]


def run_topics(backend: Backend, run: Run) -> list[Topic]:
    """The ``topic`` records of `run` by id: its live topics (and, in an old store, vanished ones)."""
    return _run_records(backend, run, _TOPICS)


def list_topics(backend: Backend, include_vanished: bool = False, *, run: Run | None = None) -> list[Topic]:
    """The current run's topics by id; vanished ones (ended in this run or before) only when asked."""
    return _listed(backend, _TOPICS, include_vanished, run)


def get_topic(backend: Backend, topic_id: TopicId, *, run: Run | None = None) -> Topic | None:
    """One topic of the current run (vanished ones too), or None when the id was never used."""
    return _one(backend, _TOPICS, int(topic_id), run)


def _run_records(backend: Backend, run: Run, level: _Level[R]) -> list[R]:
    store = _topics_store(backend)
    if store is None:
        return []
    where = Filter(must={"kind": level.kind, "run_id": run.run_id})
    records = (level.read(p) for p in _scroll_records(store, where, vectors=True))
    return sorted(records, key=lambda r: getattr(r, level.id_field))


def _listed(backend: Backend, level: _Level[R], include_vanished: bool, run: Run | None) -> list[R]:
    run = run or current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return []
    found = {
        getattr(r, level.id_field): r
        for r in _run_records(backend, run, level)
        if include_vanished or r.status != "vanished"
    }
    if include_vanished:  # the lasting records of ids that ended in `run` or before (not a later run's)
        where = Filter(must={"kind": level.gone_kind}, ranges={"run_id": (None, run.run_id)})
        for point in _scroll_records(store, where):
            found.setdefault(int(point.payload[level.id_field]), level.read(point))
    return sorted(found.values(), key=lambda r: getattr(r, level.id_field))


def _one(backend: Backend, level: _Level[R], number: int, run: Run | None) -> R | None:
    """The record of one id in `run`, else its lasting `vanished` record if it ended by then."""
    run = run or current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return None
    ids = [record_id(level.kind, run.run_id, number), record_id(level.gone_kind, number)]
    found = {p.payload["kind"]: p for p in store.retrieve(ids, vectors=True)}
    if level.kind in found:
        return level.read(found[level.kind])
    gone = found.get(level.gone_kind)
    return level.read(gone) if gone is not None and int(gone.payload["run_id"]) <= run.run_id else None


def missing_run_note(backend: Backend, run: Run | None = None) -> str | None:
    """Why the pointer cannot be trusted (it names a run whose records are gone), or None."""
    run = run or current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return None
    has_run = bool(store.retrieve([record_id("run", run.run_id)]))
    found = store.count(Filter(must={"kind": "topic", "run_id": run.run_id}))
    if has_run and found >= run.n_topics:
        return None
    return (
        f"the topics pointer names run {run.run_id}, but {found} of its {run.n_topics} topic records"
        f"{'' if has_run else ' and not its run record'} are in the store: the next recluster rebuilds "
        "the topics from the items' assignments, keeping their ids"
    )


def run_themes(backend: Backend, run: Run) -> list[Theme]:
    """The ``theme`` records of `run` by id: its live themes (and, in an old store, vanished ones)."""
    return _run_records(backend, run, _THEMES)


def list_themes(backend: Backend, include_vanished: bool = False, *, run: Run | None = None) -> list[Theme]:
    """The current run's themes by id; vanished ones (ended in this run or before) only when asked."""
    return _listed(backend, _THEMES, include_vanished, run)


def get_theme(backend: Backend, theme_id: ThemeId, *, run: Run | None = None) -> Theme | None:
    """One theme of the current run (vanished ones too), or None when the id was never used."""
    return _one(backend, _THEMES, int(theme_id), run)


def topic_themes(backend: Backend, run: Run | None = None) -> dict[TopicId, ThemeId]:
    """Each topic's theme under `run` (topics born online included; records without one left out)."""
    run = run or current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return {}
    where = Filter(must={"kind": "topic", "run_id": run.run_id})
    found = (p.payload for p in _scroll_records(store, where))
    return {int(p["topic_id"]): int(p["theme_id"]) for p in found if p.get("theme_id") is not None}


def lineage(
    backend: Backend, topic_id: TopicId | None = None, *, level: Level | None = "topic"
) -> list[LineageEvent]:
    """Events of finished runs, oldest first, of one level (None: both); those involving `topic_id`
    (a theme id when `level` is "theme") when given."""
    run = current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return []
    where = Filter(must={"kind": "lineage"}, ranges={"run_id": (None, run.run_id)})
    points = sorted(_scroll_records(store, where), key=lambda p: (p.payload["run_id"], p.payload["index"]))
    events = [e for e in map(lineage_of, points) if level is None or e.level == level]
    if topic_id is None:
        return events
    return [e for e in events if topic_id in e.before or topic_id in e.after]


def runs(backend: Backend) -> list[Run]:
    """Finished runs, oldest first."""
    run = current_run(backend)
    store = _topics_store(backend)
    if run is None or store is None:
        return []
    where = Filter(must={"kind": "run"}, ranges={"run_id": (None, run.run_id)})
    return sorted((run_of(p) for p in _scroll_records(store, where)), key=lambda r: r.run_id)


def items_of_topic(
    backend: Backend, topic_id: TopicId, limit: int | None = 100, *, vectors: bool | Sequence[str] = False
) -> list[Point]:
    """Up to `limit` items of a topic under the current run (id order; None: all)."""
    run = current_run(backend)
    items = backend.collection(ITEMS)
    if run is None or not items.exists():
        return []
    out: list[Point] = []
    for batch in items.scroll(topic_filter(run, topic_id), vectors=vectors, batch=min(limit or 1024, 1024)):
        out.extend(batch)
        if limit is not None and len(out) >= limit:
            return out[:limit]
    return out


_TOPICS = _Level("topic", "vanished", "topic_id", topic_of)
_THEMES = _Level("theme", "vanished_theme", "theme_id", theme_of)
