"""The recluster job against real stores: identity in every drift scenario, records, the atomic switch,
a kill -9 mid-run, bounded sampling and the `pending` bookkeeping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import topics.recluster.assign as assign
import topics.recluster.job as job
import topics.recluster.sample as sampling
import topics.recluster.sizes as sizes
from evaluation import synthetic
from indexer.config import Settings, load_settings
from indexer.store import open_backend
from indexer.store.base import Backend, Filter, Point
from topics import catalog
from topics.catalog import Theme, Topic, writes
from topics.ids import OUTLIER
from topics.recluster import ReclusterError, recluster

SMALL = {"k": 4, "size": 60}


def _settings(backend: str = "memory", **cluster: object) -> Settings:
    return load_settings(store={"backend": backend}, cluster=cluster)


def _reader_view(backend: Backend) -> tuple[int | None, dict[int, int], dict[str, int]]:
    """What a reader sees: run id, active topic sizes, each item's topic."""
    run = catalog.current_run(backend)
    sizes = {t.topic_id: t.size for t in catalog.list_topics(backend)}
    assignment = {}
    for points in backend.collection("items").scroll():
        for p in points:
            found = catalog.read_assignment(p.payload, run)
            assignment[p.id] = None if found is None else found.topic
    return (run.run_id if run else None), sizes, assignment


def _assert_consistent(backend: Backend) -> None:
    """Every item has a topic under the current run and the topic sizes count them."""
    _run, sizes, assignment = _reader_view(backend)
    assert None not in assignment.values()
    counted = Counter(t for t in assignment.values() if t != OUTLIER)
    assert dict(counted) == {t: s for t, s in sizes.items() if s}


def _truth_to_topic(backend: Backend, corpus: synthetic.Corpus) -> dict[int, int]:
    """Each truth label's majority public topic under the current run."""
    _run, _sizes, assignment = _reader_view(backend)
    votes: dict[int, Counter] = {}
    for item_id, label in zip(corpus.ids, corpus.labels, strict=True):
        votes.setdefault(int(label), Counter())[assignment[item_id]] += 1
    return {label: c.most_common(1)[0][0] for label, c in votes.items()}


@pytest.mark.parametrize("name", synthetic.SCENARIOS)
def test_identity_follows_each_drift_scenario(name: str) -> None:
    settings = _settings()
    backend = open_backend(settings)
    items = backend.collection("items")
    scenario = synthetic.drift_scenario(name, **SMALL, seed=11)
    first, second = scenario.runs
    synthetic.store_corpus(items, first)
    recluster(settings, backend)
    before = _truth_to_topic(backend, first)
    themes_before = catalog.topic_themes(backend)
    assert sorted(before.values()) == [0, 1, 2, 3]  # public ids start at 0
    synthetic.store_corpus(items, second, prune=True)
    report = recluster(settings, backend)
    after = _truth_to_topic(backend, second)
    labels = [after[int(k)] for k in second.labels]
    assert adjusted_rand_score(second.labels, labels) > 0.95
    events = {(e.kind, e.before, e.after) for e in report.events}
    for expected in scenario.expected[0]:
        ids_before = tuple(sorted(before[k] for k in expected.before))
        ids_after = tuple(sorted(after[k] for k in expected.after))
        assert (expected.kind, ids_before, ids_after) in events
    untouched = {k for k in range(4)} - {k for e in scenario.expected[0] for k in (*e.before, *e.after)}
    themes_after = catalog.topic_themes(backend)
    for k in untouched | ({0} if name == "split" else set()):
        assert after[k] == before[k]
        assert ("survived", (before[k],), (before[k],)) in events
        assert themes_after[after[k]] == themes_before[before[k]]  # its theme keeps its id too
        theme = themes_before[before[k]]
        assert ("survived", (theme,), (theme,)) in {(e.kind, e.before, e.after) for e in report.theme_events}
    born = {t for t in after.values()} - set(before.values())
    assert all(t >= 4 for t in born)  # fresh ids only, never a reused one
    if name in {"emerge", "split"}:
        assert catalog.get_topic(backend, after[4]).status == "emerging"
    backend.close()


