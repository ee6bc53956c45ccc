"""The service's scheduling rules: missed runs, one job at a time, feed names, the serve lock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.daemon import FeedSpec
from tests.helpers import use_tiny_clip
from topics.service.serve import Service, ServiceRunning, missed_run, serve_lock


def test_a_nightly_run_missed_while_down_is_due() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert missed_run("0 3 * * *", now - timedelta(days=2), now)
    assert not missed_run("0 3 * * *", datetime(2026, 11, 22, 3, 5, tzinfo=UTC), now)
    assert not missed_run("0 3 * * *", None, now)


def test_feed_specs() -> None:
    assert FeedSpec.parse("-") == FeedSpec("stdin", "-")
    assert FeedSpec.parse("https://example.org/feed.json").kind == "http"
    assert FeedSpec.parse("posts.jsonl").kind == "jsonl"
    with pytest.raises(ValueError, match="only http"):
        FeedSpec.parse("ftp://example.org/feed")


def test_a_second_serve_lock_is_refused_naming_the_pid(tmp_path: Path) -> None:
    lock = serve_lock(tmp_path)
    try:
        with pytest.raises(ServiceRunning, match=r"already running .* \(pid \d+\)"):
            serve_lock(tmp_path)
    finally:
        lock.release()
    serve_lock(tmp_path).release()  # free again once released


class Jobs:
    """Jobs that record how many run at once and hold until `release` is set."""

    def __init__(self) -> None:
        self.active, self.peak, self.calls = 0, 0, []
        self.running = threading.Event()  # a job has started
        self.release = threading.Event()  # running jobs may finish

    def job(self, name: str):
        def run(index):
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.calls.append(name)
            self.running.set()
            assert self.release.wait(30), "the test never released the job"
            self.active -= 1
            return {"job": name}

        return run


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    use_tiny_clip(monkeypatch)
    jobs = Jobs()
    svc = Service(
        load_settings(store={"backend": "memory"}),
        [],
        [],
        recluster=jobs.job("recluster"),
        assign_online=jobs.job("online"),
    )
    yield svc, jobs
    jobs.release.set()
    svc.close()


def test_jobs_never_run_at_the_same_time(service) -> None:
    svc, jobs = service
    threads = [threading.Thread(target=svc.run_recluster) for _ in range(3)]
    for t in threads:
        t.start()
    assert jobs.running.wait(30), "no recluster started"
    assert svc.run_online() is None  # skipped while a recluster runs
    jobs.release.set()
    for t in threads:
        t.join()
    assert jobs.peak == 1 and jobs.calls == ["recluster"] * 3
    assert svc.run_online() == {"job": "online"}


def test_status_reports_the_service(service) -> None:
    svc, _ = service
    info = svc.status()
    assert info["pid"] > 0 and info["queue_depth"] == 0 and info["last_error"] is None
    assert set(info) >= {"uptime_s", "items_per_s", "next_recluster", "watching", "feeds"}


@pytest.mark.parametrize("cron", ["off", "none", "", "OFF "])
def test_cron_off_schedules_no_recluster_but_keeps_online_assignment(
    cron: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_tiny_clip(monkeypatch)
    settings = load_settings(store={"backend": "memory"}, cluster={"cron": cron})
    assert not settings.cluster.scheduled
    svc = Service(settings, [], [], recluster=lambda index: {}, assign_online=lambda index: {})
    try:
        svc._schedule()
        assert [job.id for job in svc.scheduler.get_jobs()] == ["online"]
        assert svc.status()["next_recluster"] is None
        assert svc.run_recluster() == {}  # `topics recluster` still works
    finally:
        svc.close()


def test_the_default_cron_schedules_the_nightly_recluster(service) -> None:
    svc, _ = service
    assert svc.settings.cluster.scheduled
    svc._schedule()
    assert {job.id for job in svc.scheduler.get_jobs()} == {"recluster", "online"}
    assert svc.status()["next_recluster"].endswith("03:00:00+00:00")
