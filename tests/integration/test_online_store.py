"""Online assignment against real stores: pending items, emerging topic records, the next recluster,
and restarts in the middle of a stream.

Every `assign_pending` call is a restart: it loads the state saved by the previous call. The restart
test also breaks that file mid-stream (corrupt: rebuilt from the store by replay) and loses one save
(a crash after the items were written: the store is ahead, so the state is rebuilt), and expects
exactly the assignments of an undisturbed stream.

Backends: qdrant-client's memory mode and Qdrant Edge (flags are 0/1 ints: qdrant-edge-py 0.9.0 cannot
match bools). The local mode on disk is left out: it takes ~20 ms per point write, minutes for this stream.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evaluation import synthetic as syn
from indexer.config import Settings, load_settings
from indexer.store import EdgeBackend, QdrantBackend
from indexer.store.base import Backend, Filter
from topics import catalog
from topics.ids import OUTLIER
from topics.online.pending import assign_pending, state_path
from topics.recluster import recluster

K, SIZE, NOISE = 4, 300, 0.5
NEWCOMER = K
BACKGROUND = K + 1
CHUNKS = 6


def _settings(data_dir: Path) -> Settings:
    return load_settings(data_dir=data_dir, store={"backend": "memory"})


def _backend(kind: str, root: Path) -> Backend:
    return EdgeBackend(root / "store") if kind == "edge" else QdrantBackend.memory(prefix="online")


def _world(seed: int = 7) -> tuple[syn.Corpus, syn.Corpus]:
    """The run's corpus, and a stream after it: known topics, 5% noise, 4% of a new story."""
    rng = np.random.default_rng(seed)
    centres = syn.random_centres(K + 1, 512, rng)
    clusters = [syn.Cluster(c, SIZE, NOISE) for c in centres[:K]]
    first = syn.sample_mixture(clusters, rng)
    n = 1_200
    labels = rng.choice(K + 2, size=n, p=[0.91 / K] * K + [0.04, 0.05])
    vectors = np.empty((n, 512), np.float32)
    for label, cluster in enumerate([*clusters, syn.Cluster(centres[K], 1, NOISE)]):
        rows = labels == label
        vectors[rows] = syn.sample_cluster(cluster, rng, int(rows.sum()))
    rows = labels == BACKGROUND
    vectors[rows] = syn.normalise(rng.standard_normal((int(rows.sum()), 512)))
    stream = syn.Corpus([syn.item_id(i, "stream") for i in range(n)], vectors, labels)
    return first, stream


