"""Curation (label, hide, merge and their undo): stored with the topics, shown by every reader, carried
through reclusters with drift, on every store backend."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from evaluation import synthetic
from indexer.config import load_settings
from indexer.index import Index
from indexer.store import open_backend
from indexer.store.base import Backend
from topics import catalog, curation
from topics.query import browse
from topics.query.search import ItemHit, SearchResult, TopicHit, _curated
from topics.recluster import recluster

SMALL = {"k": 4, "size": 60}


def _settings():
    return load_settings(store={"backend": "memory"})


def _majority(backend: Backend, corpus: synthetic.Corpus) -> dict[int, int]:
    """Each truth label's majority public topic (raw, before curation) under the current run."""
    topic_of = synthetic.assigned_topics(backend)
    votes: dict[int, Counter] = {}
    for item_id, label in zip(corpus.ids, corpus.labels, strict=True):
        votes.setdefault(int(label), Counter())[topic_of[item_id]] += 1
    return {label: c.most_common(1)[0][0] for label, c in votes.items()}


def _steady_backend() -> tuple[Backend, synthetic.Corpus, dict[int, int]]:
    settings = _settings()
    backend = open_backend(settings)
    corpus = synthetic.drift_scenario("steady", **SMALL, seed=3).runs[0]
    synthetic.store_corpus(backend.collection("items"), corpus)
    recluster(settings, backend)
    return backend, corpus, _majority(backend, corpus)


def test_label_hide_merge_show_in_list_and_show_and_each_undo_restores() -> None:
    backend, _corpus, topic = _steady_backend()
    index = Index(_settings(), backend=backend)
    before = browse.list_topics(index, sort="id")
    sizes = {t["id"]: t["size"] for t in before}
    curation.set_label(backend, topic[0], "  tractor\nprotest ")
    curation.hide(backend, topic[1])
    curation.merge(backend, [topic[2], topic[3]])
    listed = {t["id"]: t for t in browse.list_topics(index, sort="id")}
    assert set(listed) == {topic[0], topic[2]}  # hidden 1 and merged-away 3 are left out
    assert listed[topic[0]]["label"] == "tractor protest"
    assert listed[topic[0]]["curation"] == {"label": True, "hidden": False}
    assert listed[topic[2]]["size"] == sizes[topic[2]] + sizes[topic[3]]
    assert listed[topic[2]]["curation"]["merged"] == [topic[3]]
    every = {t["id"]: t for t in browse.list_topics(index, include_hidden=True)}
    assert every[topic[1]]["curation"]["hidden"] and every[topic[3]]["curation"]["merged_into"] == topic[2]
    assert browse.show_topic(index, topic[2])["size"] == sizes[topic[2]] + sizes[topic[3]]
    assert browse.show_topic(index, topic[0])["label"] == "tractor protest"

    curation.unset_label(backend, topic[0])
    curation.unhide(backend, topic[1])
    curation.unmerge(backend, topic[2])
    assert browse.list_topics(index, sort="id") == before
    backend.close()


def test_verbs_refuse_unknown_topics_bad_labels_and_missing_undo() -> None:
    backend, _corpus, topic = _steady_backend()
    with pytest.raises(LookupError, match="no topic 99"):
        curation.set_label(backend, 99, "x")
    with pytest.raises(ValueError, match="needs some text"):
        curation.set_label(backend, topic[0], "   ")
    with pytest.raises(ValueError, match="at most 200"):
        curation.set_label(backend, topic[0], "x" * 201)
    with pytest.raises(ValueError, match="two different"):
        curation.merge(backend, [topic[0], topic[0]])
    with pytest.raises(LookupError, match="no pinned label"):
        curation.unset_label(backend, topic[0])
    with pytest.raises(LookupError, match="not part of a merge"):
        curation.unmerge(backend, topic[1])
    assert curation.load(backend).is_empty()  # nothing was written by the refused commands
    backend.close()


