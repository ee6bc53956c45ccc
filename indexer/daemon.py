"""The ingest loop of `topics serve`: watched folders and feeds into one pipeline.

Each source runs in its own producer thread and hands the pipeline thread one batch at a time, then
waits for it to be stored before reading more. That keeps memory bounded (one batch per source in
flight, whatever arrives) and makes feeds exactly-once: a feed's cursor is committed only after the
store has flushed its batch, and ids are deterministic, so a crash re-reads at most one batch that is
then a no-op. A store that refuses writes is retried with backoff while the batch waits. A bug met
while storing a batch (what the pipeline's per-item guards did not catch) is logged with its
traceback and recorded as an ``internal`` failure of that batch's source; the loop goes on.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.config import Settings
from indexer.fetch import ImageFetcher
from indexer.items import Item
from indexer.ledger import Ledger
from indexer.pipeline import IngestSummary, Pipeline, is_infrastructure
from indexer.sources import SourceError, check_storable_path, internal_error
from indexer.sources.feed import HttpFeed, JsonlTail, RecordContext, read_stream
from indexer.sources.watch import FolderWatcher
from indexer.store.base import StoreError

log = logging.getLogger(__name__)

Records = list[Item | SourceError]


@dataclass(frozen=True)
class FeedSpec:
    """A feed named on the command line: `-` (stdin), an http(s) URL, or a JSONL file to follow."""

    kind: str
    target: str

    @classmethod
    def parse(cls, text: str) -> FeedSpec:
        if text == "-":
            return cls("stdin", "-")
        if text.startswith(("http://", "https://")):
            return cls("http", text)
        if "://" in text:
            raise ValueError(f"feed {text!r}: only http(s) URLs, '-' for stdin, or a JSONL file path")
        check_storable_path(text)
        return cls("jsonl", str(Path(text).resolve()))

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.target}"


@dataclass
class _Unit:
    """One batch handed to the pipeline thread; `done` is set once it is stored (or given up)."""

    run: Callable[[Pipeline, IngestSummary], IngestSummary]  # counts into the summary as it goes
    source: str  # the folder or feed it comes from: what a failure of the whole batch is recorded against
    commit: Callable[[], None] = lambda: None
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class Backoff:
    """Waits between retries of something that failed: `first_s`, doubling up to `max_s`."""

    first_s: float = 0.5
    max_s: float = 30.0
    attempts: int = 0  # failed attempts so far

    @property
    def next_s(self) -> float:
        return min(self.first_s * 2 ** max(self.attempts - 1, 0), self.max_s)

    def failed(self) -> float:
        """Count a failed attempt; the seconds to wait before the next one."""
        self.attempts += 1
        return self.next_s


@dataclass
class DaemonStats:
    started: float = field(default_factory=time.time)
    stored: int = 0
    failed: int = 0
    incomplete: int = 0  # stored with a part missing (a picture not fetched, a caption cut)
    last_error: str | None = None
    last_error_at: float | None = None
    rate: float = 0.0  # items/s, smoothed over about a minute
    _last: float = field(default_factory=time.monotonic)

    def add(self, summary: IngestSummary, *, failures: bool = True) -> None:
        """Count a unit's summary; `failures=False` for an attempt that will be retried (its bad inputs
        fail again then, while what it stored is found stored and skipped)."""
        done = summary.ingested + summary.updated
        self.stored += done
        self.failed += summary.failed if failures else 0
        self.incomplete += len(summary.notices) if failures else 0
        now = time.monotonic()
        elapsed, self._last = max(now - self._last, 1e-3), now
        weight = min(1.0, elapsed / 60.0)
        self.rate = (1 - weight) * self.rate + weight * (done / elapsed)

    def error(self, message: str) -> None:
        self.last_error, self.last_error_at = message, time.time()


class IngestDaemon:
    """Runs sources into a pipeline until `stop` is set; `run()` blocks on the pipeline thread."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        watch: list[Path],
        feeds: list[FeedSpec],
        *,
        on_stored: Callable[[IngestSummary], None] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.watch = [Path(p).resolve() for p in watch]
        self.feeds = feeds
        self.stats = DaemonStats()
        self._queue: queue.Queue[_Unit] = queue.Queue(maxsize=max(4, len(watch) + len(feeds)))
        self._on_stored = on_stored or (lambda summary: None)
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    def run(self, stop: threading.Event) -> None:
        """Start the producers, then store what they hand over until `stop` (the batch in flight ends)."""
        for root in self.watch:
            self._spawn(f"watch:{root}", self._watch_folder, root, stop)
        for spec in self.feeds:
            self._spawn(spec.name, self._follow_feed, spec, stop)
        if self.settings.fetch.retry_interval_s > 0:
            self._spawn("picture-retry", self._retry_pictures, stop)
        while not stop.is_set():
            try:
                unit = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self._store(unit, stop)
        self._shutdown()

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            try:
                target(*args)
            except Exception as error:  # a broken source stops itself, never the service
                log.exception("source %s stopped", name)
                self.stats.error(f"{name}: {type(error).__name__}: {error}")

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _store(self, unit: _Unit, stop: threading.Event) -> None:
        """Run one unit; on a store failure wait and retry the same unit, until it goes in or we stop."""
        backoff = Backoff()
        while not stop.is_set():
            summary = IngestSummary()
            try:
                unit.run(self.pipeline, summary)
                unit.commit()  # a cursor that cannot be written is retried with its batch (a no-op)
            except Exception as error:
                if not is_infrastructure(error):
                    self._unexpected(unit, summary, error)
                    break
                self.stats.add(summary, failures=False)  # the retry finds these stored and skips them
                what = _what_refused(error)
                self.stats.error(f"{what} refused writes: {error}")
                delay = backoff.failed()
                log.warning("%s refused writes (%s); retrying in %.1fs", what, error, delay)
                stop.wait(delay)
                continue
            self.stats.add(summary)
            if summary.failures:
                origin, reason = summary.failures[-1]
                self.stats.error(f"{origin}: {reason}")
            self._on_stored(summary)
            break
        unit.done.set()

    def _unexpected(self, unit: _Unit, summary: IngestSummary, error: Exception) -> None:
        """A bug while storing a unit: counted against its source and logged; never retried (it would
        fail the same way), never the end of the service."""
        failure = internal_error(unit.source, error)
        try:
            self.pipeline.ledger.record_failure(failure.origin, failure.reason, failure.detail)
        except sqlite3.Error:
            log.warning("the ledger could not record %s: %s", failure.origin, failure.reason)
        summary.failed += 1
        summary.failures.append((failure.origin, failure.reason))
        self.stats.add(summary)
        self.stats.error(f"{failure.origin}: {failure.detail}")

    def _hand_over(self, unit: _Unit, stop: threading.Event) -> bool:
        """Queue a unit and wait until it is stored; False when stopping first."""
        while not stop.is_set():
            try:
                self._queue.put(unit, timeout=0.2)
                break
            except queue.Full:
                continue
        while not stop.is_set():
            if unit.done.wait(0.2):
                return True
        return False

    # -- producers ------------------------------------------------------------------------------

    def _watch_folder(self, root: Path, stop: threading.Event) -> None:
        w = self.settings.watch
        watcher = FolderWatcher(
            root,
            settle_s=w.settle_s,
            sidecar_grace_s=w.sidecar_grace_s,
            max_queue=w.max_queue,
            polling=w.polling,
        )
        watcher.start()
        self._closers.append(watcher.stop)
        for batch in watcher.batches(stop):
            if batch.rescan:
                unit = _Unit(lambda p, s, root=root: p.ingest_folder(root, s), str(root))
            else:
                unit = _Unit(
                    lambda p, s, b=batch, root=root: p.ingest_folder_changes(root, b.changed, b.deleted, s),
                    str(root),
                )
            if not self._hand_over(unit, stop):
                return

    def _retry_pictures(self, stop: threading.Event) -> None:
        """Every `fetch.retry_interval_s`, the pictures owed by rows stored caption-only."""
        while not stop.wait(self.settings.fetch.retry_interval_s):
            unit = _Unit(lambda p, s: p.retry_pictures(s), "picture-retry")
            if not self._hand_over(unit, stop):
                return

    def _follow_feed(self, spec: FeedSpec, stop: threading.Event) -> None:
        for batch, commit in self._feed_batches(spec, stop):
            unit = _Unit(lambda p, s, b=batch: p.ingest_items(b, s), spec.name, commit=commit)
            if not self._hand_over(unit, stop):
                return

    def _feed_batches(
        self, spec: FeedSpec, stop: threading.Event
    ) -> Iterator[tuple[Records, Callable[[], None]]]:
        max_caption = self.settings.ingest.max_caption_bytes
        if spec.kind == "stdin":
            context = RecordContext(
                namespace="stdin", max_caption_bytes=max_caption, roots=_roots(self.settings)
            )
            for batch in _batched(read_stream(sys.stdin.buffer, "stdin", context=context), stop):
                yield batch, lambda: None
            return
        cursors = Ledger(self.settings.ledger_path)  # its own connection: feeds run in their own threads
        self._closers.append(cursors.close)
        if spec.kind == "jsonl":
            path = Path(spec.target)
            context = RecordContext(
                namespace=path.stem,
                max_caption_bytes=max_caption,
                roots=(path.parent, *_roots(self.settings)),
            )
            source: JsonlTail | HttpFeed = JsonlTail(
                path, cursor_store=cursors, name=spec.name, context=context
            )
            batches = source.follow(stop, interval_s=0.5)
        else:
            fetcher = ImageFetcher.from_settings(self.settings.fetch)
            self._closers.append(fetcher.close)
            source = HttpFeed(
                spec.target,
                fetcher=fetcher,
                name=spec.name,
                cursor_store=cursors,
                interval_s=self.settings.watch.feed_interval_s,
                max_caption_bytes=max_caption,
            )
            batches = source.follow(stop)
        for batch in batches:
            yield batch, source.commit

    def _shutdown(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # closing is best effort at shutdown
                log.debug("closing a source failed", exc_info=True)
        for thread in self._threads:
            thread.join(timeout=2.0)


def _what_refused(error: Exception) -> str:
    if isinstance(error, StoreError):
        return "store"
    return "memory" if isinstance(error, MemoryError) else "ledger"


def _roots(settings: Settings) -> tuple[Path, ...]:
    return tuple(Path(p) for p in settings.ingest.allowed_roots)


def _batched(
    records: Iterator[Item | SourceError], stop: threading.Event, size: int = 64, wait_s: float = 0.5
):
    """Group a blocking stream into batches: full ones at once, a partial one after `wait_s` of quiet."""
    inbox: queue.Queue[Item | SourceError | None] = queue.Queue(maxsize=size * 4)

    def read() -> None:
        for record in records:
            inbox.put(record)
        inbox.put(None)

    threading.Thread(target=read, name="stdin-reader", daemon=True).start()
    batch: Records = []
    while not stop.is_set():
        try:
            record = inbox.get(timeout=wait_s)
        except queue.Empty:
            if batch:
                yield batch
                batch = []
            continue
        if record is None:
            break
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
