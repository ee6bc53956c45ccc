"""How a search reads the items: all of them, or on a big embedded run only those of the topics
nearest the query.

On the embedded store, a run of more than `ROUTE_ABOVE` items is searched through its topics, as an
inverted file: the items of the topics nearest the query (nearest first, until they hold `PROBE_ITEMS`
items, at most `PROBE_TOPICS` topics), the outliers and the items not assigned yet are scored exactly
(the topic slot's payload index hands the engine only those), the rest are not looked at. The budget
is in items, not topics, because the cost is: at 1M items (bench/scale.py), 12 topics meant ~117k
items and 134 ms of engine time per query, 50k items 63-80 ms at recall@10 0.998-1.0 against the
exact scan (item-derived queries). The embedded engine's HNSW is no option there: every recluster rewrites
each item's assignment, which moves every point out of an HNSW segment (it is rebuilt from scratch
after each run), and the build holds the GIL for its whole length (minutes at 100k items), freezing
`topics serve`. A Qdrant server builds its HNSW in the background and is searched whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog
from topics.ids import OUTLIER

if TYPE_CHECKING:
    from topics.query.search import TopicHit

ROUTE_ABOVE = 50_000  # embedded runs with more items are searched through their nearest topics
PROBE_TOPICS = 12  # at most this many of the nearest topics' items are scored by a routed search
PROBE_ITEMS = 50_000  # ... and no more topics once those probed hold this many items


def routes_by_topic(index: Index, run: catalog.Run | None) -> bool:
    """Whether a search reads only the nearest topics' items (see the module docstring)."""
    return index.settings.store.kind == "edge" and run is not None and run.n_items > ROUTE_ABOVE


def search_index(index: Index, run: catalog.Run | None) -> dict[str, Any]:
    """How items are searched now, for `topics status`: ``built`` is False while a big store waits for
    its first recluster and every search scans all items."""
    if index.settings.store.kind != "edge":
        return {"mode": "hnsw", "built": True, "detail": "the server's HNSW index"}
    if routes_by_topic(index, run):
        assert run is not None
        detail = (
            f"nearest topics of run {run.run_id} (up to {PROBE_ITEMS} items, {PROBE_TOPICS} topics),"
            " outliers and pending items"
        )
        return {"mode": "topics", "built": True, "detail": detail}
    count = index.items.count() if index.items.exists() else 0
    built = count <= ROUTE_ABOVE
    detail = "exact scan" + ("" if built else f" of {count} items until the first recluster")
    return {"mode": "exact", "built": built, "detail": detail}


def probed_topics(ranked: Sequence[TopicHit], budget: float = PROBE_ITEMS) -> list[int]:
    """The nearest topics whose items a routed search scores: nearest first, until they hold `budget`
    items or `PROBE_TOPICS` topics are taken (always at least one)."""
    probe: list[int] = []
    held = 0
    for topic in ranked[:PROBE_TOPICS]:
        if probe and held >= budget:
            break
        probe.append(topic.topic_id)
        held += topic.size
    return probe


def routed_filters(where: Filter, run: catalog.Run | None, probe: list[int]) -> list[Filter]:
    """The probed topics' items and the outliers of the current run, and the items it has not assigned.

    The slot's topic field alone selects them: an item whose slot still holds an older run's topic
    is pending (the recluster's cleanup sets it, re-ingest clears the slot), so the second filter finds
    it anyway, and `read_assignment` shows it unassigned. Adding the run to the first filter would be
    redundant and costs as much again (a second indexed condition checked per candidate: 123 vs 58 ms
    for 12 topics at 1M items).
    """
    assert run is not None
    names = catalog.slot_fields(run.slot)
    assigned = {**where.must, names["topic"]: [*probe, OUTLIER]}
    return [
        Filter(must=assigned, ranges=where.ranges),
        Filter(must={**where.must, "pending": 1}, ranges=where.ranges),
    ]
