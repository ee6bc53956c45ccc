"""Phases 6-7, ``topics_written`` and ``switched``: the new run written under its id, then made visible.

Records, lineage events of both levels and the run record are written and both collections flushed;
the curation is followed through this run's lineage (`topics.curation`). Nothing is visible until the
switch: one upsert of the pointer record, so readers see the old run or the new one, never a mix.
The curation is followed again after the switch, for a change a user made meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.store.base import Backend, VectorStore
from topics import catalog, curation
from topics.catalog import LineageEvent, Run, Theme, Topic

Carried = tuple[curation.Curation | None, curation.Curation | None]  # per level, what `carry` found


@dataclass(frozen=True)
class NewRun:
    """What a run publishes: its record, both levels' records and lineage, and the run before it."""

    run: Run
    previous: Run | None
    topics: list[Topic]
    themes: list[Theme]
    events: list[LineageEvent]
    theme_events: list[LineageEvent]


def write_records(
    topics: VectorStore,
    items: VectorStore,
    new: list[Topic | Theme],
    events: list[LineageEvent],
    run: Run,
    fallback_dims: dict[str, int],
) -> None:
    # A run with no live topics is still published (ended ones carry no vectors).
    dims: dict[str, int] = {} if any(r.centroids for r in new) else dict(fallback_dims)
    for record in new:
        dims.update({v: int(np.asarray(c).shape[0]) for v, c in record.centroids.items()})
    topics.ensure(catalog.topics_schema(dims, items.identity()))
    live = [r for r in new if r.status != "vanished"]
    topics.upsert([catalog.topic_point(r) if isinstance(r, Topic) else catalog.theme_point(r) for r in live])
    topics.upsert([catalog.vanished_point(r) for r in new if r.status == "vanished"])
    topics.upsert([catalog.lineage_point(e, i) for i, e in enumerate(events)])
    topics.upsert([catalog.run_point(run)])
    items.flush()  # the new slot is durable before the pointer can name it
    topics.flush()


def carry_curation(
    topics: VectorStore, backend: Backend, new: NewRun, unless: Carried | None = None
) -> Carried:
    """The previous run's curation followed through this run's lineage, at both levels (see
    `curation.carry`); `unless`: what the call before the switch returned."""
    was_topics, was_themes = unless if unless is not None else (None, None)
    return (
        curation.carry(topics, backend, new.previous, new.run, new.events, new.topics, unless=was_topics),
        curation.carry(
            topics,
            backend,
            new.previous,
            new.run,
            new.theme_events,
            new.themes,
            unless=was_themes,
            level="theme",
        ),
    )


def switch(topics: VectorStore, run: Run) -> None:
    """Make `run` the one readers see: one upsert of the pointer record, flushed."""
    topics.upsert([catalog.pointer_point(run)])
    topics.flush()