def test_steady_runs_keep_every_id_and_history_is_readable() -> None:
    settings = _settings()
    backend = open_backend(settings)
    scenario = synthetic.drift_scenario("steady", **SMALL, seed=3)
    synthetic.store_corpus(backend.collection("items"), scenario.runs[0])
    day = datetime(2026, 1, 1, tzinfo=UTC)
    reports = [recluster(settings, backend, now=day + timedelta(days=i)) for i in range(3)]
    assert [r.run_id for r in reports] == [1, 2, 3]
    assert all({e.kind for e in r.events} == {"survived"} for r in reports[1:])
    topics = catalog.list_topics(backend)
    assert [t.topic_id for t in topics] == [0, 1, 2, 3]
    assert all(t.first_seen == day and t.last_seen == day + timedelta(days=2) for t in topics)
    assert all(t.change == 0 and t.status == "active" and t.run_id == 3 for t in topics)
    assert [r.run_id for r in catalog.runs(backend)] == [1, 2, 3]
    assert [e.kind for e in catalog.lineage(backend, 2)] == ["emerged", "survived", "survived"]
    _assert_consistent(backend)
    backend.close()


def _assignments(backend: Backend) -> dict[str, catalog.ItemAssignment | None]:
    run = catalog.current_run(backend)
    return {
        p.id: catalog.read_assignment(p.payload, run)
        for ps in backend.collection("items").scroll()
        for p in ps
    }


def test_assignments_written_in_groups_are_each_items_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouped writes (one engine call per topic and score, over several buffers) store what a write
    per item would: the item's topic and its score, to `catalog.SCORE_DECIMALS`."""
    corpus = synthetic.drift_scenario("steady", **SMALL, seed=5).runs[0]
    settings = _settings()
    whole, split = open_backend(settings), open_backend(settings)
    for backend in (whole, split):
        synthetic.store_corpus(backend.collection("items"), corpus)
    recluster(settings, whole)
    monkeypatch.setattr(sizes, "WRITE_BUFFER", 50)  # 240 items: five flushes, the last partial
    monkeypatch.setattr(sizes, "WRITE_IDS", 7)
    calls: list[int] = []  # sizes of the assignment writes (the cleanup's `pending` writes are not)
    items = split.collection("items")
    set_payload = items.set_payload
    monkeypatch.setattr(
        items,
        "set_payload",
        lambda ids, payload: (
            ("pending" not in payload and calls.append(len(ids))) or set_payload(ids, payload)
        ),
    )
    scored: dict[str, float] = {}
    label_batch = assign._label_batch

    def recording(points, *args):
        labels, scores = label_batch(points, *args)
        scored.update({p.id: float(s) for p, s in zip(points, scores, strict=True)})
        return labels, scores

    monkeypatch.setattr(assign, "_label_batch", recording)
    recluster(settings, split)
    assert calls and max(calls) <= 7
    got = _assignments(split)
    assert got == _assignments(whole)
    assert len(scored) == len(got) == len(corpus.ids)
    step = 10.0**-catalog.SCORE_DECIMALS
    assert all(a is not None and abs(a.score - scored[i]) <= step / 2 + 1e-6 for i, a in got.items())
    assert all(a is not None and a.score == round(a.score, catalog.SCORE_DECIMALS) for a in got.values())
    _assert_consistent(split)
    whole.close()
    split.close()


def test_topic_records_hold_sizes_centroids_thresholds_and_members() -> None:
    settings = _settings()
    backend = open_backend(settings)
    corpus = synthetic.drift_scenario("steady", **SMALL).runs[0]
    synthetic.store_corpus(backend.collection("items"), corpus)
    report = recluster(settings, backend)
    topics = catalog.list_topics(backend)
    assert report.n_items == 240 and report.n_topics == 4 == len(topics)
    assert sum(t.size for t in topics) + report.n_outliers == 240
    for topic in topics:
        assert set(topic.centroids) == {"image", "text", "fused"}
        assert all(np.linalg.norm(c) == pytest.approx(1.0, abs=1e-4) for c in topic.centroids.values())
        assert 0.0 < topic.threshold < 1.0
        members = catalog.items_of_topic(backend, topic.topic_id, limit=None)
        assert len(members) == topic.size
        assert len(catalog.items_of_topic(backend, topic.topic_id, limit=5)) == 5
        found = catalog.read_assignment(members[0].payload, catalog.current_run(backend))
        assert found.assigned == "recluster" and found.score >= topic.threshold - 0.2
    assert catalog.get_topic(backend, 99) is None
    backend.close()


