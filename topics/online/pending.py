"""The online assigner against the store: pending items get topics within seconds of arriving.

:func:`assign_pending` takes items marked ``pending`` in batches, runs :meth:`OnlineState.process`,
records each item's topic in the current run's slot (``assigned: online``, see `topics.catalog`) with
the batch number ``online_batch``, writes a topic record (status ``emerging``, words, exemplars) for
each topic born, and saves the state under ``<data_dir>/online/state.npz``. An item's theme is its
topic's (see `topics.catalog`); a topic born online joins the theme whose centroid is nearest.

Restarts: the saved state is used when it belongs to the current run and the store holds no online
batch it has not seen. Otherwise (no file, a corrupt one, a crash between writing items and saving)
the state is rebuilt by replaying the items assigned online since the run, batch by batch in id
order: the same inputs in the same order give the same state, and born topics get back their ids.
A new run (the nightly recluster) resets the state: drift cleared, emerging topics matched or ended.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from indexer.config import Settings
from indexer.health import quarantine
from indexer.store.base import Backend, CollectionSchema, Filter, Point, StoreError, VectorStore
from topics import catalog
from topics.catalog import ItemAssignment, Run, Theme, Topic, writes
from topics.fit.params import default_min_cluster_size
from topics.ids import OUTLIER
from topics.online.emerging import EmergingParams
from topics.online.state import EmergedTopic, OnlineState, OnlineStateError
from topics.recluster.sample import view_vectors
from topics.represent import Representation, Representer, RepresentOptions

log = logging.getLogger(__name__)

BATCH_FIELD = "online_batch"
ONLINE_INDEXES = {BATCH_FIELD: "integer"}
DEFAULT_BATCH = 1024

Describe = Callable[[EmergedTopic, Sequence[Point], str], Representation]


@dataclass(frozen=True)
class OnlineReport:
    """What one call did; `state` says where the state came from: saved, rebuilt, reset or none."""

    run_id: int | None
    assigned: int = 0  # items that got a topic
    outliers: int = 0
    emerged: tuple[int, ...] = ()
    batches: int = 0
    seconds: float = 0.0
    state: str = "none"
    reassigned: int = 0  # earlier items rewritten as founders of a new topic
    phases: dict[str, float] = field(default_factory=dict)


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "online" / "state.npz"


def assign_pending(
    backend: Backend,
    settings: Settings,
    *,
    limit: int | None = None,
    batch: int = DEFAULT_BATCH,
    describe: Describe | None = None,
) -> OnlineReport:
    """Assign every pending item (at most `limit`) under the current run; no-op before the first run.

    `describe` computes words and exemplars of a newborn topic (default: :func:`describe_emerging`).
    """
    started = time.perf_counter()
    run = catalog.current_run(backend)
    if run is None:
        return OnlineReport(run_id=None)
    items = backend.collection(catalog.ITEMS)
    ensure_online_indexes(items)
    state, origin = load_state(backend, settings, run)
    describe = describe or _default_describe(settings)
    report = OnlineReport(run_id=run.run_id, state=origin)
    for points in _pending_batches(items, run.view, batch, limit):
        report = _assign_batch(backend, items, state, run, points, describe, report)
    items.flush()
    backend.collection(catalog.TOPICS).flush()
    state.save(state_path(settings))
    return replace(report, seconds=round(time.perf_counter() - started, 3))


def ensure_online_indexes(items: VectorStore) -> None:
    """Index `online_batch` so a rebuild can read one batch at a time."""
    catalog.ensure_item_indexes(items)
    items.ensure(CollectionSchema(vectors={}, identity=items.identity() or {}, indexes=ONLINE_INDEXES))


def _pending_batches(items: VectorStore, view: str, batch: int, limit: int | None) -> Iterator[list[Point]]:
    """Pending items, `batch` at a time, each page read afresh (the previous page is no longer pending)."""
    taken, last_first = 0, None
    while limit is None or taken < limit:
        size = batch if limit is None else min(batch, limit - taken)
        page = next(items.scroll(Filter(must={"pending": 1}), vectors=_needed(view), batch=size), [])
        if not page:
            return
        if page[0].id == last_first:
            raise StoreError("pending items stay pending after their assignment was written")
        last_first = page[0].id
        taken += len(page)
        yield sorted(page, key=lambda p: p.id)


def _needed(view: str) -> list[str]:
    return ["image", "text"] if view == "fused" else [view]


def _assign_batch(
    backend: Backend,
    items: VectorStore,
    state: OnlineState,
    run: Run,
    points: list[Point],
    describe: Describe,
    tally: OnlineReport,
) -> OnlineReport:
    """One batch of pending items assigned (and the topics it gave birth to written); `tally` with it."""
    rows, vectors = view_vectors(points, run.view)
    ids = [points[r].id for r in rows]
    result = state.process(ids, vectors) if ids else None
    assignments = {p.id: (OUTLIER, 0.0) for p in points}  # an item without the view stays an outlier
    if result is not None:
        assignments.update(result.assignments())
    in_batch = {p.id for p in points}
    done = {"pending": 0} | ({BATCH_FIELD: result.batch} if result is not None else {})
    updates = {
        item_id: _slot(run, topic, score) | (done if item_id in in_batch else {})
        for item_id, (topic, score) in assignments.items()
    }
    emerged = []
    for topic in result.emerged if result is not None else ():  # the record first: no item names a topic
        write_emerging_topic(backend, run, topic, describe)  # that readers cannot find
        emerged.append(topic.topic_id)
    items.set_payloads(updates)
    return replace(
        tally,
        assigned=tally.assigned + sum(1 for i in in_batch if assignments[i][0] != OUTLIER),
        outliers=tally.outliers + sum(1 for i in in_batch if assignments[i][0] == OUTLIER),
        emerged=(*tally.emerged, *emerged),
        batches=tally.batches + 1,
        reassigned=tally.reassigned + len(assignments) - len(in_batch),
    )


def _slot(run: Run, topic: int, score: float) -> dict:
    return catalog.assignment_payload(
        run.slot, ItemAssignment(int(topic), float(score), run.run_id, "online")
    )


# ---- emerging topic records ----


def write_emerging_topic(backend: Backend, run: Run, topic: EmergedTopic, describe: Describe) -> Topic:
    """The record of a topic born online: status `emerging`, under the current run, words and exemplars."""
    items = backend.collection(catalog.ITEMS)
    members = items.retrieve(list(topic.members), vectors=True)
    described = describe(topic, members, run.view)
    now = datetime.now(UTC)
    record = Topic(
        topic_id=topic.topic_id,
        size=len(topic.members),
        status="emerging",
        run_id=run.run_id,
        first_seen=now,
        last_seen=now,
        change=len(topic.members),
        label=described.label,
        centroids=_member_centroids(members) | {run.view: topic.centroid},
        words=tuple(w for w, _ in described.words),
        exemplars=described.exemplars,
        keywords=tuple(k for k, _ in described.keywords),
        tile=described.tile,
        threshold=topic.threshold,
        extra={"online": True, "born_batch": topic.batch, "representation": described.to_payload()},
        theme_id=nearest_theme(catalog.list_themes(backend, run=run), run.view, topic.centroid),
    )
    writes.write_topic(backend.collection(catalog.TOPICS), record)
    return record


def nearest_theme(themes: Sequence[Theme], view: str, centroid: np.ndarray) -> int | None:
    """The theme whose centroid in `view` is nearest (cosine) to `centroid`; None when there is none."""
    placed = [t for t in themes if view in t.centroids]
    if not placed:
        return None
    sims = np.stack([np.asarray(t.centroids[view], np.float32) for t in placed]) @ np.asarray(
        centroid, np.float32
    )
    return placed[int(sims.argmax())].theme_id


def _member_centroids(members: Sequence[Point]) -> dict[str, np.ndarray]:
    out = {}
    for name in sorted({n for p in members for n in p.vectors}):
        vectors = np.stack([np.asarray(p.vectors[name], np.float32) for p in members if name in p.vectors])
        total = (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).sum(axis=0)
        out[name] = (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)
    return out


def _default_describe(settings: Settings) -> Describe:
    options = replace(RepresentOptions.from_settings(settings), captioner_model=None)  # no model load online

    def run(topic: EmergedTopic, members: Sequence[Point], view: str) -> Representation:
        return describe_emerging(topic, members, view, options)

    return run


def describe_emerging(
    topic: EmergedTopic, members: Sequence[Point], view: str, options: RepresentOptions | None = None
) -> Representation:
    """Words (from captions) and exemplars (MMR over the founders) of a newborn topic."""
    rows, vectors = view_vectors(members, view)
    chosen = [members[r] for r in rows]
    representer = Representer({topic.topic_id: topic.centroid}, options or RepresentOptions())
    if chosen:
        representer.add_batch(
            np.full(len(chosen), topic.topic_id),
            [p.id for p in chosen],
            vectors,
            image_vectors=_view_or_zeros(chosen, "image", vectors.shape[1]),
            text_vectors=_view_or_zeros(chosen, "text", vectors.shape[1]),
            captions=[p.payload.get("caption") for p in chosen],
            image_paths=[p.payload.get("path") for p in chosen],
        )
    return representer.finish()[topic.topic_id]


def _view_or_zeros(points: Sequence[Point], name: str, dim: int) -> np.ndarray:
    out = np.zeros((len(points), dim), np.float32)
    for i, p in enumerate(points):
        if name in p.vectors and np.asarray(p.vectors[name]).shape == (dim,):
            out[i] = p.vectors[name]
    return out


# ---- state: load, reset, rebuild ----


def load_state(backend: Backend, settings: Settings, run: Run) -> tuple[OnlineState, str]:
    """The state to continue from, and where it came from: ``saved``, ``reset`` or ``rebuilt``."""
    path = state_path(settings)
    try:
        state = OnlineState.load(path)
    except OnlineStateError as exc:
        if exc.damaged:  # kept aside and reported in `status`
            quarantine(path, str(exc.__cause__), "the online state was rebuilt from the store")
        else:
            log.info("online: %s; rebuilding from the store", exc)
        return rebuild_state(backend, settings, run), "rebuilt"
    if state.run_id != run.run_id:
        log.info("online: run %s replaced run %s; starting afresh", run.run_id, state.run_id)
        return fresh_state(backend, settings, run), "reset"
    if _store_is_ahead(backend.collection(catalog.ITEMS), run, state.batches):
        log.info("online: the store holds batches the saved state missed; rebuilding")
        return rebuild_state(backend, settings, run), "rebuilt"
    state.next_topic_id = max(state.next_topic_id, next_topic_id(backend, run))
    return state, "saved"


def _online_filter(run: Run, **ranges: tuple[int | None, int | None]) -> Filter:
    names = catalog.slot_fields(run.slot)
    return Filter(must={names["run"]: run.run_id, names["assigned"]: "online"}, ranges=ranges)


def _store_is_ahead(items: VectorStore, run: Run, batches: int) -> bool:
    return items.count(_online_filter(run, **{BATCH_FIELD: (batches, None)})) > 0


def next_topic_id(backend: Backend, run: Run) -> int:
    """The first id no topic of this run uses (ids born online count): ids are never reused."""
    used = [t.topic_id for t in catalog.list_topics(backend, run=run)]  # ended ids are below the run's
    return max([run.next_topic_id, *(t + 1 for t in used)])


def fresh_state(backend: Backend, settings: Settings, run: Run, *, reserve_born: bool = False) -> OnlineState:
    """The state right after `run`: its topics (not those born online since), no drift, no history."""
    topics = [t for t in catalog.list_topics(backend, run=run) if not t.extra.get("online")]
    usable = [t for t in topics if run.view in t.centroids]
    thresholds = _thresholds(usable)
    born = [t.topic_id for t in catalog.list_topics(backend, run=run) if t.extra.get("online")]
    return OnlineState.from_topics(
        {t.topic_id: t.centroids[run.view] for t in usable},
        thresholds,
        {t.topic_id: t.size for t in usable},
        run_id=run.run_id,
        next_topic_id=next_topic_id(backend, run),
        emerging=emerging_params(settings, run, thresholds.values()),
        dim=_dim(backend, run, usable),
        reserved_ids=born if reserve_born else (),
    )


def _thresholds(topics: Sequence[Topic]) -> dict[int, float]:
    known = [t.threshold for t in topics if t.threshold is not None]
    fallback = float(np.median(known)) if known else 0.0
    return {t.topic_id: float(t.threshold if t.threshold is not None else fallback) for t in topics}


def _dim(backend: Backend, run: Run, topics: Sequence[Topic]) -> int | None:
    if topics:
        return int(np.asarray(topics[0].centroids[run.view]).shape[-1])
    for points in backend.collection(catalog.ITEMS).scroll(vectors=_needed(run.view), batch=16):
        _rows, vectors = view_vectors(points, run.view)
        if len(vectors):
            return int(vectors.shape[1])
    return None


def emerging_params(settings: Settings, run: Run, thresholds: object) -> EmergingParams:
    """Detection knobs from the run: its minimum topic size and its median member threshold."""
    values = [float(t) for t in thresholds]  # type: ignore[attr-defined]
    coherence = float(np.median(values)) if values else 0.8
    size = run.params.get("min_cluster_size") or settings.cluster.min_cluster_size
    sample = min(run.n_items, int(run.params.get("sample_size", settings.cluster.sample_size)))
    min_size = int(size) if size else default_min_cluster_size(max(sample, 2))
    return EmergingParams(
        min_size=max(min_size, 2), coherence=min(max(coherence, -0.99), 0.99), seed=settings.cluster.seed
    )


def rebuild_state(backend: Backend, settings: Settings, run: Run) -> OnlineState:
    """Replay the items assigned online since `run`, batch by batch in id order (see module docstring)."""
    state = fresh_state(backend, settings, run, reserve_born=True)
    items = backend.collection(catalog.ITEMS)
    ensure_online_indexes(items)
    number = 0
    while _store_is_ahead(items, run, number):
        where = _online_filter(run, **{BATCH_FIELD: (number, number)})
        points = sorted(
            (p for page in items.scroll(where, vectors=_needed(run.view)) for p in page), key=lambda p: p.id
        )
        rows, vectors = view_vectors(points, run.view)
        state.batches = number
        if len(rows):
            state.process([points[r].id for r in rows], vectors)
        state.batches = number + 1
        number += 1
    _restore_missing_born(backend, run, state)
    return state


def _restore_missing_born(backend: Backend, run: Run, state: OnlineState) -> None:
    """Topics born online that the replay did not recreate (items deleted since) stay assignable."""
    for topic in catalog.list_topics(backend, run=run):
        if topic.extra.get("online") and topic.topic_id not in state.assigner and run.view in topic.centroids:
            threshold = topic.threshold if topic.threshold is not None else 0.0
            state.assigner.add_topic(topic.topic_id, topic.centroids[run.view], threshold, topic.size)
            state.next_topic_id = max(state.next_topic_id, topic.topic_id + 1)
