"""The recluster job: every item's topic recomputed from the store, published with one atomic switch.

Phases (``on_phase`` is called with each name, for tests and progress):

1. ``started``: read the current run; delete debris of an interrupted run (records with a higher run
   id) and finish the previous run's pending bookkeeping if it was cut short after its switch.
2. ``sampled``: one scroll over the items' ids; a reservoir sample (``cluster.sample_size``) of them,
   then the sampled items' vectors of the clustered view and their topic under the previous run,
   read by id. Memory is the sample plus one batch, whatever the corpus size.
3. ``fitted``: `fit_clusters` on the sample only.
4. ``matched``: public ids and lineage from the overlap between the previous run's topics and the
   new clusters on the sample (`topics.fit.matching`); then the same for themes (the fit's groups of
   topics), from the overlap of the previous run's themes (each sampled item's old topic's theme)
   with the new ones. Theme ids are their own sequence (`Run.next_theme_id`).
5. ``items_written`` (and ``items_batch`` per batch): a second scroll; sampled items keep their fit
   label, the rest are assigned by the clustering; the assignments go to the item slot the current
   run does not use (see `topics.catalog`), invisible to readers, written grouped by topic and score
   every `WRITE_BUFFER` items (`_AssignmentWriter`). Sizes and per-view centroid
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import numpy as np
from scipy import sparse

from indexer.config import Settings
from indexer.diskspace import ensure_free, store_commitment
from indexer.embed.base import l2_normalise
from indexer.store.base import Backend, Filter, Point, VectorStore
from topics import catalog, curation
from topics.catalog import ItemAssignment, LineageEvent, Run, Theme, Topic
from topics.fit.clustering import Clustering, ClusterParams, fit_clusters
from topics.fit.geometry import group_rows, leave_one_out_cosines
from topics.fit.matching import Identity, MatchParams, contingency, match_topics
from topics.ids import OUTLIER
from topics.priority import SEARCHES

log = logging.getLogger(__name__)

SCROLL_BATCH = 256  # as fast as 1024 a point, and a quarter of the GIL held per engine call
WRITE_BUFFER = 65_536  # assignments held, then written grouped: one engine call per (topic, score)
WRITE_IDS = 256  # ids per grouped write: one engine call between two yields to searches
THRESHOLD_PERCENTILE = 2.0  # online assignment accepts what the weakest 2% of members would reach
_FUSED_PARTS = ("image", "text")


class ReclusterError(RuntimeError):
    """The store holds nothing to cluster in the configured view."""


class Represent(Protocol):
    """Words, exemplars, labels, tiles of the new run's topics and themes, from the items pass itself
    (no scroll of its own): `start` before the pass, `RepresentPass.add` per batch, `finish` after."""

    def start(
        self,
        view: str,
        topics: Mapping[int, np.ndarray],
        themes: Mapping[int, np.ndarray],
        theme_of: Mapping[int, int],
    ) -> RepresentPass:
        """A pass over the run's items; centroids (clustered view) by public topic and theme id."""
        ...


class RepresentPass(Protocol):
    payload_fields: tuple[str, ...]  # the item payload fields `add` reads: the pass reads no others

    def add(
        self, points: Sequence[Point], rows: np.ndarray, vectors: np.ndarray, topic_ids: np.ndarray
    ) -> None:
        """One batch of items (payloads and vectors): `rows`, those with the clustered view, their unit
        vectors in it (`view_vectors`) and the public topic each got (-1 outlier)."""

    def finish(self, topics: list[Topic], themes: list[Theme]) -> tuple[list[Topic], list[Theme]]:
        """The records with their representations filled in."""
        ...


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


@dataclass(frozen=True)
class Sample:
    """The reservoir: vectors of the view, item ids, and each item's topic in the previous run."""

    ids: list[str]
    vectors: np.ndarray
    previous: np.ndarray  # public topic id, -1 outlier, -2 not assigned by the previous run
    n_items: int


