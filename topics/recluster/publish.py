"""Phases 6-7, ``topics_written`` and ``switched``: what a run publishes, and its curation carried along.

The job writes the records with `catalog.writes.write_run` and makes the run visible with
`catalog.writes.switch` (one upsert of the pointer record: readers see the old run or the new one,
never a mix). Around the switch the curation is followed through this run's lineage
(`topics.curation.carry`): before it, and again after it for a change a user made meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.store.base import Backend, VectorStore
from topics import curation
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