def test_merges_join_groups_and_a_member_can_leave() -> None:
    backend, _corpus, t = _steady_backend()
    curation.merge(backend, [t[0], t[1]])
    curation.merge(backend, [t[2], t[1]])  # t1 is in t0's group: the groups join under t2
    assert dict(curation.load(backend).merges) == {t[2]: tuple(sorted([t[0], t[1]]))}
    curation.unmerge(backend, t[0])
    assert dict(curation.load(backend).merges) == {t[2]: (t[1],)}
    backend.close()


def test_search_hits_follow_merges_labels_and_hide() -> None:
    backend, _corpus, t = _steady_backend()
    index = Index(_settings(), backend=backend)
    curation.merge(backend, [t[0], t[1]])
    curation.set_label(backend, t[0], "joined")
    curation.hide(backend, t[2])

    def item(topic: int, score: float) -> ItemHit:
        return ItemHit(f"i{topic}-{score}", score, topic, None, None, None, None)

    hits = [TopicHit(x, None, 1, 0.1, 0.5, [item(x, 0.1 * (x + 1))]) for x in (t[1], t[0], t[2], t[3])]
    result = _curated(SearchResult("q", hits, []), index, catalog.current_run(backend))
    assert [h.topic_id for h in result.topics] == [t[0], t[3]]
    joined = result.topics[0]
    assert joined.label == "joined" and {i.topic for i in joined.items} == {t[0]}
    assert len(joined.items) == 2 and joined.items[0].score >= joined.items[1].score
    backend.close()