NOT_PRESENT = -2  # a sampled item the previous run did not assign
NO_VECTOR = -2  # an item without the clustered view: skipped, its slot left as it was
_Record = TypeVar("_Record", Topic, Theme)
_RUNNING = threading.Lock()  # one recluster per process: two would write the same slot


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
    waits_before, waited_before = SEARCHES.waits, SEARCHES.waited_s
    started = now or datetime.now(UTC)
    params = params or ClusterParams.from_settings(settings.cluster)
    view = settings.cluster.view
    items, topics = backend.collection(catalog.ITEMS), backend.collection(catalog.TOPICS)
    if not items.exists():
        raise ReclusterError("there are no items yet: ingest something before reclustering")
    reserve, mapped = settings.store.min_free_mb, store_commitment(settings)
    ensure_free(settings.data_dir, reserve, needed=mapped, what="recluster")  # before any write
    catalog.ensure_item_indexes(items)
    previous = _prepare(backend, items, topics)
    run_id, slot = (previous.run_id + 1, 1 - previous.slot) if previous else (1, 0)
    clock.mark("started")

    sample = reservoir_sample(items, view, settings.cluster.sample_size, previous, seed=params.seed)
    if sample.vectors.shape[0] < 2:
        raise ReclusterError(f"fewer than 2 items have a {view!r} vector; nothing to cluster")
    clock.mark("sampled")
    clustering = fit_clusters(sample.vectors, params)
    clock.mark("fitted")
    before = catalog.run_topics(backend, previous) if previous else []
    if previous is not None and previous.n_topics and not before:
        log.warning("recluster: %s", catalog.missing_run_note(backend, previous))
        before = _topics_from_items(sample, previous, view)
    identity = _match(sample, clustering, before, view, previous, match)
    themes_before = catalog.run_themes(backend, previous) if previous else []
    themes = _match_themes(sample, clustering, before, themes_before, view, previous, match)
    clock.mark("matched")

    theme_of = {identity.ids[raw]: themes.identity.ids[int(t)] for raw, t in enumerate(clustering.themes)}
    feed = None
    if represent is not None:
        feed = represent.start(
            view,
            {identity.ids[raw]: clustering.centroids[raw] for raw in identity.ids},
            {themes.identity.ids[raw]: themes.centroids[raw] for raw in themes.identity.ids},
            theme_of,
        )
    written = _write_items(items, view, sample, clustering, identity, run_id, slot, clock, feed)
    clock.mark("items_written")
    run = Run(
        run_id=run_id,
        started=started,
        finished=max(started, datetime.now(UTC)),
        n_items=written.n_items,
        n_topics=len(identity.ids),
        slot=slot,
        next_topic_id=identity.next_topic_id,
        view=view,
        params={**asdict(params), "sample_size": settings.cluster.sample_size},
        n_themes=len(themes.identity.ids),
        next_theme_id=themes.identity.next_topic_id,
    )
    new_topics = _topic_records(written, sample, clustering, identity, before, run, theme_of)
    new_themes = _theme_records(written, themes, themes_before, run)
    if feed is not None:
        new_topics, new_themes = feed.finish(new_topics, new_themes)
        clock.mark("represented")
    events, theme_events = _lineage(identity, run, "topic"), _lineage(themes.identity, run, "theme")
    records = [*new_topics, *new_themes]
    _write_records(
        topics, items, records, [*events, *theme_events], run, {view: int(sample.vectors.shape[1])}
    )
    carried = curation.carry(topics, backend, previous, run, events, new_topics)
    carried_themes = curation.carry(topics, backend, previous, run, theme_events, new_themes, level="theme")
    clock.mark("topics_written")
    topics.upsert([catalog.pointer_point(run)])
    topics.flush()
    curation.carry(topics, backend, previous, run, events, new_topics, unless=carried)
    curation.carry(
        topics, backend, previous, run, theme_events, new_themes, unless=carried_themes, level="theme"
    )
    clock.mark("switched")
    _cleanup(items, topics, run)
    clock.mark("cleaned")
    if optimize:
        topics.optimize()
        clock.mark("optimized")
    waited = round(SEARCHES.waited_s - waited_before, 3)
    waits = SEARCHES.waits - waits_before
    log.info("recluster: waited %.2f s for searches at %d yield points", waited, waits)
    return RunReport(
        run_id=run_id,
        n_items=written.n_items,
        n_sampled=len(sample.ids),
        n_topics=len(identity.ids),
        n_outliers=written.n_outliers,
        n_skipped=written.n_skipped,
        events=events,
        topic_ids=dict(identity.ids),
        seconds=clock.total(),
        phases=clock.durations,
        n_themes=len(themes.identity.ids),
        theme_events=theme_events,
        theme_ids=dict(themes.identity.ids),
        waited_s=waited,
    )


