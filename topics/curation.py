"""Curation: labels, hidden topics and merges a person pins, kept with the store and across reclusters.

Curation is a layer over the clustering, never a rewrite of it: items keep the topic the recluster (or
the online assigner) gave them, and every reader (`list`, `show`, `search`, `report`, `export`,
`trends`) applies the layer with :func:`curate`. So every verb has an exact undo that deletes what it
added: `label`/`unlabel`, `hide`/`unhide`, `merge`/`unmerge`.

Storage: one point of kind ``curation`` per run in the topics collection (``record_id("curation",
run)``, no vectors), so `backup` and `migrate` carry it. A verb rewrites the current run's point (one
upsert: atomic); if a recluster switched runs meanwhile, the verb is applied again to the new run.

Across reclusters (:func:`follow`, run by the recluster after matching, before its switch) each
curated id goes to its successor in the lineage:

- survived: stays; split: a label stays on the id that continues (else goes to the largest piece), a
  hidden topic's pieces are all hidden, a merge group takes every piece;
- merged: a label moves to the merged topic unless that one has its own; hidden follows only when
  every merged parent was hidden; a merge group takes the merged topic;
- vanished: the label stays on the vanished record (so `show ID` still says what it was).

Each such event on a curated topic leaves a note in the new run's record; `topics history` lists them.

Themes are curated the same way (``level="theme"``: ids `T3` on the command line), in their own record
per run (kind ``curation_theme``), followed along the themes' lineage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from indexer.store.base import Backend, Filter, Point, VectorStore
from topics import catalog
from topics.catalog import Level, Run, Theme, Topic

KIND = "curation"
KINDS: Mapping[Level, str] = {"topic": KIND, "theme": "curation_theme"}
MAX_LABEL = 200
_RETRIES = 5
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


def save(store: VectorStore, curation: Curation, run_id: int, level: Level = "topic") -> None:
    """Write `curation` as run `run_id`'s record of that level (one point: atomic)."""
    store.upsert([Point(id=_point_id(run_id, level), payload=_payload(curation, run_id, level))])
    store.flush()


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


Change = Callable[[Curation, Mapping[int, Topic | Theme]], Curation]


def update(backend: Backend, change: Change, level: Level = "topic") -> Curation:
    """Apply `change` to the current run's curation of `level`; again on the new run if a recluster
    switched."""
    store = backend.collection(catalog.TOPICS)
    for _ in range(_RETRIES):
        run = catalog.current_run(backend)
        if run is None:
            raise LookupError("no topics yet: run `topics recluster` (or `topics serve`) first")
        records = {_key(r): r for r in _records(backend, run, level)}
        changed = change(load(backend, run, level), records)
        save(store, changed, run.run_id, level)
        if catalog.current_run(backend) == run:
            return changed
    raise RuntimeError("the topics changed under this command several times; try again")


# ---- the verbs ----


def _live(records: Mapping[int, Topic | Theme], record_id: int, level: Level) -> None:
    record = records.get(record_id)
    if record is None:
        raise LookupError(f"no {_name(level, record_id)} (see `topics list`)")
    if record.status == "vanished":
        name = _name(level, record_id)
        raise ValueError(f"{name} has vanished: curate a live {level} (see `topics history`)")


def _clean_label(text: str) -> str:
    label = " ".join(text.split())
    if not label:
        raise ValueError("a label needs some text")
    if len(label) > MAX_LABEL:
        raise ValueError(f"a label is at most {MAX_LABEL} characters (got {len(label)})")
    return label


def set_label(backend: Backend, topic_id: int, text: str, level: Level = "topic") -> Curation:
    """Pin `text` as topic (theme) `topic_id`'s label (it survives reclusters)."""
    label = _clean_label(text)

    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        _live(records, topic_id, level)
        return replace(cur, labels={**cur.labels, topic_id: label})

    return update(backend, change, level)


def unset_label(backend: Backend, topic_id: int, level: Level = "topic") -> Curation:
    """Drop the pinned label: the topic (theme) shows its computed label again."""

    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        if topic_id not in cur.labels:
            raise LookupError(f"{_name(level, topic_id)} has no pinned label")
        return replace(cur, labels={t: v for t, v in cur.labels.items() if t != topic_id})

    return update(backend, change, level)


