"""A watched folder: says *when* and *what* to look at; the pipeline's folder ingest decides the rest.

The watcher never reads images. Filesystem events (watchdog; polling for network filesystems, where
inotify sees nothing) only put paths into a bounded set. A consumer loop then emits a path once its
(size, mtime) has stayed the same for `settle_s` (no half-written files), lets an image wait up to
`sidecar_grace_s` for its caption sidecar, and re-emits an image when its sidecar changes later.

Nothing is lost when the set is full: further events are dropped and a rescan is requested instead;
a `WatchBatch(rescan=True)` tells the caller to run a full folder ingest (the ledger makes it cheap),
which also catches deletions. The first batch is always a rescan: that is the initial scan, and it
covers whatever changed while the process was not running.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from indexer.sources.folder import IMAGE_SUFFIXES, PARTIAL_SUFFIXES

log = logging.getLogger(__name__)

SIDECAR_SUFFIXES = frozenset({".txt", ".json"})
WATCHED_EVENTS = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]  # not opened / closed-without-write: the pipeline reading an image must not re-trigger it


@dataclass(frozen=True)
class WatchBatch:
    """What to look at now. `deleted` may hold folders (everything under them is gone).

    `rescan`: events were dropped (or this is the first batch); ingest the whole folder.
    """

    changed: tuple[Path, ...] = ()
    deleted: tuple[Path, ...] = ()
    rescan: bool = False

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.rescan)


@dataclass
class _Pending:
    """A file seen changing: when first seen, its last signature, and since when that held."""

    first_seen: float
    signature: tuple[int, int] | None = None
    stable_since: float = 0.0
    checked_at: float = 0.0


class _EventQueue(FileSystemEventHandler):
    """Runs in the observer's thread: turns events into (path, kind) marks, and nothing else."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        mark = self._watcher._mark
        source = Path(os.fsdecode(event.src_path))
        if isinstance(event, DirMovedEvent | FileMovedEvent):
            mark(source, "deleted")
            mark(Path(os.fsdecode(event.dest_path)), "dir" if event.is_directory else "changed")
        elif isinstance(event, DirDeletedEvent | FileDeletedEvent):
            mark(source, "deleted")
        elif isinstance(event, DirCreatedEvent):
            mark(source, "dir")
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent | FileClosedEvent):
            mark(source, "changed")


