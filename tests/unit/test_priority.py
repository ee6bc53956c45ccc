"""Searches before background jobs: a job's yield point waits while a search runs, and only then."""

from __future__ import annotations

import threading

from topics.priority import Priority
from topics.query.routing import PROBE_ITEMS, PROBE_TOPICS, probed_topics
from topics.query.search import TopicHit


def test_a_yield_point_without_a_search_returns_at_once() -> None:
    gate = Priority()
    assert gate.yield_to_searches(max_wait_s=30) == 0.0
    assert gate.waits == 0 and gate.waited_s == 0.0


def test_a_job_waits_until_the_search_ends() -> None:
    gate = Priority()
    searching, job_waiting, job_done = threading.Event(), threading.Event(), threading.Event()

    def job() -> None:
        assert searching.wait(30)
        job_waiting.set()
        gate.yield_to_searches(max_wait_s=30)
        job_done.set()

    worker = threading.Thread(target=job)
    worker.start()
    with gate.serving():
        searching.set()
        assert job_waiting.wait(30)
        assert not job_done.wait(0.2), "the job went on while a search ran"
    worker.join(30)
    assert job_done.is_set() and gate.waits == 1


def test_a_wait_is_bounded_so_searches_never_stop_a_job() -> None:
    gate = Priority()
    with gate.serving():
        waited = gate.yield_to_searches(max_wait_s=0.05)
        waited += gate.yield_to_searches(max_wait_s=0.05)
    assert 0.09 < waited < 30 and gate.waited_s == waited  # the seconds add up across waits


def _hit(topic_id: int, size: int) -> TopicHit:
    return TopicHit(topic_id=topic_id, label=None, size=size, score=0.0, similarity=0.0)


def test_routed_search_probes_nearest_topics_up_to_an_item_budget() -> None:
    big = [_hit(i, PROBE_ITEMS // 2) for i in range(5)]
    assert probed_topics(big) == [0, 1]  # two of them hold the budget
    huge = [_hit(7, PROBE_ITEMS * 3), _hit(8, 10)]
    assert probed_topics(huge) == [7]  # the nearest topic is always probed, however big
    small = [_hit(i, 10) for i in range(PROBE_TOPICS + 5)]
    assert probed_topics(small) == list(range(PROBE_TOPICS))  # and never more than PROBE_TOPICS
    assert probed_topics([]) == []