def hide(backend: Backend, topic_id: int, level: Level = "topic") -> Curation:
    """Keep topic (theme) `topic_id` out of lists, search and the report."""

    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        _live(records, topic_id, level)
        return replace(cur, hidden=cur.hidden | {topic_id})

    return update(backend, change, level)


def unhide(backend: Backend, topic_id: int, level: Level = "topic") -> Curation:
    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        if topic_id not in cur.hidden:
            raise LookupError(f"{_name(level, topic_id)} is not hidden")
        return replace(cur, hidden=cur.hidden - {topic_id})

    return update(backend, change, level)


def merge(backend: Backend, topic_ids: Sequence[int], level: Level = "topic") -> Curation:
    """Show `topic_ids` as one topic (theme), the first one's (groups they already belong to join too)."""
    if len(set(topic_ids)) < 2:
        raise ValueError(f"merge needs at least two different {level} ids")

    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        for topic_id in topic_ids:
            _live(records, topic_id, level)
        target = cur.target(topic_ids[0])
        joined = {cur.target(t) for t in topic_ids}
        members = {m for t in joined for m in (t, *cur.merges.get(t, ()))} - {target}
        merges = {t: m for t, m in cur.merges.items() if t not in joined}
        return replace(cur, merges={**merges, target: tuple(sorted(members))})

    return update(backend, change, level)


def unmerge(backend: Backend, topic_id: int, level: Level = "topic") -> Curation:
    """Undo a merge: a target's whole group comes apart; a member leaves its group."""

    def change(cur: Curation, records: Mapping[int, Topic | Theme]) -> Curation:
        merges = dict(cur.merges)
        if topic_id in merges:
            del merges[topic_id]
        else:
            target = cur.target(topic_id)
            if target == topic_id:
                raise LookupError(f"{_name(level, topic_id)} is not part of a merge")
            rest = tuple(m for m in merges[target] if m != topic_id)
            merges = {t: m for t, m in merges.items() if t != target} | ({target: rest} if rest else {})
        return replace(cur, merges=merges)

    return update(backend, change, level)


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


# ---- across reclusters ----


@dataclass(frozen=True)
class _Lineage:
    """Where each old id went in one run."""

    live: Mapping[int, int]  # new live id -> size
    merged_into: Mapping[int, int]  # old id -> the merged topic
    merged_parents: Mapping[int, tuple[int, ...]]  # merged topic -> its old ids
    split_into: Mapping[int, tuple[int, ...]]  # old id -> the pieces

    def successors(self, old: int) -> list[int]:
        """Every new id that holds part of `old` (empty: it vanished)."""
        found = [old] if old in self.live else []
        found += [p for p in self.split_into.get(old, ()) if p not in found]
        if old in self.merged_into and self.merged_into[old] not in found:
            found.append(self.merged_into[old])
        return found

    def main_successor(self, old: int) -> int | None:
        """The one id a label follows: the same id, else the merged topic, else the largest piece."""
        if old in self.live:
            return old
        if old in self.merged_into:
            return self.merged_into[old]
        pieces = self.split_into.get(old, ())
        return max(pieces, key=lambda p: (self.live.get(p, 0), -p)) if pieces else None


def _lineage(events: Sequence[Any], topics: Sequence[Topic | Theme]) -> _Lineage:
    live = {_key(t): t.size for t in topics if t.status != "vanished"}
    merged_into: dict[int, int] = {}
    parents: dict[int, tuple[int, ...]] = {}
    split: dict[int, tuple[int, ...]] = {}
    for e in events:
        if e.kind == "merged":
            parents[e.after[0]] = tuple(e.before)
            merged_into.update({b: e.after[0] for b in e.before})
        elif e.kind == "split":
            split[e.before[0]] = tuple(e.after)
    return _Lineage(live, merged_into, parents, split)


def follow(
    previous: Curation,
    events: Sequence[Any],
    topics: Sequence[Topic | Theme],
    run_id: int,
    level: Level = "topic",
) -> Curation:
    """The curation of a new run: each curated id moved to its successor (see the module docstring).
    Notes name theme ids as `T3`."""
    lineage = _lineage(events, topics)
    notes: list[dict[str, Any]] = []
    ref = _theme_ref if level == "theme" else str
    labels = _follow_labels(previous.labels, lineage, run_id, notes, ref)
    hidden = _follow_hidden(previous.hidden, lineage, run_id, notes, ref)
    merges = _follow_merges(previous.merges, lineage, run_id, notes, ref)
    return Curation(labels=labels, hidden=frozenset(hidden), merges=merges, notes=tuple(notes))


