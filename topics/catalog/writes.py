"""Every write to the topics collection, and the item assignment writes of the online assigner."""

from __future__ import annotations

from collections.abc import Mapping

from indexer.store.base import VectorStore
from topics.catalog.codecs import assignment_payload
from topics.catalog.records import AssignedBy, ItemAssignment, Run
from topics.ids import TopicId


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
