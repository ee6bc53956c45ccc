"""What the report shows, read from the store once: the current run's themes, topics (as curated),
lineage, recent runs, item counts and trends."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog
from topics.catalog import LineageEvent, Run, Theme, Topic
from topics.curation import layer as curation
from topics.errors import TopicsError
from topics.query.trends import Trends, trends

N_RUNS = 10


class ReportError(TopicsError, RuntimeError):
    """The report cannot be made (nothing to show yet, or the output path is unusable)."""


@dataclass(frozen=True)
class ReportContent:
    """Everything the page shows, read from the store once."""

    run: Run
    topics: tuple[Topic, ...]  # live ones (active, emerging)
    vanished: tuple[Topic, ...]  # ended in this run
    events: tuple[LineageEvent, ...]  # this run's lineage
    runs: tuple[Run, ...]  # recent runs, oldest first
    items_now: int
    pending: int  # stored items without a topic under this run yet
    generated: datetime
    themes: tuple[Theme, ...] = ()  # live ones, largest first
    trends: Trends | None = None  # items per week of the largest topics


def read_content(index: Index) -> ReportContent:
    """The current run's topics, lineage and counts; `ReportError` before the first recluster."""
    backend = index.backend
    run = catalog.current_run(backend)
    if run is None:
        raise ReportError("no topics yet: run `topics recluster` first")
    every = curation.curate(
        catalog.list_topics(backend, include_vanished=True, run=run), curation.load(backend, run)
    )
    theme_cur = curation.load(backend, run, level="theme")
    themes = [
        t for t in curation.curate(catalog.list_themes(backend, run=run), theme_cur) if curation.shown(t)
    ]
    live = _under_curated_themes(
        (t for t in every if t.status != "vanished" and curation.shown(t)), theme_cur
    )
    ended = tuple(t for t in every if t.status == "vanished" and t.run_id == run.run_id and t.change < 0)
    events = tuple(e for e in catalog.lineage(backend, level=None) if e.run_id == run.run_id)
    items_now, pending = _item_counts(index, run)
    return ReportContent(
        run=run,
        topics=tuple(sorted(live, key=lambda t: (-t.size, t.topic_id))),
        vanished=ended,
        events=events,
        runs=tuple(catalog.runs(backend)[-N_RUNS:]),
        items_now=items_now,
        pending=pending,
        generated=datetime.now(UTC),
        themes=tuple(sorted(themes, key=lambda t: (-t.size, t.theme_id))),
        trends=trends(index, every="week"),
    )


def _under_curated_themes(topics: Iterable[Topic], cur: curation.Curation) -> tuple[Topic, ...]:
    """Topics under their themes as curated: a merged theme's under its target, a hidden theme's left out."""
    out = []
    for topic in topics:
        theme_id = None if topic.theme_id is None else cur.target(topic.theme_id)
        if theme_id not in cur.hidden and topic.theme_id not in cur.hidden:
            out.append(replace(topic, theme_id=theme_id))
    return tuple(out)


def _item_counts(index: Index, run: Run) -> tuple[int, int]:
    """Items stored now, and those with no topic under `run` yet (ingested since, awaiting assignment).

    Counted by the run field of the item's slot (an integer index), which is what readers go by.
    """
    items = index.items
    if not items.exists():
        return 0, 0
    total = items.count()
    assigned = items.count(Filter(must={catalog.slot_fields(run.slot)["run"]: run.run_id}))
    return total, max(0, total - assigned)
