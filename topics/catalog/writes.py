"""Every write to the topics collection: the only code that writes it (see docs/architecture.md).

The recluster writes a run's records (`write_run`), makes it visible (`switch`) and removes older or
interrupted runs' records; the online assigner writes a topic born between runs (`write_topic`);
the curation verbs write a run's curation record (`write_curation`). Item assignments, which live on
the items, are written here too for the online assigner (`assign_items`); the recluster's grouped
assignment writes are its own (`topics.recluster.assign`). Callers import this module by name
(`from topics.catalog import writes`): `topics.catalog` re-exports only what reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from indexer.store.base import Filter, Point, VectorStore
from topics.catalog.codecs import (
    assignment_payload,
    lineage_point,
    pointer_point,
    run_point,
    theme_point,
    topic_point,
    vanished_point,
)
from topics.catalog.records import AssignedBy, ItemAssignment, LineageEvent, Run, Theme, Topic
from topics.catalog.schema import record_id, topics_schema
from topics.ids import TopicId


def write_run(
    topics: VectorStore,
    items: VectorStore,
    new: Sequence[Topic | Theme],
    events: Sequence[LineageEvent],
    run: Run,
    fallback_dims: dict[str, int],
) -> None:
    """A run's topic and theme records (live and lasting `vanished` ones), lineage and run record, under
    its id, invisible until `switch`; items and topics flushed, so the pointer can name them."""
    # A run with no live topics is still published (ended ones carry no vectors).
    dims: dict[str, int] = {} if any(r.centroids for r in new) else dict(fallback_dims)
    for record in new:
        dims.update({v: int(np.asarray(c).shape[0]) for v, c in record.centroids.items()})
    topics.ensure(topics_schema(dims, items.identity()))
    live = [r for r in new if r.status != "vanished"]
    topics.upsert([topic_point(r) if isinstance(r, Topic) else theme_point(r) for r in live])
    topics.upsert([vanished_point(r) for r in new if r.status == "vanished"])
    topics.upsert([lineage_point(e, i) for i, e in enumerate(events)])
    topics.upsert([run_point(run)])
    items.flush()  # the new slot is durable before the pointer can name it
    topics.flush()


def switch(topics: VectorStore, run: Run) -> None:
    """Make `run` the one readers see: one upsert of the pointer record (one point: atomic), flushed."""
    topics.upsert([pointer_point(run)])
    topics.flush()


def delete_interrupted(topics: VectorStore, current: Run | None) -> None:
    """Records of a run that never switched (a run id above the current one's), `vanished` ones too."""
    if topics.exists():
        last = current.run_id if current else 0
        topics.delete_where(Filter(ranges={"run_id": (last + 1, None)}))


def delete_older_runs(topics: VectorStore, run: Run) -> None:
    """Topic and theme records of every run but `run` (lasting `vanished` records, lineage, runs and
    curation stay)."""
    topics.delete_where(Filter(must={"kind": ["topic", "theme"]}, must_not={"run_id": run.run_id}))


def compact(topics: VectorStore) -> None:
    """Merge the topics collection's segments (after a run's records are written and the old ones gone)."""
    topics.optimize()


def write_topic(topics: VectorStore, record: Topic) -> None:
    """One topic record under its run (a topic born online), flushed."""
    topics.upsert([topic_point(record)])
    topics.flush()


def write_curation(topics: VectorStore, kind: str, run_id: int, payload: Mapping[str, Any]) -> None:
    """Run `run_id`'s curation record of `kind` (one point: atomic), flushed."""
    topics.upsert([Point(id=record_id(kind, run_id), payload=dict(payload))])
    topics.flush()


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