def test_vanished_topics_stay_readable_and_ids_are_never_reused() -> None:
    settings = _settings()
    backend = open_backend(settings)
    items = backend.collection("items")
    vanish = synthetic.drift_scenario("vanish", **SMALL, seed=2)
    synthetic.store_corpus(items, vanish.runs[0])
    recluster(settings, backend)
    gone = _truth_to_topic(backend, vanish.runs[0])[0]
    synthetic.store_corpus(items, vanish.runs[1], prune=True)
    recluster(settings, backend)
    assert gone not in {t.topic_id for t in catalog.list_topics(backend)}
    vanished = catalog.get_topic(backend, gone)
    assert vanished.status == "vanished" and vanished.size == 0 and vanished.change == -60
    assert gone in {t.topic_id for t in catalog.list_topics(backend, include_vanished=True)}
    newcomers = synthetic.drift_scenario("emerge", **SMALL, seed=9).runs[1]
    extra = synthetic.Corpus(newcomers.ids[240:], newcomers.vectors[240:], newcomers.labels[240:])
    synthetic.store_corpus(items, extra)
    report = recluster(settings, backend)
    assert [(e.kind, e.after) for e in report.events if e.kind == "emerged"] == [("emerged", (4,))]
    assert catalog.get_topic(backend, gone).status == "vanished"  # carried forward
    assert catalog.current_run(backend).next_topic_id == 5
    backend.close()


def test_represent_hook_sees_each_item_once_with_its_new_topic() -> None:
    settings = _settings()
    backend = open_backend(settings)
    synthetic.store_corpus(backend.collection("items"), synthetic.drift_scenario("steady", **SMALL).runs[0])
    seen: dict[int, int] = {}
    items_seen: list[str] = []

    class Feed:
        payload_fields = ("pending",)

        def add(self, points, rows, vectors, topic_ids) -> None:
            items_seen.extend(p.id for p in points)
            assert all(set(p.payload) == {"pending"} and p.vectors for p in points)  # what it asked for
            assert len(rows) == len(vectors) == len(topic_ids)
            np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
            for topic_id in topic_ids[topic_ids >= 0]:
                seen[int(topic_id)] = seen.get(int(topic_id), 0) + 1

        def finish(self, topics: list[Topic], themes: list[Theme]) -> tuple[list[Topic], list[Theme]]:
            return [replace(t, label=f"topic {t.topic_id}", words=("a", "b")) for t in topics], themes

    class Hook:
        def start(self, view, topics, themes, theme_of) -> Feed:
            assert view == settings.cluster.view and set(theme_of) == set(topics)
            assert set(theme_of.values()) <= set(themes)
            return Feed()

    recluster(settings, backend, represent=Hook())
    topics = catalog.list_topics(backend)
    assert sorted(items_seen) == sorted(p.id for batch in backend.collection("items").scroll() for p in batch)
    assert seen == {t.topic_id: t.size for t in topics}
    assert [t.label for t in topics] == [f"topic {t.topic_id}" for t in topics]
    assert topics[0].words == ("a", "b")
    backend.close()


