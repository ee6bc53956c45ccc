"""Online updates on synthetic streams: assignment, bounded drift, emerging topics, restart mid-stream."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluation import synthetic as syn
from tests.helpers import ROOT
from topics.online import (
    OUTLIER,
    EmergingDetector,
    EmergingParams,
    OnlineAssigner,
    OnlineState,
    OnlineStateError,
)

K = 6
NOISE = 0.5
MIN_SIZE = 20
NEW = K  # truth label of the topic injected into the stream
BACKGROUND = K + 1  # truth label of uniform noise


@dataclass(frozen=True)
class World:
    """The last run's topics (ids 10.., as after earlier runs) and a stream drawn around them."""

    clusters: list[syn.Cluster]
    newcomer: syn.Cluster
    ids: list[int]
    thresholds: dict[int, float]
    sizes: dict[int, int]

    @property
    def centroids(self) -> dict[int, np.ndarray]:
        return {t: c.centre.astype(np.float32) for t, c in zip(self.ids, self.clusters, strict=True)}

    def state(self, **kw: object) -> OnlineState:
        params = EmergingParams(min_size=MIN_SIZE, coherence=float(np.median(list(self.thresholds.values()))))
        kw.setdefault("emerging", params)
        return OnlineState.from_topics(
            self.centroids, self.thresholds, self.sizes, run_id=3, next_topic_id=max(self.ids) + 1, **kw
        )

    def stream(self, n: int, *, new: float = 0.0, background: float = 0.05, seed: int = 1) -> syn.Corpus:
        """`n` items: existing topics evenly, `new` share of the newcomer, `background` uniform noise."""
        rng = np.random.default_rng(seed)
        shares = [(1.0 - new - background) / K] * K + [new, background]
        labels = rng.choice(K + 2, size=n, p=shares)
        vectors = np.empty((n, 512), np.float32)
        for label, cluster in enumerate([*self.clusters, self.newcomer]):
            rows = labels == label
            vectors[rows] = syn.sample_cluster(cluster, rng, int(rows.sum()))
        rows = labels == BACKGROUND
        vectors[rows] = syn.normalise(rng.standard_normal((int(rows.sum()), 512)))
        return syn.Corpus([syn.item_id(i, f"s{seed}") for i in range(n)], vectors, labels)


@pytest.fixture(scope="module")
def world() -> World:
    rng = np.random.default_rng(0)
    centres = syn.random_centres(K + 1, 512, rng)
    clusters = [syn.Cluster(c, 300, NOISE) for c in centres[:K]]
    ids = list(range(10, 10 + K))
    thresholds = {}
    for topic, cluster in zip(ids, clusters, strict=True):
        members = syn.sample_cluster(cluster, rng)
        thresholds[topic] = float(np.quantile(members @ cluster.centre.astype(np.float32), 0.02))
    return World(clusters, syn.Cluster(centres[K], 1, NOISE), ids, thresholds, dict.fromkeys(ids, 300))