def _growth(corpus: synthetic.Corpus, run: int, rng: np.random.Generator) -> synthetic.Corpus:
    """A few new items near existing ones (a steady stream between drifts)."""
    rows = rng.choice(len(corpus), size=len(corpus) // 20, replace=False)
    vectors = synthetic.normalise(
        corpus.vectors[rows] + 0.02 * rng.standard_normal(corpus.vectors[rows].shape)
    )
    ids = [synthetic.item_id(i, namespace=f"growth-{run}") for i in range(len(rows))]
    return synthetic.Corpus(ids, vectors.astype(np.float32), corpus.labels[rows])


@pytest.mark.slow
@pytest.mark.parametrize("name", synthetic.SCENARIOS)
def test_curation_survives_ten_reclusters_with_drift(name: str) -> None:
    """Pin a label on every topic, merge two, hide one; drift at run 5; 10 runs in all."""
    settings = _settings()
    backend = open_backend(settings)
    items = backend.collection("items")
    scenario = synthetic.drift_scenario(name, **SMALL, seed=11)
    rng = np.random.default_rng(0)
    synthetic.store_corpus(items, scenario.runs[0])
    recluster(settings, backend)
    first = _majority(backend, scenario.runs[0])
    pinned = {first[k]: f"story {k}" for k in range(4)}
    for topic_id, text in pinned.items():
        curation.set_label(backend, topic_id, text)
    curation.merge(backend, [first[2], first[3]])
    curation.hide(backend, first[1])
    corpus = scenario.runs[0]
    for run in range(2, 11):
        if run == 5:
            corpus = scenario.runs[1]
            synthetic.store_corpus(items, corpus, prune=True)
        synthetic.store_corpus(items, _growth(corpus, run, rng))
        recluster(settings, backend)
        _assert_curation_held(backend, pinned, first)
    backend.close()


def _assert_curation_held(backend: Backend, pinned: dict[int, str], first: dict[int, int]) -> None:
    run = catalog.current_run(backend)
    cur = curation.load(backend, run)
    topics = {t.topic_id: t for t in curation.curate(catalog.list_topics(backend, run=run), cur)}
    for topic_id, text in pinned.items():
        if topic_id in topics:  # a surviving curated topic keeps its label
            assert cur.labels[topic_id] == text and topics[topic_id].label == text
    if first[2] in topics and first[3] in topics:  # both halves live: still shown as one
        assert cur.target(first[3]) == cur.target(first[2]) == first[2]
        assert not curation.shown(topics[first[3]])
    if first[1] in topics:
        assert first[1] in cur.hidden and not curation.shown(topics[first[1]])


def test_follow_moves_labels_through_split_merge_and_vanish_and_leaves_notes() -> None:
    def topic(tid: int, size: int, status: str = "active") -> catalog.Topic:
        at = np.datetime64("2026-01-01").astype(object)
        return catalog.Topic(tid, size, status, 2, at, at)  # type: ignore[arg-type]

    events = [
        catalog.LineageEvent(2, "split", (1,), (5, 6), None),  # 1 ended: its pieces are 5 and 6
        catalog.LineageEvent(2, "merged", (2, 3), (2,), None),  # 3 merged into 2
        catalog.LineageEvent(2, "vanished", (4,), (), None),
    ]
    new = [topic(2, 50), topic(5, 10), topic(6, 30), topic(4, 0, "vanished"), topic(7, 9)]
    before = curation.Curation(
        labels={1: "one", 3: "three", 4: "four"}, hidden=frozenset({1}), merges={7: (3,)}
    )
    after = curation.follow(before, events, new, 2)
    assert dict(after.labels) == {6: "one", 2: "three", 4: "four"}  # largest piece; merged topic; kept
    assert after.hidden == {5, 6}  # every piece of a hidden topic stays hidden
    assert dict(after.merges) == {7: (2,)}  # the group takes the topic its member merged into
    texts = [(n["topic_id"], n["event"], n["text"]) for n in after.notes]
    assert (1, "split", "label 'one' moved to 6") in texts
    assert (1, "split", "hidden: 5, 6") in texts
    assert (4, "vanished", "label 'four' stays on 4") in texts


@pytest.mark.parametrize("backend_kind", ["edge", "memory", "local"])
def test_curation_is_stored_and_carried_on_every_backend(make_backend, backend_kind: str) -> None:
    backend = make_backend()
    settings = _settings()
    corpus = synthetic.drift_scenario("steady", **SMALL, seed=3).runs[0]
    synthetic.store_corpus(backend.collection("items"), corpus)
    recluster(settings, backend)
    topic = _majority(backend, corpus)
    curation.set_label(backend, topic[0], "café ünïcode")
    curation.merge(backend, [topic[1], topic[2]])
    recluster(settings, backend)
    if backend_kind != "memory":  # persistent stores: a reopened store still has it
        backend.close()
        backend = make_backend()
    cur = curation.load(backend)
    assert catalog.current_run(backend).run_id == 2
    assert cur.labels[topic[0]] == "café ünïcode" and dict(cur.merges) == {topic[1]: (topic[2],)}


def test_verbs_work_through_the_owner_while_serve_holds_the_store(tmp_path) -> None:
    from indexer.store.shared import RemoteBackend, StoreServer, open_backend_or_owner

    settings = load_settings(data_dir=tmp_path / "data")  # the embedded store, locked by its owner
    settings.data_dir.mkdir(parents=True)
    owner = open_backend(settings)
    corpus = synthetic.drift_scenario("steady", **SMALL, seed=3).runs[0]
    synthetic.store_corpus(owner.collection("items"), corpus)
    recluster(settings, owner)
    topic = _majority(owner, corpus)
    server = StoreServer(owner, settings.data_dir)
    try:
        remote = open_backend_or_owner(settings)
        assert isinstance(remote, RemoteBackend)
        curation.set_label(remote, topic[0], "through the owner")
        curation.merge(remote, [topic[1], topic[2]])
        remote.close()
        recluster(settings, owner)  # the service's next run carries what the other process pinned
        cur = curation.load(owner)
        assert cur.labels == {topic[0]: "through the owner"} and cur.target(topic[2]) == topic[1]
    finally:
        server.close()
        owner.close()
