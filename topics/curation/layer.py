"""The curation layer: one record per run and level, read by every reader and applied with `curate`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from indexer.store.base import Backend, Filter
from topics import catalog
from topics.catalog import Level, Run, Theme, Topic

KIND = "curation"
KINDS: Mapping[Level, str] = {"topic": KIND, "theme": "curation_theme"}
MAX_LABEL = 200
R = TypeVar("R", Topic, Theme)


@dataclass(frozen=True)
class Curation:
    """Pinned labels, hidden ids and merge groups (target id -> the ids folded into it)."""

    labels: Mapping[int, str] = field(default_factory=dict)
    hidden: frozenset[int] = frozenset()
    merges: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    notes: tuple[Mapping[str, Any], ...] = ()  # what this run's recluster did to curated topics

    def target(self, topic_id: int) -> int:
        """The topic `topic_id` is shown as: its merge target, or itself."""
        for target, members in self.merges.items():
            if topic_id in members:
                return target
        return topic_id

    def is_empty(self) -> bool:
        return not (self.labels or self.hidden or self.merges)

    def as_dict(self) -> dict[str, Any]:
        return {
            "labels": {str(t): text for t, text in sorted(self.labels.items())},
            "hidden": sorted(self.hidden),
            "merges": {str(t): list(m) for t, m in sorted(self.merges.items())},
        }


# ---- storage ----


def _point_id(run_id: int, level: Level = "topic") -> str:
    return catalog.record_id(KINDS[level], run_id)


def _key(record: Topic | Theme) -> int:
    return record.topic_id if isinstance(record, Topic) else record.theme_id


def _name(level: Level, record_id: int) -> str:
    """How a message names a topic (`topic 12`) or a theme (`theme T3`)."""
    return f"theme T{record_id}" if level == "theme" else f"topic {record_id}"


def _records(backend: Backend, run: Run, level: Level) -> list[Topic] | list[Theme]:
    if level == "theme":
        return catalog.list_themes(backend, include_vanished=True, run=run)
    return catalog.list_topics(backend, include_vanished=True, run=run)


def _payload(curation: Curation, run_id: int, level: Level = "topic") -> dict[str, Any]:
    return {
        "kind": KINDS[level],
        "run_id": run_id,
        "labels": [[t, text] for t, text in sorted(curation.labels.items())],
        "hidden": sorted(curation.hidden),
        "merges": [[t, list(m)] for t, m in sorted(curation.merges.items())],
        "notes": [dict(n) for n in curation.notes],
    }


def _of(payload: Mapping[str, Any]) -> Curation:
    return Curation(
        labels={int(t): str(text) for t, text in payload.get("labels") or []},
        hidden=frozenset(int(t) for t in payload.get("hidden") or []),
        merges={int(t): tuple(int(m) for m in ms) for t, ms in payload.get("merges") or []},
        notes=tuple(payload.get("notes") or ()),
    )


def load(backend: Backend, run: Run | None = None, level: Level = "topic") -> Curation:
    """The curation of `run`'s topics or themes (default: the current run); empty before any was pinned."""
    run = run or catalog.current_run(backend)
    store = backend.collection(catalog.TOPICS)
    if run is None or not store.exists():
        return Curation()
    found = store.retrieve([_point_id(run.run_id, level)])
    return _of(found[0].payload) if found else Curation()


def notes(backend: Backend, topic_id: int | None = None, level: Level | None = None) -> list[dict[str, Any]]:
    """Every run's notes on curated topics and themes (`level` says which), oldest first; only those of
    `level` naming `topic_id` when given."""
    store = backend.collection(catalog.TOPICS)
    if not store.exists():
        return []
    found: list[dict[str, Any]] = []
    for name, kind in KINDS.items():
        if level not in (None, name):
            continue
        for batch in store.scroll(Filter(must={"kind": kind})):
            for point in batch:
                found.extend({**n, "level": name} for n in point.payload.get("notes") or [])
    found.sort(key=lambda n: (n["run_id"], n["level"] == "theme", n["topic_id"]))
    if topic_id is None:
        return found
    return [n for n in found if topic_id == n["topic_id"] or topic_id in n.get("after", [])]


# ---- reading: the layer over the topics ----


def curate(topics: Iterable[R], cur: Curation) -> list[R]:
    """`topics` (or themes) as a person sees them: pinned labels, merge members folded into their target
    (sizes summed; the members themselves marked ``merged_into``), and a ``curation`` entry in `extra`."""
    topics = list(topics)
    if cur.is_empty():
        return topics
    by_id = {_key(t): t for t in topics}
    out = []
    for topic in topics:
        key = _key(topic)
        members = [by_id[m] for m in cur.merges.get(key, ()) if m in by_id]
        live = [m for m in members if m.status != "vanished"]
        info: dict[str, Any] = {"label": key in cur.labels, "hidden": key in cur.hidden}
        if members:
            info["merged"] = [_key(m) for m in members]
        target = cur.target(key)
        if target != key:
            info["merged_into"] = target
        out.append(
            replace(
                topic,
                label=cur.labels.get(key, topic.label),
                size=topic.size + sum(m.size for m in live),
                change=topic.change + sum(m.change for m in live),
                extra={**topic.extra, "curation": info},
            )
        )
    return out


def curated_topic(
    backend: Backend, run: Run, cur: Curation, topic_id: int, level: Level = "topic"
) -> Topic | Theme | None:
    """One topic (theme) of `run` as curated (a merge target with its members' sizes), or None."""
    get = catalog.get_theme if level == "theme" else catalog.get_topic
    group = [topic_id, *cur.merges.get(topic_id, ())]
    found = [t for t in (get(backend, m, run=run) for m in group) if t is not None]
    if not found or _key(found[0]) != topic_id:
        return None
    return curate(found, cur)[0]


def shown(topic: Topic | Theme) -> bool:
    """Whether a curated topic appears in lists, search and the report (not hidden, not merged away)."""
    info = topic.extra.get("curation") or {}
    return not info.get("hidden") and "merged_into" not in info


def curation_of(topic: Topic | Theme) -> dict[str, Any]:
    """The JSON `curation` field of a curated topic: label pinned, hidden, merged ids, merged into."""
    info = topic.extra.get("curation") or {}
    return {"label": bool(info.get("label")), "hidden": bool(info.get("hidden")), **_merge_info(info)}


def _merge_info(info: Mapping[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("merged", "merged_into") if k in info}