def test_reader_between_phases_sees_old_or_new_never_a_mix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizes, "SCROLL_BATCH", 50)  # several item batches, so a mix would show
    settings = _settings()
    backend = open_backend(settings)
    items = backend.collection("items")
    scenario = synthetic.drift_scenario("split", **SMALL, seed=4)
    synthetic.store_corpus(items, scenario.runs[0])
    recluster(settings, backend)
    synthetic.store_corpus(items, scenario.runs[1])
    old = _reader_view(backend)
    seen: list[tuple[str, tuple]] = []
    recluster(settings, backend, on_phase=lambda phase: seen.append((phase, _reader_view(backend))))
    new = _reader_view(backend)
    assert old != new and new[0] == 2
    states = ["old" if view == old else "new" if view == new else "mix" for _, view in seen]
    assert "mix" not in states
    switch = states.index("new")
    assert seen[switch][0] == "switched" and set(states[switch:]) == {"new"}
    assert sum(phase == "items_batch" for phase, _ in seen) >= 4
    backend.close()


def test_the_fit_never_sees_more_than_the_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    shapes: list[tuple[int, ...]] = []
    real_fit = job.fit_clusters

    def spy(sample: np.ndarray, params: object) -> object:
        shapes.append(sample.shape)
        return real_fit(sample, params)

    monkeypatch.setattr(job, "fit_clusters", spy)
    settings = _settings(sample_size=100, min_cluster_size=8)
    backend = open_backend(settings)
    corpus = synthetic.drift_scenario("steady", k=4, size=100, seed=8).runs[0]
    synthetic.store_corpus(backend.collection("items"), corpus)
    report = recluster(settings, backend)
    assert shapes == [(100, 512)] and report.n_sampled == 100 and report.n_items == 400
    after = _truth_to_topic(backend, corpus)
    _run, _sizes, assignment = _reader_view(backend)
    assert None not in assignment.values()  # the 300 items outside the sample were assigned too
    members = [(label, assignment[i]) for i, label in zip(corpus.ids, corpus.labels, strict=True)]
    members = [(label, topic) for label, topic in members if topic != OUTLIER]
    assert adjusted_rand_score(*zip(*members, strict=True)) > 0.95  # outliers aside: the clustering's call
    assert len(set(after.values())) == 4
    backend.close()


