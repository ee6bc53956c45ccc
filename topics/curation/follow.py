"""Across reclusters: each curated id followed to its successors along the run's lineage, with notes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.store.base import Backend, VectorStore
from topics.catalog import Level, Run, Theme, Topic
from topics.curation.layer import Curation, _key, load
from topics.curation.verbs import save


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
