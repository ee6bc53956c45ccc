"""The recluster job: every item's topic recomputed from the store, published with one atomic switch.

This module runs the phases in order; each lives in its own module of `topics.recluster` (sample,
match, assign, records, publish, cleanup). Phases (``on_phase`` is called with each name, for tests
and progress):

1. ``started``: read the current run; delete debris of an interrupted run (records with a higher run
   id) and finish the previous run's pending bookkeeping if it was cut short after its switch.
2. ``sampled``: one scroll over the items' ids; a reservoir sample (``cluster.sample_size``) of them,
   then the sampled items' vectors of the clustered view and their topic under the previous run,
   read by id. Memory is the sample plus one batch, whatever the corpus size.
3. ``fitted``: `fit_clusters` on the sample only.
4. ``matched``: public ids and lineage from the overlap between the previous run's topics and the
   new clusters on the sample (`match.py`); then the same for themes (the fit's groups of
   topics), from the overlap of the previous run's themes (each sampled item's old topic's theme)
   with the new ones. Theme ids are their own sequence (`Run.next_theme_id`).
5. ``items_written`` (and ``items_batch`` per batch): a second scroll; sampled items keep their fit
   label, the rest are assigned by the clustering; the assignments go to the item slot the current
   run does not use (see `topics.catalog`), invisible to readers, written grouped by topic and score
   every `WRITE_BUFFER` items (`assign.py`). Sizes and per-view centroid
   sums are accumulated on the way, and the optional `represent` hook sees each batch (words,
   exemplar candidates): the items are read twice in all, not three times.
6. ``represented``, ``topics_written``: the hook's representations (`RepresentPass.finish`); the live
   topic and theme records, a
   lasting ``vanished`` record for each topic or theme that ended in this run (written once, kept for
   ever, no vectors), lineage events of both levels, the run record and the curation followed through
   this run's lineage (`topics.curation`), under the new run id; both collections flushed.
7. ``switched``: the pointer record is upserted (one point): readers now see the new run.
8. ``cleaned``: old runs' topic and theme records deleted, `pending` cleared on items this run
   assigned and set on items it missed (ingested after the second scroll passed them).
9. ``optimized``: the topics collection's segments merged (`optimize`). The items are never
   optimized: this run has just rewritten every item's payload, and on the embedded store that moves
   each point out of an HNSW segment, so an index built now is rebuilt from scratch after the next
   run, while holding the GIL for minutes; searches go through the topics instead (`topics.query.search`).

A kill -9 before ``switched`` leaves the previous run fully readable (the new slot and records are
ignored and overwritten next time); after it, the new run is readable and the next run redoes the
cleanup. The fused view is normalise(normalise(image) + normalise(text)), or whichever of the two an
item has.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from indexer.config import Settings
from indexer.diskspace import ensure_free, store_commitment
from indexer.store.base import Backend, VectorStore
from topics import catalog, priority
from topics.catalog import LineageEvent, Run, writes
from topics.errors import TopicsError
from topics.fit.clustering import Clustering, fit_clusters
from topics.fit.matching import MatchParams
from topics.fit.params import ClusterParams
from topics.recluster.assign import WriteTotals, write_items
from topics.recluster.cleanup import cleanup, prepare
from topics.recluster.feed import Represent, RepresentPass
from topics.recluster.match import Matched, lineage, match_ids
from topics.recluster.publish import NewRun, carry_curation
from topics.recluster.records import theme_records, topic_records
from topics.recluster.sample import Sample, reservoir_sample

log = logging.getLogger(__name__)

_RUNNING = threading.Lock()  # one recluster per process: two would write the same slot


class ReclusterError(TopicsError, RuntimeError):
    """The store holds nothing to cluster in the configured view."""


@dataclass(frozen=True)
class RunReport:
    """What one recluster did."""

    run_id: int
    n_items: int
    n_sampled: int
    n_topics: int
    n_outliers: int
    n_skipped: int  # items without a vector for the view (stored as outliers)
    events: list[LineageEvent]
    topic_ids: dict[int, int]  # raw cluster label -> public topic id
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    n_themes: int = 0
    theme_events: list[LineageEvent] = field(default_factory=list)
    theme_ids: dict[int, int] = field(default_factory=dict)  # raw theme label -> public theme id
    waited_s: float = 0.0  # of `seconds`, spent waiting while searches ran in this process (priority)


def recluster(
    settings: Settings,
    backend: Backend,
    *,
    params: ClusterParams | None = None,
    represent: Represent | None = None,
    now: datetime | None = None,
    match: MatchParams | None = None,
    on_phase: Callable[[str], None] | None = None,
    optimize: bool = True,
) -> RunReport:
    """Recompute every item's topic and publish the new run atomically (see the module docstring).

    One run at a time per process; with a Qdrant server shared by several hosts, schedule the job on
    one of them only.
    """
    if not _RUNNING.acquire(blocking=False):
        raise ReclusterError("a recluster is already running in this process")
    try:
        return _recluster(settings, backend, params, represent, now, match, on_phase, optimize)
    finally:
        _RUNNING.release()


def _recluster(
    settings: Settings,
    backend: Backend,
    params: ClusterParams | None,
    represent: Represent | None,
    now: datetime | None,
    match: MatchParams | None,
    on_phase: Callable[[str], None] | None,
    optimize: bool,
) -> RunReport:
    clock = _Phases(on_phase)
    waits_before, waited_before = priority.SEARCHES.waits, priority.SEARCHES.waited_s
    started = now or datetime.now(UTC)
    params = params or ClusterParams.from_settings(settings.cluster)
    view = settings.cluster.view
    items, topics = backend.collection(catalog.ITEMS), backend.collection(catalog.TOPICS)
    previous = _start(settings, backend, items, topics)
    run_id, slot = (previous.run_id + 1, 1 - previous.slot) if previous else (1, 0)
    clock.mark("started")

    sample = _sample(items, view, settings.cluster.sample_size, previous, params.seed)
    clock.mark("sampled")
    clustering = fit_clusters(sample.vectors, params)
    clock.mark("fitted")
    matched = match_ids(backend, sample, clustering, view, previous, match)
    clock.mark("matched")

    feed = _start_feed(represent, view, clustering, matched)
    written = write_items(items, view, sample, clustering, matched.identity, run_id, slot, clock.tick, feed)
    clock.mark("items_written")
    run = Run(
        run_id=run_id,
        started=started,
        finished=max(started, datetime.now(UTC)),
        n_items=written.n_items,
        n_topics=len(matched.identity.ids),
        slot=slot,
        next_topic_id=matched.identity.next_topic_id,
        view=view,
        params={**asdict(params), "sample_size": settings.cluster.sample_size},
        n_themes=len(matched.themes.identity.ids),
        next_theme_id=matched.themes.identity.next_topic_id,
    )
    new = _new_run(written, sample, clustering, matched, run, previous, feed, clock)
    writes.write_run(
        topics,
        items,
        [*new.topics, *new.themes],
        [*new.events, *new.theme_events],
        run,
        {view: int(sample.vectors.shape[1])},
    )
    carried = carry_curation(topics, backend, new)
    clock.mark("topics_written")
    writes.switch(topics, run)
    carry_curation(topics, backend, new, unless=carried)
    clock.mark("switched")
    cleanup(items, topics, run)
    clock.mark("cleaned")
    if optimize:
        writes.compact(topics)
        clock.mark("optimized")
    waited = round(priority.SEARCHES.waited_s - waited_before, 3)
    waits = priority.SEARCHES.waits - waits_before
    log.info("recluster: waited %.2f s for searches at %d yield points", waited, waits)
    return _report(new, matched, written, sample, clock, waited)


def _start(settings: Settings, backend: Backend, items: VectorStore, topics: VectorStore) -> Run | None:
    """Phase 1: refuse an empty store or a disk that cannot back the run; the previous run, made clean."""
    if not items.exists():
        raise ReclusterError("there are no items yet: ingest something before reclustering")
    reserve, mapped = settings.store.min_free_mb, store_commitment(settings)
    ensure_free(settings.data_dir, reserve, needed=mapped, what="recluster")  # before any write
    catalog.ensure_item_indexes(items)
    return prepare(backend, items, topics)


def _sample(items: VectorStore, view: str, size: int, previous: Run | None, seed: int) -> Sample:
    """Phase 2: the reservoir sample the fit sees; fewer than two items cannot be clustered."""
    sample = reservoir_sample(items, view, size, previous, seed=seed)
    if sample.vectors.shape[0] < 2:
        raise ReclusterError(f"fewer than 2 items have a {view!r} vector; nothing to cluster")
    return sample


def _start_feed(
    represent: Represent | None, view: str, clustering: Clustering, matched: Matched
) -> RepresentPass | None:
    """The represent hook's pass over the items, given both levels' centroids by public id."""
    if represent is None:
        return None
    ids, themes = matched.identity.ids, matched.themes
    return represent.start(
        view,
        {ids[raw]: clustering.centroids[raw] for raw in ids},
        {themes.identity.ids[raw]: themes.centroids[raw] for raw in themes.identity.ids},
        matched.theme_of,
    )


def _new_run(
    written: WriteTotals,
    sample: Sample,
    clustering: Clustering,
    matched: Matched,
    run: Run,
    previous: Run | None,
    feed: RepresentPass | None,
    clock: _Phases,
) -> NewRun:
    """Phase 6's records of both levels (represented when a hook runs) and their lineage."""
    new_topics = topic_records(
        written, sample, clustering, matched.identity, matched.before, run, matched.theme_of
    )
    new_themes = theme_records(written, matched.themes, matched.themes_before, run)
    if feed is not None:
        new_topics, new_themes = feed.finish(new_topics, new_themes)
        clock.mark("represented")
    events = lineage(matched.identity, run, "topic")
    theme_events = lineage(matched.themes.identity, run, "theme")
    return NewRun(run, previous, new_topics, new_themes, events, theme_events)