def _lineage(identity: Identity, run: Run, level: catalog.Level) -> list[LineageEvent]:
    return [LineageEvent(run.run_id, e.kind, e.before, e.after, run.started, level) for e in identity.events]


class _Phases:
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


# ---- phase 1: prepare ----


def _prepare(backend: Backend, items: VectorStore, topics: VectorStore) -> Run | None:
    """The current run, after removing an interrupted run's debris and redoing the last cleanup."""
    previous = catalog.current_run(backend)
    if topics.exists():
        last = previous.run_id if previous else 0
        topics.delete_where(Filter(ranges={"run_id": (last + 1, None)}))
    if previous is not None:
        _cleanup(items, topics, previous)
    return previous


# ---- phase 2: sample ----


def view_vectors(points: Sequence[Point], view: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows that have the view, their L2-normalised vectors as float32), a matrix per vector name."""
    parts = _FUSED_PARTS if view == "fused" else (view,)
    total: np.ndarray | None = None
    present = np.zeros(len(points), bool)
    for name in parts:
        rows = [i for i, point in enumerate(points) if name in point.vectors]
        if not rows:
            continue
        part = np.stack([np.asarray(points[i].vectors[name], np.float32) for i in rows])
        if total is None:
            total = np.zeros((len(points), part.shape[1]), np.float32)
        total[rows] += l2_normalise(part) if view == "fused" else part
        present[rows] = True
    if total is None:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    rows_with = np.flatnonzero(present)
    return rows_with, l2_normalise(total[rows_with])


def _needed_vectors(view: str) -> list[str]:
    return list(_FUSED_PARTS) if view == "fused" else [view]


def _previous_topics(points: Sequence[Point], previous: Run | None) -> np.ndarray:
    """Each point's public topic under the previous run, NOT_PRESENT when it had none."""
    out = np.full(len(points), NOT_PRESENT, np.int64)
    if previous is None:
        return out
    for i, point in enumerate(points):
        found = catalog.read_assignment(point.payload, previous)
        if found is not None:
            out[i] = found.topic
    return out


def reservoir_sample(
    items: VectorStore, view: str, size: int, previous: Run | None, *, seed: int = 0
) -> Sample:
    """A uniform sample of at most `size` items with the view (Algorithm R over one scroll).

    The scroll reads ids only; the chosen items' vectors and their previous run's slot are read by id
    afterwards: a scroll's cost is mostly what it converts, and 1M items are 20 times the sample. An
    item deleted in between drops out of the sample; one updated gives its new vectors."""
    rng = np.random.default_rng(seed)
    ids: list[str] = []
    seen = 0
    where = None if view == "fused" else Filter(has_vector=view)  # fused: an item has image or text
    for points in items.scroll(where, payload=False, batch=SCROLL_BATCH):
        SEARCHES.yield_to_searches()
        for j, slot in enumerate(_reservoir_slots(seen, len(points), size, rng)):
            if slot < 0:
                continue
            if slot == len(ids):
                ids.append(points[j].id)
            else:
                ids[slot] = points[j].id
        seen += len(points)
    kept_ids, vectors, kept_prev = _sample_vectors(items, view, ids, previous)
    return Sample(ids=kept_ids, vectors=vectors, previous=kept_prev, n_items=seen)