class FolderWatcher:
    """Watch `root` recursively and yield `WatchBatch`es of settled changes.

    `start()` begins watching; `batches(stop)` is the consumer loop (one thread); `stop()` ends
    watching. `polling=True` polls every `poll_interval_s` instead of using OS events (NFS, SMB);
    if OS events cannot be had (inotify limits), polling is used anyway.
    """

    def __init__(
        self,
        root: Path,
        *,
        settle_s: float = 1.0,
        sidecar_grace_s: float = 2.0,
        max_queue: int = 10_000,
        polling: bool = False,
        poll_interval_s: float = 1.0,
        max_batch: int = 1000,
        rescan_max_wait_s: float = 30.0,
    ) -> None:
        self.root = Path(root).resolve()
        self.settle_s = settle_s
        self.sidecar_grace_s = sidecar_grace_s
        self.max_queue = max_queue
        self.polling = polling
        self.poll_interval_s = poll_interval_s
        self.max_batch = max_batch
        self.rescan_max_wait_s = rescan_max_wait_s
        self.high_water = 0  # the most paths held at once (marks + pending), for tests and metrics
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._marks: dict[Path, str] = {}
        self._pending: dict[Path, _Pending] = {}
        self._deleted: set[Path] = set()
        self._rescan_since: float | None = None
        self._last_event = 0.0
        self._observer: BaseObserver | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Begin watching; the first batch will ask for a full scan."""
        self._request_rescan()
        self._observer = self._start_observer(self.polling)

    def _start_observer(self, polling: bool) -> BaseObserver:
        observer = PollingObserver(timeout=self.poll_interval_s) if polling else Observer()
        observer.schedule(_EventQueue(self), str(self.root), recursive=True, event_filter=WATCHED_EVENTS)
        try:
            observer.start()
        except OSError as error:
            if polling:
                raise
            log.warning("%s: OS file events unavailable (%s); polling instead", self.root, error)
            return self._start_observer(True)
        return observer

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._wakeup.set()

    def __enter__(self) -> FolderWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def rescan_needed(self) -> bool:
        return self._rescan_since is not None

    # -- the consumer loop ----------------------------------------------------------------------

    def batches(self, stop: threading.Event) -> Iterator[WatchBatch]:
        """Yield batches of settled changes until `stop` is set (each at most `max_batch` paths)."""
        tick = max(0.01, min(0.25, self.settle_s / 4))
        while not stop.is_set():
            self._wakeup.wait(tick)
            self._wakeup.clear()
            batch = self.poll(time.monotonic())
            if batch:
                yield batch

    def poll(self, now: float) -> WatchBatch:
        """One step of the loop: take the marks, check pending files, return what is ready."""
        self._absorb_marks(now)
        changed = self._settled(now)
        deleted, self._deleted = tuple(sorted(self._deleted)), set()
        return WatchBatch(tuple(sorted(changed)), deleted, self._rescan_due(now))

    # -- marks (observer thread) ----------------------------------------------------------------

    def _mark(self, path: Path, kind: str) -> None:
        if not self._relevant(path, kind):
            return
        with self._lock:
            self._last_event = time.monotonic()
            if path not in self._marks and len(self._marks) + len(self._pending) >= self.max_queue:
                self._request_rescan()
                return
            self._marks[path] = kind
            self.high_water = max(self.high_water, len(self._marks) + len(self._pending))
        self._wakeup.set()

    def _relevant(self, path: Path, kind: str) -> bool:
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return False
        if not parts or any(p.startswith(".") for p in parts):
            return False
        if kind != "changed":
            return True  # a deleted or new folder, or a deleted file of any kind
        suffix = path.suffix.lower()
        return suffix not in PARTIAL_SUFFIXES and (suffix in IMAGE_SUFFIXES or suffix in SIDECAR_SUFFIXES)

    def _request_rescan(self) -> None:
        if self._rescan_since is None:
            self._rescan_since = time.monotonic()

    def _rescan_due(self, now: float) -> bool:
        """A rescan waits for a quiet moment (a burst finished), but never longer than the cap."""
        since = self._rescan_since
        if since is None:
            return False
        if now - self._last_event < self.settle_s and now - since < self.rescan_max_wait_s:
            return False
        self._rescan_since = None
        return True

    # -- pending files (consumer thread) --------------------------------------------------------

    def _absorb_marks(self, now: float) -> None:
        with self._lock:
            marks, self._marks = self._marks, {}
        for path, kind in marks.items():
            if kind == "deleted":
                self._on_deleted(path, now)
            elif kind == "dir":
                self._walk_new_folder(path, now)
            else:
                self._deleted.discard(path)
                self._pend(path, now)

    def _pend(self, path: Path, now: float) -> None:
        if path in self._pending:
            self._pending[path].checked_at = 0.0  # look again at the next check
            return
        with self._lock:
            if len(self._marks) + len(self._pending) >= self.max_queue:
                self._request_rescan()
                return
            self._pending[path] = _Pending(first_seen=now)
            self.high_water = max(self.high_water, len(self._marks) + len(self._pending))

    def _on_deleted(self, path: Path, now: float) -> None:
        self._pending.pop(path, None)
        if path.suffix.lower() in SIDECAR_SUFFIXES:
            for image in _images_of(path):  # the caption went away: the image changed
                self._pend(image, now)
            if not _images_of(path):
                self._deleted.add(path)  # it may have been a caption-only item
            return
        self._deleted.add(path)

    def _walk_new_folder(self, folder: Path, now: float) -> None:
        """A folder created or moved in: its files came without events of their own."""
        for directory, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(directory) / name
                if self._relevant(path, "changed"):
                    self._deleted.discard(path)
                    self._pend(path, now)
                if self._rescan_since is not None:
                    return  # the set is full: the rescan will find the rest

    def _settled(self, now: float) -> list[Path]:
        """Paths whose files stopped changing (and waited for their sidecars); at most `max_batch`."""
        ready: list[Path] = []
        for path, state in list(self._pending.items()):
            if len(ready) >= self.max_batch:
                break
            if now - state.checked_at < self.settle_s / 2:
                continue
            verdict = self._check(path, state, now)
            if verdict == "wait":
                continue
            del self._pending[path]
            if verdict == "gone":
                continue
            ready.extend(self._emitted_for(path))
        return list(dict.fromkeys(ready))

    def _check(self, path: Path, state: _Pending, now: float) -> str:
        state.checked_at = now
        try:
            info = path.stat()
        except FileNotFoundError:
            return "gone"  # its deletion event marks it
        except OSError:
            return "wait"
        signature = (info.st_size, info.st_mtime_ns)
        if signature != state.signature:
            state.signature, state.stable_since = signature, now
            return "wait"
        if now - state.stable_since < self.settle_s:
            return "wait"
        if now - state.first_seen < self.sidecar_grace_s and not _partner_exists(path):
            return "wait"
        return "ready"

    def _emitted_for(self, path: Path) -> list[Path]:
        """An image is emitted itself; a settled sidecar emits its image(s), or itself when alone."""
        if path.suffix.lower() not in SIDECAR_SUFFIXES:
            return [path]
        images = _images_of(path)
        waiting = [image for image in images if image in self._pending]
        return [image for image in images if image not in waiting] or ([] if waiting else [path])


def _images_of(sidecar: Path) -> list[Path]:
    """The images a sidecar belongs to: ``cat.jpg`` for ``cat.jpg.txt``, ``cat.<image>`` for ``cat.txt``."""
    stem = sidecar.name[: -len(sidecar.suffix)]
    if Path(stem).suffix.lower() in IMAGE_SUFFIXES:
        image = sidecar.with_name(stem)
        return [image] if image.exists() else []
    try:
        names = os.listdir(sidecar.parent)
    except OSError:
        return []
    return sorted(
        sidecar.parent / n for n in names if Path(n).stem == stem and Path(n).suffix.lower() in IMAGE_SUFFIXES
    )


def _partner_exists(path: Path) -> bool:
    """An image's sidecar, or a sidecar's image, is there: no reason to wait for it any longer."""
    if path.suffix.lower() in SIDECAR_SUFFIXES:
        return bool(_images_of(path))
    return any(
        path.with_name(name).exists()
        for suffix in SIDECAR_SUFFIXES
        for name in (path.name + suffix, path.stem + suffix)
    )