def run(
    state: OnlineState, corpus: syn.Corpus, batch: int = 250, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Process the corpus from `start` in batches; final topics/scores per item (founders rewritten)."""
    topics = np.full(len(corpus), -2, np.int64)
    scores = np.zeros(len(corpus), np.float32)
    where = {item: i for i, item in enumerate(corpus.ids)}
    for s in range(start, len(corpus), batch):
        result = state.process(corpus.ids[s : s + batch], corpus.vectors[s : s + batch])
        for item, (topic, score) in result.assignments().items():
            topics[where[item]], scores[where[item]] = topic, score
    return topics, scores


# ---- assignment ----


def test_items_join_their_topic_and_noise_stays_out(world: World) -> None:
    corpus = world.stream(3_000)
    topics, scores = world.state(detect=False).assigner.assign(corpus.vectors)
    truth = corpus.labels
    known = truth < K
    expected = np.asarray(world.ids)[truth[known]]
    assert (topics[known] == expected).mean() >= 0.95
    assert (topics[truth == BACKGROUND] == OUTLIER).all()
    sims = corpus.vectors @ np.stack(list(world.centroids.values())).T
    np.testing.assert_allclose(scores, sims.max(axis=1), atol=1e-5)


def test_each_topic_has_its_own_threshold(world: World) -> None:
    a, b = world.ids[:2]
    centroids = world.centroids
    between = syn.normalise(0.8 * centroids[a] + 0.6 * centroids[b])  # cosine 0.8 to a, 0.6 to b
    loose = OnlineAssigner({a: centroids[a], b: centroids[b]}, {a: 0.7, b: 0.1})
    strict = OnlineAssigner({a: centroids[a], b: centroids[b]}, {a: 0.9, b: 0.1})
    assert loose.assign(between[None])[0].tolist() == [a]
    assert strict.assign(between[None])[0].tolist() == [OUTLIER]


def test_bad_input_is_refused(world: World) -> None:
    assigner = world.state().assigner
    with pytest.raises(ValueError, match="dimension"):
        assigner.assign(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        assigner.assign(np.full((1, 512), np.nan, np.float32))
    with pytest.raises(KeyError, match="unknown topic"):
        assigner.learn(np.ones((1, 512), np.float32), np.array([999]))
    with pytest.raises(ValueError, match="same topics"):
        OnlineAssigner({1: np.ones(4)}, {2: 0.5})
    with pytest.raises(ValueError, match="outlier"):
        OnlineAssigner({-1: np.ones(4)}, {-1: 0.5})
    with pytest.raises(ValueError, match="ids for"):
        world.state().process(["a"], np.ones((2, 512), np.float32))


# ---- drift ----


def test_centroid_follows_its_online_members(world: World) -> None:
    topic = world.ids[0]
    anchor = world.centroids[topic]
    rng = np.random.default_rng(5)
    shifted = syn.Cluster(syn.normalise(anchor + 0.25 * syn.normalise(rng.standard_normal(512))), 1, NOISE)
    members = syn.sample_cluster(shifted, rng, 60)
    assigner = world.state(detect=False).assigner
    assigner.learn(members, np.full(60, topic))
    moved = assigner.centroid(topic)
    assert moved @ shifted.centre > anchor @ shifted.centre + 0.005
    assert abs(np.linalg.norm(moved) - 1.0) < 1e-5
    assert assigner.online_count(topic) == 60
    untouched = world.ids[1]
    np.testing.assert_array_equal(assigner.centroid(untouched), world.centroids[untouched])


def test_drift_is_bounded_and_reset_by_the_next_run(world: World) -> None:
    topic, cap = world.ids[0], 0.5
    anchor = world.centroids[topic]
    rng = np.random.default_rng(6)
    away = syn.normalise(rng.standard_normal(512))
    away = syn.normalise(away - (away @ anchor) * anchor)  # orthogonal to the anchor: the worst direction
    assigner = OnlineAssigner(world.centroids, world.thresholds, world.sizes, drift_cap=cap)
    for _ in range(20):  # 20 × the run's size, all pulling the same way
        assigner.learn(np.tile(away, (300, 1)), np.full(300, topic))
    assert assigner.centroid(topic) @ anchor >= np.cos(np.arctan(cap)) - 1e-5
    fresh = OnlineState.from_topics(
        world.centroids, world.thresholds, world.sizes, run_id=4, next_topic_id=20
    )
    np.testing.assert_array_equal(fresh.assigner.centroid(topic), anchor)


# ---- emerging topics ----


def test_a_new_topic_at_one_percent_is_flagged_within_twice_the_minimum_size(world: World) -> None:
    corpus = world.stream(12_000, new=0.01)
    state = world.state()
    topics, _ = run(state, corpus)
    assert len(state.emerged) == 1
    born = state.emerged[0]
    assert born.topic_id == max(world.ids) + 1
    newcomers = corpus.labels == NEW
    founders = np.isin(corpus.ids, born.members)
    assert newcomers[founders].all(), "founders all come from the injected topic"
    last_founder = int(np.flatnonzero(founders).max())
    arrived = int(newcomers[: last_founder + 1].sum())
    assert MIN_SIZE <= arrived <= 2 * MIN_SIZE
    later = newcomers.copy()
    later[: last_founder + 1] = False
    assert (topics[later] == born.topic_id).mean() >= 0.9
    assert (topics[founders] == born.topic_id).all()
    assert born.threshold <= state.detector.params.coherence


def test_noise_alone_creates_no_topic(world: World) -> None:
    corpus = world.stream(6_000, background=0.2, seed=2)
    state = world.state()
    topics, _ = run(state, corpus)
    assert state.emerged == []
    assert (topics[corpus.labels == BACKGROUND] == OUTLIER).all()
    cap = state.detector.params.member_cap
    assert state.detector.n_tracked <= state.detector.n_micro_clusters * cap


def test_a_dense_group_inside_a_known_topic_is_not_a_new_topic(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edge items of a known topic can be dense together; their mean clears that topic, so no duplicate."""
    topic = world.ids[0]
    state = world.state()
    state.assigner._thresholds[:] = 0.97  # every member is an outlier now, but each group is a known topic
    proposed = []
    accept = state._accept
    monkeypatch.setattr(state, "_accept", lambda candidate: proposed.append(candidate) or accept(candidate))
    corpus = world.stream(3_000, background=0.0, seed=3)
    run(state, corpus)
    assert len(proposed) >= K, "the detector proposed the known topics' groups"
    assert state.emerged == []
    assert state.assigner.topic_ids == world.ids
    assert topic in state.assigner


def test_new_ids_are_never_reused(world: World) -> None:
    state = world.state(reserved_ids=[40])
    state.next_topic_id = 50
    corpus = world.stream(12_000, new=0.01)
    run(state, corpus)
    assert [t.topic_id for t in state.emerged] == [40]
    assert state.next_topic_id == 50
    assert state._take_id() == 50 and state._take_id() == 51


# ---- persistence and restart ----


def test_restart_mid_stream_gives_the_same_result(world: World, tmp_path: Path) -> None:
    corpus = world.stream(12_000, new=0.01, seed=4)
    whole = world.state()
    expected_topics, expected_scores = run(whole, corpus)

    first = world.state()
    half = 6_000
    topics_a, scores_a = run(
        first, syn.Corpus(corpus.ids[:half], corpus.vectors[:half], corpus.labels[:half])
    )
    path = tmp_path / "online" / "state.npz"
    first.save(path)
    del first
    resumed = OnlineState.load(path)
    topics_b, scores_b = run(resumed, corpus, start=half)
    topics_b[:half], scores_b[:half] = topics_a, scores_a
    for topic in resumed.emerged:  # founders of a topic born after the restart, from the first half
        members = np.isin(corpus.ids, topic.members)
        topics_b[members] = topic.topic_id
    assert [t.topic_id for t in resumed.emerged] == [t.topic_id for t in whole.emerged]
    np.testing.assert_array_equal(topics_b, expected_topics)
    np.testing.assert_array_equal(scores_b[topics_b != -2], expected_scores[topics_b != -2])
    for t in whole.assigner.topic_ids:
        np.testing.assert_array_equal(resumed.assigner.centroid(t), whole.assigner.centroid(t))
    assert resumed.seq == whole.seq and resumed.batches == whole.batches


def test_state_file_is_written_atomically_and_bad_files_are_refused(world: World, tmp_path: Path) -> None:
    state = world.state()
    run(state, world.stream(1_000))
    path = tmp_path / "state.npz"
    state.save(path)
    state.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.npz"]
    with pytest.raises(OnlineStateError, match="no online state"):
        OnlineState.load(tmp_path / "missing.npz")
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(OnlineStateError, match="unusable"):
        OnlineState.load(broken)


def test_detector_round_trips_river_state(world: World) -> None:
    detector = EmergingDetector(512, EmergingParams(min_size=MIN_SIZE, coherence=0.85))
    corpus = world.stream(2_000, background=0.5)
    for item, vector, feature in zip(
        corpus.ids, corpus.vectors, detector.reduce(corpus.vectors), strict=True
    ):
        detector.feed(item, vector, feature)
    meta, arrays = detector.to_state()
    copy = EmergingDetector.from_state(meta, arrays)
    assert copy.n_micro_clusters == detector.n_micro_clusters > 0
    assert copy.n_tracked == detector.n_tracked
    assert copy.to_state()[0] == meta


# ---- river's private DBSTREAM state, saved by topics/online/emerging.py ----

# What DBSTREAM keeps in the river version pinned in pyproject.toml: the learned state dbstream_state
# saves, the settings the detector passes, and what `_recluster` derives from the rest.
DBSTREAM_LEARNED = {"_micro_clusters", "_time_stamp", "s", "s_t"}
DBSTREAM_SETTINGS = {
    "clustering_threshold",
    "fading_factor",
    "cleanup_interval",
    "intersection_factor",
    "minimum_weight",
}
DBSTREAM_DERIVED = {"_centers", "_clusters", "_n_clusters", "clustering_is_up_to_date"}


def test_river_is_installed_at_the_version_pyproject_pins() -> None:
    """The saved state reaches into DBSTREAM's private attributes: only the pinned version is known."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m[1] for d in deps if (m := re.fullmatch(r"river==([\w.]+)", d.strip()))]
    assert pins == [importlib.metadata.version("river")]


def _learned(detector: EmergingDetector) -> dict[str, Any]:
    stream = detector._stream
    assert set(vars(stream)) - {"last_home"} == DBSTREAM_LEARNED | DBSTREAM_SETTINGS | DBSTREAM_DERIVED, (
        "river's DBSTREAM keeps other state now: review dbstream_state/load_dbstream_state"
    )
    mcs = {k: (mc.center, mc.last_update, mc.weight) for k, mc in stream._micro_clusters.items()}
    return {"mcs": mcs, "time": stream._time_stamp, "s": stream.s, "s_t": stream.s_t}


def test_a_restored_dbstream_goes_on_exactly_as_the_original(world: World) -> None:
    params = EmergingParams(min_size=MIN_SIZE, coherence=0.85, cleanup_every=150)
    original = EmergingDetector(512, params)
    first, then = world.stream(1_000, background=0.5, seed=5), world.stream(1_000, background=0.5, seed=6)
    for item, vector, feature in zip(first.ids, first.vectors, original.reduce(first.vectors), strict=True):
        original.feed(item, vector, feature)
    restored = EmergingDetector.from_state(*original.to_state())
    assert _learned(restored) == _learned(original)
    features = original.reduce(then.vectors)
    for item, vector, feature in zip(then.ids, then.vectors, features, strict=True):
        found = original.feed(item, vector, feature), restored.feed(item, vector, feature)
        assert [c.members if c else None for c in found] == [found[0].members if found[0] else None] * 2
    assert _learned(restored) == _learned(original)
    predicted = [[d._stream.predict_one(x) for x in features[:50]] for d in (original, restored)]
    assert predicted[0] == predicted[1]
