"""Clock jumps: the service's schedule driven by a fake wall clock, one scheduler pass at a time.

The scheduler is apscheduler's own, with the service's jobs and options, but it never starts a
thread: each `_tick` sets the fake clock and runs one `_process_jobs` pass, whose due jobs run in the
calling thread (apscheduler's debug executor). No test sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.executors.debug import DebugExecutor
from apscheduler.schedulers.base import BaseScheduler

import topics.service.serve as service_module
from indexer.config import load_settings
from tests.helpers import use_tiny_clip
from topics import catalog
from topics.catalog import Run
from topics.service.serve import Service

START = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def datetime(self) -> type[datetime]:
        clock = self

        class Frozen(datetime):
            @classmethod
            def now(cls, tz=None):  # type: ignore[override]
                return clock.now.astimezone(tz) if tz else clock.now.replace(tzinfo=None)

        return Frozen


class ManualScheduler(BaseScheduler):
    """apscheduler's scheduling logic without its thread: jobs are processed only when told."""

    def wakeup(self) -> None:
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(START)
    frozen = fake.datetime()
    for module in ("schedulers.base", "executors.base", "triggers.date", "triggers.interval"):
        monkeypatch.setattr(f"apscheduler.{module}.datetime", frozen)
    monkeypatch.setattr(service_module, "utc_now", lambda: fake.now)
    return fake


@pytest.fixture
def service(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Service, list]]:
    """A service whose recluster only records the fake time and publishes a run finished then."""
    use_tiny_clip(monkeypatch)
    runs: list[datetime] = []
    online: list[datetime] = []
    finished = [START - timedelta(days=3)]  # the last run before the service started
    monkeypatch.setattr(catalog, "current_run", lambda backend: _run(len(runs), finished[-1]))

    def recluster(index) -> dict:
        runs.append(clock.now)
        finished.append(clock.now + timedelta(minutes=5))
        return {}

    svc = Service(
        load_settings(store={"backend": "memory"}),
        [],
        [],
        recluster=recluster,
        assign_online=lambda index: online.append(clock.now),
    )
    svc.scheduler = ManualScheduler(timezone=UTC, executors={"default": DebugExecutor()})
    yield svc, runs, online
    svc.close()


def _run(run_id: int, finished: datetime) -> Run:
    return Run(run_id, finished - timedelta(minutes=5), finished, 0, 0, 0, 0, "fused")


def _tick(svc: Service, clock: FakeClock, at: datetime) -> None:
    clock.now = at
    svc.scheduler._process_jobs()


def test_a_nightly_run_missed_during_a_suspend_runs_once_on_resume(service, clock: FakeClock) -> None:
    svc, runs, online = service
    svc._schedule()
    _tick(svc, clock, START)
    assert runs == [START]  # missed while the service was down: run once at start
    _tick(svc, clock, START + timedelta(minutes=1))
    assert len(runs) == 1 and len(online) == 1
    resumed = START + timedelta(days=3, hours=2)  # suspended over three nightly fire times
    _tick(svc, clock, resumed)
    assert runs == [START, resumed]
    assert len(online) == 2  # thousands of missed 10 s intervals: one pass
    _tick(svc, clock, resumed + timedelta(seconds=1))
    assert len(runs) == 2
    next_night = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    _tick(svc, clock, next_night)
    assert runs == [START, resumed, next_night]


def test_a_clock_stepped_back_does_not_repeat_a_run(service, clock: FakeClock) -> None:
    svc, runs, _ = service
    svc._schedule()
    _tick(svc, clock, START)
    night = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)
    _tick(svc, clock, night)
    _tick(svc, clock, night - timedelta(hours=2))  # NTP steps the clock back over the fire time
    _tick(svc, clock, night + timedelta(minutes=1))
    assert runs == [START, night]


def test_a_scheduled_run_is_skipped_when_a_run_finished_after_its_fire_time(service, clock) -> None:
    """A start-up catch-up run that ends after 03:00 answers that night's fire time too."""
    svc, runs, _ = service
    clock.now = datetime(2026, 11, 21, 2, 58, tzinfo=UTC)
    svc._schedule()
    _tick(svc, clock, clock.now)  # the catch-up run: finishes at 03:03
    _tick(svc, clock, datetime(2026, 11, 21, 3, 4, tzinfo=UTC))  # 03:00 fire time, seen late
    assert runs == [datetime(2026, 11, 21, 2, 58, tzinfo=UTC)]
