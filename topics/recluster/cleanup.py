"""Phases 1 and 8, ``started`` and ``cleaned``: the store made ready for a run, and settled after one.

Before a run: records of an interrupted run (a higher run id than the pointer names) are deleted and
the previous run's cleanup is redone, in case it was cut short after its switch. After the switch:
older runs' topic and theme records are deleted, `pending` is cleared on items this run assigned and
set on items it missed (ingested after the items pass went by). Every step is idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from indexer.store.base import Backend, Filter, VectorStore
from topics import catalog, priority
from topics.catalog import Run, writes
from topics.recluster import sizes


def prepare(backend: Backend, items: VectorStore, topics: VectorStore) -> Run | None:
    """The current run, after removing an interrupted run's debris and redoing the last cleanup."""
    previous = catalog.current_run(backend)
    writes.delete_interrupted(topics, previous)
    if previous is not None:
        cleanup(items, topics, previous)
    return previous


def cleanup(items: VectorStore, topics: VectorStore, run: Run) -> None:
    """Drop older runs' topic and theme records and settle `pending`; all idempotent, safe to repeat."""
    writes.delete_older_runs(topics, run)
    names = catalog.slot_fields(run.slot)
    _settle(items, Filter(must={"pending": 1, names["run"]: run.run_id}), {"pending": 0})
    _settle(items, Filter(must_not={names["run"]: run.run_id, "pending": 1}), {"pending": 1})
    items.flush()
    topics.flush()


def _settle(items: VectorStore, where: Filter, payload: Mapping[str, Any]) -> None:
    """`payload` on every item `where` matches, flushed every `WRITE_BUFFER` items: the engine's memory
    grows with unflushed payload writes (a first run settles all 1M items)."""
    unflushed = 0
    for ids in _id_batches(items, where):
        items.set_payload(ids, payload)
        unflushed += len(ids)
        if unflushed >= sizes.WRITE_BUFFER:
            priority.SEARCHES.yield_to_searches()
            items.flush()
            unflushed = 0


def _id_batches(store: VectorStore, where: Filter) -> Iterator[list[str]]:
    for points in store.scroll(where, payload=False, batch=sizes.SCROLL_BATCH * 4):
        priority.SEARCHES.yield_to_searches()
        yield [p.id for p in points]