def _sample_vectors(
    items: VectorStore, view: str, ids: list[str], previous: Run | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The view's vectors of the sampled `ids` and their topics under `previous`, read by id in
    scroll-sized calls (sample order kept)."""
    at = {item_id: i for i, item_id in enumerate(ids)}
    vectors: np.ndarray | None = None
    found = np.zeros(len(ids), bool)
    prev = np.full(len(ids), NOT_PRESENT, np.int64)
    fields = list(catalog.slot_fields(previous.slot).values()) if previous else False
    for start in range(0, len(ids), SCROLL_BATCH):
        SEARCHES.yield_to_searches()
        points = items.retrieve(
            ids[start : start + SCROLL_BATCH], vectors=_needed_vectors(view), payload=fields
        )
        rows, batch = view_vectors(points, view)
        if len(rows) == 0:
            continue
        if vectors is None:
            vectors = np.zeros((len(ids), batch.shape[1]), np.float32)
        where = [at[points[r].id] for r in rows]
        vectors[where], found[where] = batch, True
        prev[where] = _previous_topics([points[r] for r in rows], previous)
    if vectors is None:
        return [], np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    if found.all():
        return ids, vectors, prev
    return [i for i, f in zip(ids, found, strict=True) if f], vectors[found], prev[found]


def _reservoir_slots(seen: int, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Reservoir position for each of `n` new items (-1: not kept), in arrival order."""
    index = np.arange(seen, seen + n)
    slots = np.where(index < size, index, -1)
    late = index >= size
    if late.any():
        draws = rng.integers(0, index[late] + 1)
        slots[late] = np.where(draws < size, draws, -1)
    return slots


# ---- phases 3-4: fit and match ----


def _topics_from_items(sample: Sample, previous: Run, view: str) -> list[Topic]:
    """The previous run's topics as its items still name them, when its topic records are gone:
    ids, sizes and centroids from the sample, so the ids live on."""
    topics = []
    for topic_id in np.unique(sample.previous[sample.previous >= 0]):
        members = sample.vectors[sample.previous == topic_id]
        centroid = l2_normalise(members.mean(axis=0)[None])[0]
        at = previous.started
        topics.append(
            Topic(int(topic_id), len(members), "active", previous.run_id, at, at, centroids={view: centroid})
        )
    return topics


def _match(
    sample: Sample,
    clustering: Clustering,
    before: list[Topic],
    view: str,
    previous: Run | None,
    match: MatchParams | None,
) -> Identity:
    live = [t for t in before if t.status != "vanished"]
    previous_ids = [t.topic_id for t in live]
    common = sample.previous != NOT_PRESENT
    k = clustering.centroids.shape[0]
    table = contingency(sample.previous[common], clustering.labels[common], previous_ids, k)
    dim = clustering.centroids.shape[1]
    old_centroids = (
        np.stack([t.centroids.get(view, np.zeros(dim, np.float32)) for t in live]) if live else None
    )
    sizes = np.bincount(clustering.labels[clustering.labels >= 0], minlength=k)
    # Ids born online since the last run count too: an id is never handed out twice.
    next_id = max([previous.next_topic_id, *(t.topic_id + 1 for t in before)]) if previous else 0
    return match_topics(table, previous_ids, old_centroids, clustering.centroids, next_id, match, sizes)


@dataclass(frozen=True)
class _Themes:
    """The fit's themes: public ids and lineage, and each raw theme's centroid and topics."""

    identity: Identity
    of_topic: np.ndarray  # (k,) raw theme of each raw topic label
    centroids: np.ndarray  # (t, d) unit centroid of each raw theme in the clustered view


def _match_themes(
    sample: Sample,
    clustering: Clustering,
    topics_before: list[Topic],
    themes_before: list[Theme],
    view: str,
    previous: Run | None,
    match: MatchParams | None,
) -> _Themes:
    """Theme ids carried over by member overlap (an item's old theme is its old topic's), as topics are."""
    n = clustering.n_themes
    of_topic = np.asarray(clustering.themes, np.int64)
    centroids = _theme_centroids(clustering, n)
    old_theme = {t.topic_id: t.theme_id for t in topics_before if t.theme_id is not None}
    was = np.array([old_theme.get(int(t), OUTLIER) if t >= 0 else t for t in sample.previous], np.int64)
    common = was != NOT_PRESENT
    live = [t for t in themes_before if t.status != "vanished"]
    now = clustering.theme_of(clustering.labels)
    table = contingency(was[common], now[common], [t.theme_id for t in live], n)
    dim = clustering.centroids.shape[1]
    old = np.stack([t.centroids.get(view, np.zeros(dim, np.float32)) for t in live]) if live else None
    first = max([previous.next_theme_id, *(t.theme_id + 1 for t in themes_before)]) if previous else 0
    sizes = np.bincount(now[now >= 0], minlength=n)
    identity = match_topics(table, [t.theme_id for t in live], old, centroids, first, match, sizes)
    return _Themes(identity, of_topic, centroids)


def _theme_centroids(clustering: Clustering, n: int) -> np.ndarray:
    """Each theme's centroid: its topics' centroids weighted by their sizes in the sample."""
    sizes = np.bincount(clustering.labels[clustering.labels >= 0], minlength=clustering.n_topics)
    sums = np.zeros((n, clustering.centroids.shape[1]), np.float64)
    np.add.at(sums, clustering.themes, clustering.centroids * np.maximum(sizes, 1)[:, None])
    return l2_normalise(sums).astype(np.float32) if n else sums.astype(np.float32)


# ---- phase 5: items ----


@dataclass
class _WriteTotals:
    """Accumulated while writing items: sizes and centroid sums per raw label."""

    n_items: int = 0
    n_outliers: int = 0
    n_skipped: int = 0
    sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sums: dict[str, np.ndarray] = field(default_factory=dict)


def _sample_scores(sample: Sample, clustering: Clustering) -> np.ndarray:
    """Cosine of each sampled vector to its cluster's centroid (outliers: to the nearest one)."""
    if clustering.centroids.shape[0] == 0:
        return np.zeros(len(sample.ids), np.float32)
    scores = np.empty(len(sample.ids), np.float32)
    for start in range(0, len(scores), 8192):
        part = slice(start, start + 8192)
        sims = sample.vectors[part] @ clustering.centroids.T
        labels = clustering.labels[part]
        own = sims[np.arange(sims.shape[0]), np.maximum(labels, 0)]
        scores[part] = np.where(labels >= 0, own, sims.max(axis=1))
    return scores


def _write_items(
    items: VectorStore,
    view: str,
    sample: Sample,
    clustering: Clustering,
    identity: Identity,
    run_id: int,
    slot: int,
    clock: _Phases,
    feed: RepresentPass | None,
) -> _WriteTotals:
    """Every item's assignment into `slot`; `feed` (represent) sees each batch with its topics."""
    k = clustering.centroids.shape[0]
    written = _WriteTotals(sizes=np.zeros(k, np.int64))
    in_sample = {item_id: i for i, item_id in enumerate(sample.ids)}
    sample_scores = _sample_scores(sample, clustering)
    public = np.array([identity.ids[b] for b in range(k)], np.int64)
    fields = list(feed.payload_fields) if feed is not None else False
    writes = _AssignmentWriter(items, slot, run_id)
    for points in items.scroll(vectors=True, payload=fields, batch=SCROLL_BATCH):
        SEARCHES.yield_to_searches()
        rows, vectors = view_vectors(points, view)
        labels, scores = _label_batch(points, rows, vectors, clustering, in_sample, sample_scores)
        topic_ids = np.where(labels >= 0, public[np.maximum(labels, 0)] if k else OUTLIER, OUTLIER)
        if feed is not None:
            SEARCHES.yield_to_searches()  # labelling and word counts hold the GIL too
            feed.add(points, rows, vectors, topic_ids[rows])
        writes.add(points, topic_ids, scores)
        _accumulate(written, points, labels, k)
        clock.tick("items_batch")
    writes.flush()
    return written


class _AssignmentWriter:
    """The items pass's assignments, written grouped. On the embedded engine each distinct payload is
    one call, and a score makes nearly every item's payload its own. Scores are stored to
    `catalog.SCORE_DECIMALS` (2), so a topic's items share a few dozen payloads; held until
    `WRITE_BUFFER` items, each (topic, score) group is one call of up to `WRITE_IDS` ids, with a yield
    to searches before each. 50k items of a 1M store (`bench/assignment_writes.py`): 49 us an item,
    against 69 for a call per item and 62 for two grouped writes (topic; score to 3 decimals): what is
    left is the engine's own cost per point (its payload read, merged, written, indexed). Each
    buffer is flushed to disk once written."""

    def __init__(self, items: VectorStore, slot: int, run_id: int) -> None:
        self.items, self.slot, self.run_id = items, slot, run_id
        self.ids: list[str] = []
        self.keys: list[np.ndarray] = []

    def add(self, points: Sequence[Point], topic_ids: np.ndarray, scores: np.ndarray) -> None:
        self.ids.extend(p.id for p in points)
        self.keys.append(np.stack([np.asarray(topic_ids, np.int64), catalog.score_units(scores)], axis=1))
        if len(self.ids) >= WRITE_BUFFER:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        ids, keys = np.array(self.ids, dtype=object), np.concatenate(self.keys)
        self.ids, self.keys = [], []
        distinct, group = np.unique(keys, axis=0, return_inverse=True)
        for g, rows in group_rows(group.ravel()):
            topic, units = distinct[g]
            payload = catalog.assignment_payload(
                self.slot,
                ItemAssignment(int(topic), catalog.score_of_units(int(units)), self.run_id, "recluster"),
            )
            members = ids[rows]
            for start in range(0, len(members), WRITE_IDS):
                SEARCHES.yield_to_searches()
                self.items.set_payload(members[start : start + WRITE_IDS].tolist(), payload)
        SEARCHES.yield_to_searches()
        self.items.flush()  # a share of the run's writes made durable now: the flush before the
        # switch would otherwise hold the process for all of them (17 s at 1M, searches waiting)


def _label_batch(
    points: Sequence[Point],
    rows: np.ndarray,
    vectors: np.ndarray,
    clustering: Clustering,
    in_sample: Mapping[str, int],
    sample_scores: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw labels and scores of a scroll batch (`rows`, `vectors`: its `view_vectors`): fit labels for
    sampled items, assignment for the rest, `NO_VECTOR` for items without the view."""
    labels = np.full(len(points), OUTLIER, np.int64)
    scores = np.zeros(len(points), np.float32)
    fresh: list[int] = []
    for j, row in enumerate(rows):
        at = in_sample.get(points[row].id)
        if at is None:
            fresh.append(j)
        else:
            labels[row], scores[row] = clustering.labels[at], sample_scores[at]
    if fresh:
        got_labels, got_scores = clustering.assign(vectors[fresh])
        labels[rows[fresh]], scores[rows[fresh]] = got_labels, got_scores
    labels = np.where(np.isin(np.arange(len(points)), rows), labels, NO_VECTOR)
    return labels, scores


def _accumulate(written: _WriteTotals, points: Sequence[Point], labels: np.ndarray, k: int) -> None:
    written.n_items += len(points)
    written.n_skipped += int((labels == NO_VECTOR).sum())
    written.n_outliers += int((labels < 0).sum())
    member = labels >= 0
    written.sizes += np.bincount(labels[member], minlength=k)
    for view_name in {name for p in points for name in p.vectors}:
        rows = [i for i, p in enumerate(points) if member[i] and view_name in p.vectors]
        if not rows:
            continue
        vectors = l2_normalise(np.stack([np.asarray(points[i].vectors[view_name], np.float32) for i in rows]))
        sums = written.sums.setdefault(view_name, np.zeros((k, vectors.shape[1]), np.float64))
        sums += _sum_by_label(labels[rows], vectors, k)


def _sum_by_label(labels: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """(k, d) float64 sums of `vectors` per label 0..k-1: one sparse product (np.add.at was 40 s of a
    1M-item recluster)."""
    members = sparse.csr_matrix(
        (np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels))
    )
    return np.asarray(members @ vectors.astype(np.float64))


# ---- phase 6: records ----


def _topic_records(
    written: _WriteTotals,
    sample: Sample,
    clustering: Clustering,
    identity: Identity,
    before: list[Topic],
    run: Run,
    theme_of_topic: Mapping[int, int],
) -> list[Topic]:
    """This run's live topics."""
    old = {t.topic_id: t for t in before}
    thresholds = _thresholds(sample, clustering)
    topics = []
    for raw, topic_id in sorted(identity.ids.items(), key=lambda kv: kv[1]):
        centroids = {v: l2_normalise(s[raw][None])[0] for v, s in written.sums.items() if s[raw].any()}
        centroids[run.view] = clustering.centroids[raw]
        size = int(written.sizes[raw])
        was = old.get(identity.continued.get(topic_id, -1))
        topics.append(
            Topic(
                topic_id=topic_id,
                centroids=centroids,
                threshold=float(thresholds[raw]),
                theme_id=theme_of_topic[topic_id],
                **_carried(was, size, run),
            )
        )
    return topics + _ended(before, {t.topic_id for t in before} - set(identity.continued), run)


def _theme_records(written: _WriteTotals, themes: _Themes, before: list[Theme], run: Run) -> list[Theme]:
    """This run's themes (sizes and centroids summed over their topics), plus the ended ones."""
    old = {t.theme_id: t for t in before}
    out = []
    for raw, theme_id in sorted(themes.identity.ids.items(), key=lambda kv: kv[1]):
        members = themes.of_topic == raw
        sums = {v: s[members].sum(axis=0) for v, s in written.sums.items()}
        centroids = {v: l2_normalise(total[None])[0] for v, total in sums.items() if total.any()}
        centroids[run.view] = themes.centroids[raw]
        was = old.get(themes.identity.continued.get(theme_id, -1))
        out.append(
            Theme(
                theme_id=theme_id,
                centroids=centroids,
                **_carried(was, int(written.sizes[members].sum()), run),
            )
        )
    ended = {t.theme_id for t in before} - set(themes.identity.continued)
    return out + _ended(before, ended, run)


def _carried(was: Topic | Theme | None, size: int, run: Run) -> dict[str, Any]:
    """A record's fields that follow from the one it continues (None: it is new in this run)."""
    return {
        "size": size,
        "status": "active" if was is not None else "emerging",
        "run_id": run.run_id,
        "first_seen": was.first_seen if was is not None else run.started,
        "last_seen": run.started,
        "change": size - (was.size if was is not None else 0),
        "label": was.label if was is not None else None,
        "extra": {"size_history": _history(was, run.run_id, size)},
    }


def _ended(before: Sequence[_Record], ended: set[int], run: Run) -> list[_Record]:
    """Records of the previous run whose ids do not continue, as this run's lasting `vanished` records
    (no vectors; `catalog.vanished_point`). Old stores also carry earlier vanished ids as run records
    (status already ``vanished``): they become lasting records once, unchanged but for the run."""
    out = []
    for record in before:
        if (record.topic_id if isinstance(record, Topic) else record.theme_id) in ended:
            change = 0 if record.status == "vanished" else -record.size
            out.append(
                replace(record, size=0, status="vanished", run_id=run.run_id, change=change, centroids={})
            )
    return out


def _history(was: Topic | Theme | None, run_id: int, size: int) -> list[list[int]]:
    """(run, size) pairs, newest last, bounded so a long-lived topic's record stays small."""
    earlier = list(was.extra.get("size_history", [])) if was is not None else []
    return [*earlier, [run_id, size]][-100:]


def _thresholds(sample: Sample, clustering: Clustering) -> np.ndarray:
    """Per raw label: a low percentile of its members' leave-one-out cosine to the centroid.

    A member scores against a centroid it helped form, so plain member cosines sit higher than a
    new item of the same topic would reach; leaving each member out of its own centroid calibrates
    the threshold for items the run has not seen (online agreement 0.90 -> 0.95 on small topics).
    """
    k = clustering.centroids.shape[0]
    out = np.zeros(k, np.float32)
    for raw in range(k):
        members = sample.vectors[clustering.labels == raw]
        if len(members) < 2:
            continue
        out[raw] = np.percentile(leave_one_out_cosines(members), THRESHOLD_PERCENTILE)
    return out


def _write_records(
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


# ---- phase 8: cleanup ----


def _cleanup(items: VectorStore, topics: VectorStore, run: Run) -> None:
    """Drop older runs' topic and theme records and settle `pending`; all idempotent, safe to repeat."""
    topics.delete_where(Filter(must={"kind": ["topic", "theme"]}, must_not={"run_id": run.run_id}))
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
        if unflushed >= WRITE_BUFFER:
            SEARCHES.yield_to_searches()
            items.flush()
            unflushed = 0


def _id_batches(store: VectorStore, where: Filter) -> Iterator[list[str]]:
    for points in store.scroll(where, payload=False, batch=SCROLL_BATCH * 4):
        SEARCHES.yield_to_searches()
        yield [p.id for p in points]
