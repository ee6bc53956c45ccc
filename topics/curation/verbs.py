"""The verbs: label/unlabel, hide/unhide, merge/unmerge, each a change of the current run's record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from indexer.store.base import Backend, VectorStore
from topics import catalog
from topics.catalog import Level, Theme, Topic, writes
from topics.curation.layer import KINDS, MAX_LABEL, Curation, _key, _name, _payload, _records, load
from topics.errors import Busy, InvalidInput, NotFound

_RETRIES = 5


def save(store: VectorStore, curation: Curation, run_id: int, level: Level = "topic") -> None:
    """Write `curation` as run `run_id`'s record of that level (one point: atomic)."""
    writes.write_curation(store, KINDS[level], run_id, _payload(curation, run_id, level))


Change = Callable[[Curation, Mapping[int, Topic | Theme]], Curation]


def update(backend: Backend, change: Change, level: Level = "topic") -> Curation:
    """Apply `change` to the current run's curation of `level`; again on the new run if a recluster
    switched."""
    store = backend.collection(catalog.TOPICS)
    for _ in range(_RETRIES):
        run = catalog.current_run(backend)
        if run is None:
            raise NotFound("no topics yet: run `topics recluster` (or `topics serve`) first")
        records = {_key(r): r for r in _records(backend, run, level)}
        changed = change(load(backend, run, level), records)
        save(store, changed, run.run_id, level)
        if catalog.current_run(backend) == run:
            return changed
    raise Busy("the topics changed under this command several times; try again")


# ---- the verbs ----


def _live(records: Mapping[int, Topic | Theme], record_id: int, level: Level) -> None:
    record = records.get(record_id)
    if record is None:
        raise NotFound(f"no {_name(level, record_id)} (see `topics list`)")
    if record.status == "vanished":
        name = _name(level, record_id)
        raise InvalidInput(f"{name} has vanished: curate a live {level} (see `topics history`)")


def _clean_label(text: str) -> str:
    label = " ".join(text.split())
    if not label:
        raise InvalidInput("a label needs some text")
    if len(label) > MAX_LABEL:
        raise InvalidInput(f"a label is at most {MAX_LABEL} characters (got {len(label)})")
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
            raise NotFound(f"{_name(level, topic_id)} has no pinned label")
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
            raise NotFound(f"{_name(level, topic_id)} is not hidden")
        return replace(cur, hidden=cur.hidden - {topic_id})

    return update(backend, change, level)


def merge(backend: Backend, topic_ids: Sequence[int], level: Level = "topic") -> Curation:
    """Show `topic_ids` as one topic (theme), the first one's (groups they already belong to join too)."""
    if len(set(topic_ids)) < 2:
        raise InvalidInput(f"merge needs at least two different {level} ids")

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
                raise NotFound(f"{_name(level, topic_id)} is not part of a merge")
            rest = tuple(m for m in merges[target] if m != topic_id)
            merges = {t: m for t, m in merges.items() if t != target} | ({target: rest} if rest else {})
        return replace(cur, merges=merges)

    return update(backend, change, level)