def _report(
    new: NewRun, matched: Matched, written: WriteTotals, sample: Sample, clock: _Phases, waited: float
) -> RunReport:
    return RunReport(
        run_id=new.run.run_id,
        n_items=written.n_items,
        n_sampled=len(sample.ids),
        n_topics=len(matched.identity.ids),
        n_outliers=written.n_outliers,
        n_skipped=written.n_skipped,
        events=new.events,
        topic_ids=dict(matched.identity.ids),
        seconds=clock.total(),
        phases=clock.durations,
        n_themes=len(matched.themes.identity.ids),
        theme_events=new.theme_events,
        theme_ids=dict(matched.themes.identity.ids),
        waited_s=waited,
    )


class _Phases:
    """Each phase's seconds, logged as it ends (`recluster -v`), and told to `on_phase`."""

    def __init__(self, on_phase: Callable[[str], None] | None) -> None:
        self._on_phase = on_phase
        self._start = self._last = time.perf_counter()
        self.durations: dict[str, float] = {}

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.durations[name] = round(now - self._last, 3)
        self._last = now
        log.info("recluster: %s (%.2f s)", name, self.durations[name])
        self.tick(name)

    def tick(self, name: str) -> None:
        if self._on_phase is not None:
            self._on_phase(name)

    def total(self) -> float:
        return round(time.perf_counter() - self._start, 3)
