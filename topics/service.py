"""`topics serve`: the ingest daemon, the scheduled jobs, and the store's owner, in one process.

- The service owns the embedded store; other `topics` commands reach it through its control socket
  (`indexer.store.shared`). A second `serve` on the same data dir is refused: `serve.lock` is held.
- apscheduler runs the recluster on a cron (nightly by default) and online assignment on an interval.
  Both take one job lock, so neither ever runs twice at once nor alongside the other; a recluster
  missed while the service was down runs once at start. Clock jumps (a suspend, an NTP step) never
  make a job run more than once: missed fire times are coalesced into one run, however late
  (`SCHEDULE_OPTIONS`), and a scheduled recluster is skipped when a run finished after the fire time
  it answers (a start-up run, `topics recluster`).
- A store that does not answer at start (a Qdrant server not up yet, or down) is retried with backoff
  while the control socket already answers: `status` says the service is waiting for the store.
- SIGTERM/SIGINT stop the sources, let the batch in flight finish, stop the jobs, close the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from indexer.config import Settings
from indexer.daemon import Backoff, FeedSpec, IngestDaemon
from indexer.index import Index
from indexer.ingest import open_pipeline
from indexer.pidlock import PidLock
from indexer.store import open_backend
from indexer.store.base import COLLECTIONS, IdentityMismatch, StoreError
from indexer.store.shared import OwnerBackend, StoreServer
from topics import catalog

log = logging.getLogger(__name__)

SERVE_LOCK = "serve.lock"
# One instance at a time; every missed fire time since the last run collapses into one run, which runs
# however late it is (a nightly run missed during a suspend runs once on resume).
SCHEDULE_OPTIONS: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}


def utc_now() -> datetime:
    """The wall clock the schedule is checked against (tests replace it)."""
    return datetime.now(UTC)


class ServiceRunning(RuntimeError):
    """Another `topics serve` already runs on this data dir."""


def serve_lock(data_dir: Path) -> PidLock:
    """The lock one `topics serve` per data dir holds (`serve.lock`, naming its pid)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return PidLock(
        data_dir / SERVE_LOCK,
        lambda holder: ServiceRunning(f"topics serve is already running on {data_dir} (pid {holder})"),
    )


def missed_run(cron: str, last_finished: datetime | None, now: datetime) -> bool:
    """Whether the schedule fired while nobody ran it: the next fire time after the last run is past."""
    if last_finished is None:
        return False
    trigger = CronTrigger.from_crontab(cron, timezone=UTC)
    due = trigger.get_next_fire_time(None, last_finished)
    return due is not None and due <= now