@pytest.mark.parametrize("kind", ["memory", "edge"])
def test_the_sample_holds_items_with_the_view_and_skips_one_deleted_before_its_vectors_are_read(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(kind)
    backend = open_backend(settings)
    items = backend.collection("items")
    corpus = synthetic.drift_scenario("steady", k=4, size=50, seed=2).runs[0]
    synthetic.store_corpus(items, corpus)
    caption_only = corpus.ids[::4]  # 50 of 200 items lose their image vector
    kept = {p.id: p for p in items.retrieve(caption_only, vectors=True)}
    items.upsert([Point(i, {"text": kept[i].vectors["text"]}, kept[i].payload) for i in caption_only])
    whole = sampling.reservoir_sample(items, "image", 500, None)
    assert whole.n_items == 150 and len(whole.ids) == 150 and not set(whole.ids) & set(caption_only)
    fused = sampling.reservoir_sample(items, "fused", 500, None)
    assert fused.n_items == 200 and len(fused.ids) == 200 and fused.vectors.shape == (200, 512)
    by_id = {p.id: p for p in items.retrieve(corpus.ids, vectors=True)}
    expected = sampling.view_vectors([by_id[i] for i in fused.ids], "fused")[1]
    np.testing.assert_allclose(fused.vectors, expected, atol=1e-6)  # each row is its own item's view

    retrieve = items.retrieve
    gone = corpus.ids[1]

    def deleted_meanwhile(ids, **kwargs):
        return [p for p in retrieve(ids, **kwargs) if p.id != gone]

    monkeypatch.setattr(items, "retrieve", deleted_meanwhile)
    sample = sampling.reservoir_sample(items, "fused", 500, None)  # every item chosen, one then gone
    assert (
        gone not in sample.ids and len(sample.ids) == sample.vectors.shape[0] == len(sample.previous) == 199
    )
    assert sample.n_items == 200
    backend.close()


def test_reservoir_keeps_a_uniform_sample() -> None:
    slots_taken = np.zeros(1_000)
    for seed in range(200):
        rng = np.random.default_rng(seed)
        chosen = np.full(50, -1)
        for start in range(0, 1_000, 100):
            slots = sampling._reservoir_slots(start, 100, 50, rng)
            for j, slot in enumerate(slots):
                if slot >= 0:
                    chosen[slot] = start + j
        slots_taken[chosen] += 1
    halves = slots_taken[:500].sum(), slots_taken[500:].sum()
    assert abs(halves[0] - halves[1]) < 0.1 * sum(halves)  # early and late items equally likely


def test_writes_are_flushed_every_buffer_and_pending_still_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The items pass and the cleanup flush every `WRITE_BUFFER` items (the engine's memory grows with
    unflushed writes); the run's result is the same."""
    monkeypatch.setattr(sizes, "WRITE_BUFFER", 50)
    monkeypatch.setattr(sizes, "SCROLL_BATCH", 20)  # the cleanup scrolls 80 ids a call
    settings = _settings("edge")
    backend = open_backend(settings)
    items = backend.collection("items")
    synthetic.store_corpus(items, synthetic.drift_scenario("steady", **SMALL).runs[0])
    flushes: list[int] = []
    flush = items.flush
    monkeypatch.setattr(items, "flush", lambda: flushes.append(1) or flush())
    recluster(settings, backend)
    assert len(flushes) >= 240 // 60 + 240 // 80  # the assignments' buffers, then pending settled
    assert items.count(Filter(must={"pending": 1})) == 0
    _assert_consistent(backend)
    backend.close()


@pytest.mark.parametrize("kind", ["memory", "edge"])
def test_pending_is_cleared_for_assigned_items_and_set_for_missed_ones(kind: str) -> None:
    settings = _settings(kind)
    backend = open_backend(settings)
    items = backend.collection("items")
    corpus = synthetic.drift_scenario("steady", **SMALL).runs[0]
    synthetic.store_corpus(items, corpus)
    assert items.count(Filter(must={"pending": 1})) == 240
    recluster(settings, backend)
    assert items.count(Filter(must={"pending": 1})) == 0
    late = [f"00000000-0000-4000-8000-00000000000{i}" for i in range(2)]

    def arrive_late(phase: str) -> None:
        if phase != "items_written":
            return
        vector = {"image": corpus.vectors[0], "text": corpus.vectors[0]}
        items.upsert([Point(i, vector, {"pending": 1}) for i in late])
        old_run = catalog.current_run(backend)
        writes.assign_items(items, old_run, {late[1]: (0, 0.9)})  # online, under the old run

    recluster(settings, backend, on_phase=arrive_late)
    pending = {p.id for pts in items.scroll(Filter(must={"pending": 1})) for p in pts}
    assert pending == set(late)  # missed by this run: the online assigner takes them next
    run = catalog.current_run(backend)
    assert all(catalog.read_assignment(p.payload, run) is None for p in items.retrieve(late))
    backend.close()


def test_an_empty_store_is_a_clear_error() -> None:
    settings = _settings()
    backend = open_backend(settings)
    with pytest.raises(ReclusterError, match="ingest"):
        recluster(settings, backend)
    synthetic.ensure_items(backend.collection("items"))
    with pytest.raises(ReclusterError, match="nothing to cluster"):
        recluster(settings, backend)
    assert catalog.current_run(backend) is None and catalog.list_topics(backend) == []
    backend.close()


CHILD = textwrap.dedent(
    """
    import sys, time
    import topics.recluster.sizes as sizes
    from indexer.config import load_settings
    from indexer.store import open_backend
    from topics.recluster import recluster

    sizes.SCROLL_BATCH = 64
    pause_at = sys.argv[1]

    def on_phase(name):
        print(name, flush=True)
        if name == pause_at:
            time.sleep(120)

    settings = load_settings()
    recluster(settings, open_backend(settings), on_phase=on_phase)
    print("done", flush=True)
    """
)


def _run_until_killed(phase: str, cwd: Path) -> list[str]:
    """Start a recluster in a subprocess, SIGKILL it when it reaches `phase`; the phases it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, phase], stdout=subprocess.PIPE, text=True, cwd=cwd, env=dict(os.environ)
    )
    printed = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            printed.append(line.strip())
            if printed[-1] == phase:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL and printed[-1] == phase
    return printed


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["items_batch", "topics_written", "switched"])
def test_kill_9_mid_run_leaves_a_consistent_store(phase: str, tmp_path: Path) -> None:
    settings = _settings("edge")
    scenario = synthetic.drift_scenario("split", **SMALL, seed=6)
    backend = open_backend(settings)
    synthetic.store_corpus(backend.collection("items"), scenario.runs[0])
    recluster(settings, backend)
    synthetic.store_corpus(backend.collection("items"), scenario.runs[1])
    old = _reader_view(backend)
    backend.close()  # release the directory lock for the child

    _run_until_killed(phase, Path(__file__).parents[2])

    backend = open_backend(settings)
    view = _reader_view(backend)
    if phase == "switched":
        assert view[0] == 2 and view != old
    else:
        assert view == old
    _assert_consistent(backend)
    report = recluster(settings, backend)
    assert report.run_id == view[0] + 1
    _assert_consistent(backend)
    stale = Filter(must={"kind": ["topic", "theme"]}, must_not={"run_id": report.run_id})
    assert backend.collection("topics").count(stale) == 0
    assert len(catalog.list_topics(backend)) == 5
    backend.close()


@pytest.mark.slow
def test_thirty_runs_with_churn_keep_the_topics_collection_bounded() -> None:
    """One topic ends and one begins every run. Only the live topics carry vectors; an ended topic
    is written once, and each run adds the same few small records (its run, lineage, what ended)."""
    settings = _settings()
    backend = open_backend(settings)
    items, topics = backend.collection("items"), backend.collection("topics")
    with_vectors = Filter(must={"kind": ["topic", "theme"]})
    growth = []
    for run in range(30):
        synthetic.store_corpus(items, synthetic.churn_corpus(run), prune=True)
        before = topics.count() if topics.exists() else 0
        report = recluster(settings, backend)
        assert report.n_topics == 6
        assert topics.count(with_vectors) == 6 + report.n_themes
        growth.append(topics.count() - before)
    # Each run: its run record, the lineage events of both levels (7 + 7), an ended topic and theme.
    assert set(growth[2:]) == {growth[2]} and growth[2] <= 20
    vanished = catalog.list_topics(backend, include_vanished=True)
    ended = [t for t in vanished if t.status == "vanished"]
    assert len(ended) == 29 and all(not t.centroids for t in ended)
    assert sorted(t.run_id for t in ended) == list(range(2, 31))  # each written by the run it ended in
    first = catalog.get_topic(backend, min(ended, key=lambda t: t.run_id).topic_id)
    assert (first.status, first.run_id, first.change) == ("vanished", 2, -40)
    assert catalog.lineage(backend, first.topic_id)[-1].kind == "vanished"
    ended_themes = [t for t in catalog.list_themes(backend, include_vanished=True) if t.status == "vanished"]
    assert ended_themes and all(not t.centroids and t.run_id >= 2 for t in ended_themes)
    assert catalog.get_theme(backend, ended_themes[0].theme_id).status == "vanished"
    backend.close()


def test_an_old_store_with_vanished_topics_in_every_run_is_compacted_by_the_next_run() -> None:
    settings = _settings()
    backend = open_backend(settings)
    items, topics = backend.collection("items"), backend.collection("topics")
    synthetic.store_corpus(items, synthetic.churn_corpus(0), prune=True)
    recluster(settings, backend)
    run = catalog.current_run(backend)
    legacy = replace(catalog.list_topics(backend)[0], topic_id=99, status="vanished", change=0)
    topics.upsert([catalog.topic_point(legacy)])  # how earlier versions carried a vanished topic
    recluster(settings, backend)
    assert topics.count(Filter(must={"kind": "topic", "status": "vanished"})) == 0
    kept = catalog.get_topic(backend, 99)
    assert (kept.status, kept.run_id, kept.change, kept.centroids) == ("vanished", run.run_id + 1, 0, {})
    backend.close()
