"""The topics collection: its records, their codecs, the reads, and the only code that writes it.

Modules: `records` (the values), `schema` (collection schema, indexes, item slots, record ids),
`codecs` (records <-> points, assignments <-> payloads), `queries` (every read), `writes` (every
write of the topics collection: the only code that writes it). This package re-exports all but
`writes`, which writers import by name (`from topics.catalog import writes`), so a module that only
reads never imports a writer.


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
:func:`read_assignment` to interpret a payload and `writes.assign_items` to write one.

An item's theme is not stored with the item: it is its topic's ``theme_id`` in the same run's topic
record. The slot names the run, the run's topic records name the themes, and the pointer switches
both at once, so a reader can never pair a topic of one run with a theme of another; an online
assignment or a topic born online needs no second write for the theme. Use :func:`topic_themes`.

Topic and theme records of old runs are deleted after the switch; records of an interrupted run (run
id above the pointer's, ``vanished`` ones included) are deleted when the next run starts.
"""

from __future__ import annotations

from indexer.store.base import ITEMS, TOPICS
from topics.catalog.codecs import (
    SCORE_DECIMALS,
    assignment_payload,
    lineage_of,
    lineage_point,
    payload_columns,
    pointer_point,
    read_assignment,
    read_assignments,
    run_of,
    run_point,
    score_of_units,
    score_units,
    theme_of,
    theme_point,
    topic_of,
    topic_point,
    vanished_point,
)
from topics.catalog.queries import (
    current_run,
    get_theme,
    get_topic,
    items_of_topic,
    lineage,
    list_themes,
    list_topics,
    missing_run_note,
    run_themes,
    run_topics,
    runs,
    theme_filter,
    topic_filter,
    topic_themes,
)
from topics.catalog.records import (
    AssignedBy,
    EventKind,
    ItemAssignment,
    Level,
    LineageEvent,
    Run,
    Theme,
    Topic,
    TopicStatus,
)
from topics.catalog.schema import (
    ASSIGNMENT_INDEXES,
    POINTER_ID,
    RECORDS_VERSION,
    SLOTS,
    TOPIC_INDEXES,
    ensure_item_indexes,
    record_id,
    slot_fields,
    topics_schema,
)

__all__ = [
    "ASSIGNMENT_INDEXES",
    "ITEMS",
    "POINTER_ID",
    "RECORDS_VERSION",
    "SCORE_DECIMALS",
    "SLOTS",
    "TOPICS",
    "TOPIC_INDEXES",
    "AssignedBy",
    "EventKind",
    "ItemAssignment",
    "Level",
    "LineageEvent",
    "Run",
    "Theme",
    "Topic",
    "TopicStatus",
    "assignment_payload",
    "current_run",
    "ensure_item_indexes",
    "get_theme",
    "get_topic",
    "items_of_topic",
    "lineage",
    "lineage_of",
    "lineage_point",
    "list_themes",
    "list_topics",
    "missing_run_note",
    "payload_columns",
    "pointer_point",
    "read_assignment",
    "read_assignments",
    "record_id",
    "run_of",
    "run_point",
    "run_themes",
    "run_topics",
    "runs",
    "score_of_units",
    "score_units",
    "slot_fields",
    "theme_filter",
    "theme_of",
    "theme_point",
    "topic_filter",
    "topic_of",
    "topic_point",
    "topic_themes",
    "topics_schema",
    "vanished_point",
]