class Service:
    """One running `topics serve`. `run()` blocks until `stop()` or a signal."""

    def __init__(
        self,
        settings: Settings,
        watch: list[Path],
        feeds: list[FeedSpec],
        *,
        recluster: Callable[[Index], Any] | None = None,
        assign_online: Callable[[Index], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.lock = serve_lock(settings.data_dir)
        try:
            self.index = Index(settings, backend=open_backend(settings))
            for name in COLLECTIONS:
                self.index.backend.collection(name)  # take the directory locks now, not mid-run
        except BaseException:
            self.lock.release()
            raise
        self.started = time.time()
        self.stop_event = threading.Event()
        self._job_lock = threading.Lock()
        self._recluster = recluster
        self._assign_online = assign_online
        self._last_job_error: str | None = None
        self.store_state = "connecting"  # then "connected", or why the store does not answer yet
        self.pipeline = open_pipeline(self.index)
        self.daemon = IngestDaemon(settings, self.pipeline, watch, feeds)
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.server: StoreServer | None = None
        self.extra: dict[str, Callable[..., Any]] = {
            "status": self.status,
            "recluster": self.run_recluster,
            "search": self.search,
        }

    # -- jobs -----------------------------------------------------------------------------------

    def run_recluster(self) -> dict[str, Any]:
        """Run the recluster now (waits for a running job); the scheduler and other processes call this."""
        if self._recluster is None:
            raise RuntimeError("this service was started without a recluster job")
        with self._job_lock:
            return self._guarded("recluster", self._recluster)

    def run_online(self) -> dict[str, Any] | None:
        if self._assign_online is None or not self._job_lock.acquire(blocking=False):
            return None  # a recluster is running; its results supersede online assignment
        try:
            return self._guarded("online", self._assign_online)
        finally:
            self._job_lock.release()

    def _guarded(self, name: str, job: Callable[[Index], Any]) -> Any:
        try:
            return job(self.index)
        except Exception as error:
            self._last_job_error = f"{name}: {type(error).__name__}: {error}"
            log.exception("%s job failed", name)
            raise

    def _schedule(self) -> None:
        options = SCHEDULE_OPTIONS
        if self._recluster is not None and self.settings.cluster.scheduled:
            trigger = CronTrigger.from_crontab(self.settings.cluster.cron, timezone=UTC)
            self.scheduler.add_job(self._scheduled_recluster, trigger, id="recluster", **options)
            run = catalog.current_run(self.index.backend)
            if missed_run(self.settings.cluster.cron, run.finished if run else None, utc_now()):
                log.info("a scheduled recluster was missed while the service was down: running it now")
                self.scheduler.add_job(self._scheduled_recluster, id="recluster-missed", **options)
        if self._assign_online is not None:
            interval = self.settings.cluster.online_interval_s
            self.scheduler.add_job(self.run_online, "interval", seconds=interval, id="online", **options)
        self.scheduler.start()

    def _scheduled_recluster(self) -> None:
        with contextlib.suppress(Exception):  # recorded by _guarded (or no store yet); the next run tries
            run = catalog.current_run(self.index.backend)
            if run is not None and not missed_run(self.settings.cluster.cron, run.finished, utc_now()):
                log.info("scheduled recluster skipped: run %s finished after the time it was due", run.run_id)
                return
            self.run_recluster()

    def search(self, text: str | None = None, **options: Any) -> dict[str, Any]:
        """Concept search for other processes, with the model this process keeps loaded."""
        from topics.search import search

        return search(self.index, text, **options).as_dict()

    def offer(self, name: str, command: Callable[..., Any]) -> None:
        """Answer `name` for other processes on the control socket (before `run`)."""
        self.extra[name] = command

    def served_index(self) -> Index:
        """An index on this service's store for a command run here for another process."""
        if self.server is None:
            raise RuntimeError("the service is not serving yet")
        return Index(self.settings, backend=OwnerBackend(self.server))

    # -- status ---------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The service's state, for `topics status` in any process."""
        stats = self.daemon.stats
        job = self.scheduler.get_job("recluster") if self.scheduler.running else None
        next_run = job.next_run_time.isoformat() if job and job.next_run_time else None
        return {
            "pid": os.getpid(),
            "started_at": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            "uptime_s": round(time.time() - self.started, 1),
            "queue_depth": self.daemon.queue_depth,
            "items_per_s": round(stats.rate, 2),
            "stored": stats.stored,
            "failed": stats.failed,
            "incomplete": stats.incomplete,
            "last_error": stats.last_error or self._last_job_error,
            "store_state": self.store_state,
            "next_recluster": next_run,
            "watching": [str(p) for p in self.daemon.watch],
            "feeds": [f.name for f in self.daemon.feeds],
        }

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self, *, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop_event.set())
        self.server = StoreServer(self.index.backend, self.settings.data_dir, extra=self.extra)
        try:
            if self._connect():
                self._schedule()
                log.info("serving %s", self.settings.data_dir)
                self.daemon.run(self.stop_event)
        finally:
            self.close()

    def _connect(self) -> bool:
        """Wait until the store answers, retrying with backoff; False when stopped first.

        A store built with another model is refused at once: waiting would not change it.
        """
        backoff = Backoff()
        while not self.stop_event.is_set():
            try:
                self.pipeline.ensure_schema()
            except IdentityMismatch:
                raise
            except StoreError as error:
                delay = backoff.failed()
                tries = backoff.attempts
                self.store_state = f"unreachable (attempt {tries} failed), retrying in {delay:g}s: {error}"
                log.warning("the store does not answer (%s); retrying in %gs", error, delay)
                self.stop_event.wait(delay)
                continue
            self.store_state = "connected"
            return True
        return False

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        if self.server is not None:
            self.server.close()
        self.pipeline.close()
        self.index.close()
        self.lock.release()


def build_service(settings: Settings, watch: list[Path], feeds: list[FeedSpec]) -> Service:
    """The service with its real jobs: recluster (with representations) and online assignment."""
    from topics.jobs import assign_online, rebuild_topics, report_dict

    return Service(
        settings,
        watch,
        feeds,
        recluster=lambda index: report_dict(rebuild_topics(index)),
        assign_online=assign_online,
    )
