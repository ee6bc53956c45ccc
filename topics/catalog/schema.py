"""The topics collection's schema and payload indexes, the items' assignment slots, and record ids."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from indexer.store.base import CollectionSchema, IndexType, VectorStore

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