def _store_chunk(backend: Backend, stream: syn.Corpus, chunk: int) -> None:
    """Ingest one chunk of the stream (pending), with captions that name the new story."""
    part = slice(chunk * len(stream) // CHUNKS, (chunk + 1) * len(stream) // CHUNKS)
    corpus = syn.Corpus(stream.ids[part], stream.vectors[part], stream.labels[part])
    items = backend.collection("items")
    syn.store_corpus(items, corpus, seed=chunk)
    captions = {
        i: {"caption": "tractor protest blocks the ring road" if label == NEWCOMER else f"post {i[:6]}"}
        for i, label in zip(corpus.ids, corpus.labels, strict=True)
    }
    items.set_payloads(captions)


def _started(backend: Backend, settings: Settings) -> tuple[syn.Corpus, catalog.Run]:
    first, stream = _world()
    syn.store_corpus(backend.collection("items"), first)
    recluster(settings, backend)
    run = catalog.current_run(backend)
    assert run is not None
    return stream, run


def _assignments(backend: Backend, ids: list[str]) -> dict[str, tuple[int, float, str]]:
    run = catalog.current_run(backend)
    out = {}
    for point in backend.collection("items").retrieve(ids):
        found = catalog.read_assignment(point.payload, run)
        assert found is not None, f"{point.id} has no topic under run {run.run_id}"
        out[point.id] = (found.topic, found.score, found.assigned)
    return out


@pytest.fixture(params=["memory", "edge"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_pending_items_get_topics_and_a_new_story_becomes_a_topic(kind: str, tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    backend = _backend(kind, tmp_path)
    stream, run = _started(backend, settings)
    known = {t.topic_id for t in catalog.list_topics(backend)}
    reports = []
    for chunk in range(CHUNKS):
        _store_chunk(backend, stream, chunk)
        reports.append(assign_pending(backend, settings))
    assert backend.collection("items").count(Filter(must={"pending": 1})) == 0
    assert reports[0].state == "rebuilt" and all(r.state == "saved" for r in reports[1:])
    got = _assignments(backend, stream.ids)
    assert {how for _t, _s, how in got.values()} == {"online"}
    topics = np.array([got[i][0] for i in stream.ids])
    for label in range(K):  # each known story lands in one known topic, the rest are outliers
        votes = Counter(topics[stream.labels == label].tolist())
        topic, count = votes.most_common(1)[0]
        total = (stream.labels == label).sum()
        # the job's threshold accepts 95% of the run's members: about 5% of the same story fall below it
        assert topic in known and count >= 0.88 * total
        assert count + votes[OUTLIER] == total
    assert (topics[stream.labels == BACKGROUND] == OUTLIER).mean() >= 0.95
    born = [t for r in reports for t in r.emerged]
    assert len(born) == 1 and born[0] >= run.next_topic_id
    newcomer = topics[stream.labels == NEWCOMER]
    assert (newcomer == born[0]).mean() >= 0.8
    record = catalog.get_topic(backend, born[0])
    assert record is not None and record.status == "emerging" and record.run_id == run.run_id
    assert "tractor" in record.words and set(record.exemplars) <= set(stream.ids)
    assert record.threshold is not None and "fused" in record.centroids
    backend.close()


def test_an_emerging_topic_keeps_its_id_at_the_next_recluster(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    backend = _backend("memory", tmp_path)
    stream, run = _started(backend, settings)
    for chunk in range(CHUNKS):
        _store_chunk(backend, stream, chunk)
        report = assign_pending(backend, settings)
    born = catalog.list_topics(backend)[-1]
    assert born.status == "emerging" and born.extra.get("online")
    recluster(settings, backend)
    after = catalog.get_topic(backend, born.topic_id)
    assert after is not None and after.status == "active" and after.run_id == run.run_id + 1
    got = _assignments(backend, stream.ids)
    newcomer = np.array([got[i][0] for i in stream.ids])[stream.labels == NEWCOMER]
    assert (newcomer == born.topic_id).mean() >= 0.9
    assert {how for _t, _s, how in got.values()} == {"recluster"}
    report = assign_pending(backend, settings)
    assert report.state == "reset" and report.assigned == 0
    backend.close()


def _run_stream(root: Path, restart: str | None) -> dict[str, tuple[int, float, str]]:
    """The whole stream in chunks; with `restart`, the state file is broken at half-way."""
    settings = _settings(root / "data")
    backend = _backend("memory", root)
    stream, _run = _started(backend, settings)
    path = state_path(settings)
    middle = CHUNKS // 2
    states = []
    for chunk in range(CHUNKS):
        if chunk == middle and restart == "corrupt":
            path.write_bytes(b"not a state file")
        if chunk == middle and restart == "lost_save":
            shutil.copy(path, root / "before.npz")
        if chunk == middle + 1 and restart == "lost_save":
            shutil.copy(root / "before.npz", path)  # as if the process died before saving chunk `middle`
        _store_chunk(backend, stream, chunk)
        states.append(assign_pending(backend, settings).state)
    result = _assignments(backend, stream.ids)
    backend.close()
    expected = ["rebuilt"] + ["saved"] * (CHUNKS - 1)
    if restart == "corrupt":
        expected[middle] = "rebuilt"
    if restart == "lost_save":
        expected[middle + 1] = "rebuilt"
    assert states == expected
    return result


@pytest.mark.slow
def test_a_restart_mid_stream_changes_nothing(tmp_path: Path) -> None:
    reference = _run_stream(tmp_path / "reference", None)
    assert len({t for t, _s, _h in reference.values()}) >= K + 1  # the new story was born
    for restart in ("corrupt", "lost_save"):
        assert _run_stream(tmp_path / restart, restart) == reference, restart
