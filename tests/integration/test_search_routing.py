"""Search through the topics on the embedded store: the right items, `status` saying how, and answers
while a recluster rewrites every item's assignment."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import topics.priority as priority
import topics.query.routing as routing
import topics.query.search as search_module
from evaluation import synthetic
from indexer.config import load_settings
from indexer.index import Index
from indexer.store.base import Point
from topics.query.search import search
from topics.query.status import status
from topics.recluster import RunReport, recluster

N_CLUSTERS, SIZE = 8, 40


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An embedded store of 8 separated topics, routed from 100 items on (the default is 50,000)."""
    monkeypatch.setattr(routing, "ROUTE_ABOVE", 100)
    monkeypatch.setattr(routing, "PROBE_TOPICS", 2)
    with Index(load_settings()) as idx:
        yield idx


@pytest.fixture
def corpus(index: Index) -> synthetic.Corpus:
    corpus = synthetic.easy_mixture(k=N_CLUSTERS, n=N_CLUSTERS * SIZE, noise=0.3, seed=3)
    synthetic.store_corpus(index.items, corpus)
    return corpus


def _query_by(monkeypatch: pytest.MonkeyPatch, vector: np.ndarray) -> None:
    """Searches embed nothing: both CLIP views are queried with `vector`."""
    monkeypatch.setattr(search_module, "_queries", lambda *a: {"image": vector, "text": vector})


def _record_item_searches(index: Index, monkeypatch: pytest.MonkeyPatch) -> list:
    """The filters of every items search from now on (a routed search never scans all items)."""
    seen: list = []
    original = index.items.search

    def recording(view, vector, **kw):
        seen.append(kw.get("where"))
        return original(view, vector, **kw)

    monkeypatch.setattr(index.items, "search", recording)
    return seen


def _found(index: Index, limit: int = 5) -> list[str]:
    result = search(index, "query", limit=limit)
    return [h.item_id for t in result.topics for h in t.items] + [h.item_id for h in result.unassigned]


def test_a_routed_search_finds_the_nearest_items_and_new_ones(
    index: Index, corpus: synthetic.Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    recluster(index.settings, index.backend)
    probe = corpus.vectors[7]
    _query_by(monkeypatch, probe)
    searched = _record_item_searches(index, monkeypatch)
    found = _found(index)
    assert searched and all(set(w.must) & {"topic_0", "topic_1", "pending"} for w in searched)
    assert found[0] == corpus.ids[7] or corpus.ids[7] in found[:2]
    same_topic = {i for i, label in zip(corpus.ids, corpus.labels, strict=True) if label == corpus.labels[7]}
    assert set(found) <= same_topic
    fresh = synthetic.item_id(10_000)  # ingested after the run: pending, searched exactly
    index.items.upsert([Point(fresh, {"image": probe, "text": probe}, {"pending": 1})])
    assert fresh in _found(index)


def test_status_says_whether_the_search_index_is_built(index: Index, corpus: synthetic.Corpus) -> None:
    before = status(index)["search_index"]
    assert (before["mode"], before["built"]) == ("exact", False)
    recluster(index.settings, index.backend)
    after = status(index)["search_index"]
    assert (after["mode"], after["built"]) == ("topics", True)


def test_a_small_store_is_searched_exactly(
    index: Index, monkeypatch: pytest.MonkeyPatch, corpus: synthetic.Corpus
) -> None:
    monkeypatch.setattr(routing, "ROUTE_ABOVE", 10_000)
    recluster(index.settings, index.backend)
    info = status(index)["search_index"]
    assert (info["mode"], info["built"]) == ("exact", True)


def test_search_answers_while_a_recluster_rewrites_the_items(
    index: Index, corpus: synthetic.Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    recluster(index.settings, index.backend)
    _query_by(monkeypatch, corpus.vectors[11])
    expected = _found(index)
    mid_run, searched = threading.Event(), threading.Event()

    def on_phase(name: str) -> None:
        if name == "items_batch" and not mid_run.is_set():
            mid_run.set()
            assert searched.wait(60), "the search never ran"

    worker = threading.Thread(
        target=recluster, args=(index.settings, index.backend), kwargs={"on_phase": on_phase}
    )
    worker.start()
    try:
        assert mid_run.wait(60), "the recluster never reached its item writes"
        during = _found(index)
    finally:
        searched.set()
        worker.join(60)
    assert during == expected
    assert _found(index)[0] == expected[0]


def test_a_recluster_waits_while_a_search_runs(
    index: Index, corpus: synthetic.Corpus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one process the engine holds the GIL per call: the job steps aside at its batch boundaries."""
    monkeypatch.setattr(priority, "MAX_WAIT_S", 60.0)
    monkeypatch.setattr(priority, "SEARCHES", gate := priority.Priority())
    phases: list[str] = []
    reports: list[RunReport] = []
    worker = threading.Thread(
        target=lambda: reports.append(recluster(index.settings, index.backend, on_phase=phases.append))
    )
    with gate.serving():
        worker.start()
        for _ in range(600):
            if gate.waits:
                break
            worker.join(0.05)
        assert gate.waits == 1, "the recluster never reached a yield point"
        assert worker.is_alive() and "sampled" not in phases
        time.sleep(0.2)  # the job waits for as long as the search runs, and says so in its report
    worker.join(60)
    assert not worker.is_alive() and "cleaned" in phases
    assert reports[0].waited_s == round(gate.waited_s, 3) and gate.waited_s >= 0.2
