"""Reads of the topics collection: the current run, its topics and themes, lineage, runs, item filters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from indexer.store.base import ITEMS, TOPICS, Backend, Filter, Point, VectorStore
from topics.catalog.codecs import lineage_of, run_of, theme_of, topic_of
from topics.catalog.records import Level, LineageEvent, Run, Theme, Topic
from topics.catalog.schema import POINTER_ID, record_id, slot_fields
from topics.ids import OUTLIER, ThemeId, TopicId


def topic_filter(run: Run, topic_id: TopicId | Sequence[TopicId]) -> Filter:
    """Items of `topic_id` (or of any of several topics) under `run` (outliers: -1)."""
    names = slot_fields(run.slot)
    wanted = int(topic_id) if isinstance(topic_id, int | np.integer) else [int(t) for t in topic_id]
    return Filter(must={names["topic"]: wanted, names["run"]: run.run_id})


def theme_filter(backend: Backend, run: Run, *theme_ids: ThemeId) -> Filter:
    """Items of these themes under `run`: those of their topics (born online ones included)."""
    members = [t for t, th in topic_themes(backend, run).items() if th in theme_ids]
    return topic_filter(run, members or [OUTLIER - 1])  # no topic: a filter that matches nothing


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