def _theme_ref(theme_id: int) -> str:
    return f"T{theme_id}"


def _note(run_id: int, topic_id: int, event: str, after: Sequence[int], text: str) -> dict[str, Any]:
    return {"run_id": run_id, "topic_id": topic_id, "event": event, "after": list(after), "text": text}


def _event_of(lineage: _Lineage, old: int) -> str | None:
    if old in lineage.split_into:
        return "split"
    if old in lineage.merged_into:
        return "merged"
    return None if old in lineage.live else "vanished"


def _follow_labels(
    labels: Mapping[int, str],
    lineage: _Lineage,
    run_id: int,
    notes: list[dict[str, Any]],
    ref: Callable[[int], str] = str,
) -> dict[int, str]:
    out = {old: text for old, text in labels.items() if lineage.main_successor(old) in (None, old)}
    for old, text in sorted(labels.items()):
        to = lineage.main_successor(old)
        if to in (None, old):
            where = f"stays on {ref(old)}"
        elif to in out or to in labels:
            out[old] = text  # the successor has its own pinned label: this one stays on the ended id
            where = f"stays on {ref(old)} ({ref(to)} keeps its own label)"
        else:
            out[to] = text
            where = f"moved to {ref(to)}"
        event = _event_of(lineage, old)
        if event is not None:
            notes.append(_note(run_id, old, event, lineage.successors(old), f"label {text!r} {where}"))
    return out


def _follow_hidden(
    hidden: frozenset[int],
    lineage: _Lineage,
    run_id: int,
    notes: list[dict[str, Any]],
    ref: Callable[[int], str] = str,
) -> set[int]:
    out: set[int] = set()
    for old in sorted(hidden):
        event = _event_of(lineage, old)
        if event in (None, "vanished"):
            out.add(old)
        elif event == "split":
            out.update(lineage.successors(old))
        else:
            merged = lineage.merged_into[old]
            if set(lineage.merged_parents[merged]) <= hidden:
                out.add(merged)
            out.add(old)
        if event is not None:
            where = sorted(out & {old, *lineage.successors(old)})
            text = f"hidden: {', '.join(map(ref, where))}"
            notes.append(_note(run_id, old, event, lineage.successors(old), text))
    return out


def _follow_merges(
    merges: Mapping[int, tuple[int, ...]],
    lineage: _Lineage,
    run_id: int,
    notes: list[dict[str, Any]],
    ref: Callable[[int], str] = str,
) -> dict[int, tuple[int, ...]]:
    out: dict[int, tuple[int, ...]] = {}
    for target, members in sorted(merges.items()):
        group = [new for old in (target, *members) for new in lineage.successors(old)]
        group = list(dict.fromkeys(group))
        changed = [old for old in (target, *members) if _event_of(lineage, old) is not None]
        if not group:
            for old in changed:
                notes.append(
                    _note(run_id, old, "vanished", [], f"merge with {ref(target)} ended: all vanished")
                )
            continue
        new_target = lineage.main_successor(target) if lineage.main_successor(target) in group else group[0]
        out[new_target] = tuple(sorted(set(group) - {new_target}))
        for old in changed:
            text = f"merge group now {ref(new_target)} + [{', '.join(map(ref, out[new_target]))}]"
            notes.append(_note(run_id, old, _event_of(lineage, old) or "", lineage.successors(old), text))
    return out


def carry(
    store: VectorStore,
    backend: Backend,
    previous: Run | None,
    run: Run,
    events: Sequence[Any],
    topics: Sequence[Topic | Theme],
    *,
    unless: Curation | None = None,
    level: Level = "topic",
) -> Curation | None:
    """The recluster's step: write run `run`'s curation of `level` (with that level's `events` and
    records), followed from the previous run's one.

    Called before the switch, then after it with `unless` = what the first call returned: a verb that
    wrote the previous run's record in between is followed too (a later verb retries on the new run).
    """
    if previous is None:
        return None
    before = load(backend, previous, level)
    if before == unless or (unless is None and before.is_empty()):
        return before
    save(store, follow(before, events, topics, run.run_id, level), run.run_id, level)
    return before
