"""FolderWatcher with real watchdog events (inotify, and polling) in temporary folders."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.sources.watch import FolderWatcher, WatchBatch

SETTLE = 0.3
GRACE = 0.8


class Running:
    """A watcher whose consumer loop runs in a thread; batches arrive in `.batches` with their time."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self.watcher = watcher
        self.batches: queue.Queue[tuple[float, WatchBatch]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for batch in self.watcher.batches(self._stop):
            self.batches.put((time.monotonic(), batch))

    def start(self) -> Running:
        self.watcher.start()
        self._thread.start()
        first = self.next(5.0)
        assert first is not None and first[1].rescan  # the initial scan
        return self

    def stop(self) -> None:
        self._stop.set()
        self.watcher.stop()
        self._thread.join(5)

    def next(self, timeout: float) -> tuple[float, WatchBatch] | None:
        try:
            return self.batches.get(timeout=timeout)
        except queue.Empty:
            return None

    def collect(self, done: Callable[[list[WatchBatch]], bool], timeout: float = 10.0) -> list[WatchBatch]:
        """Batches until `done(batches)` holds (or the timeout passes)."""
        batches: list[WatchBatch] = []
        deadline = time.monotonic() + timeout
        while not done(batches) and (left := deadline - time.monotonic()) > 0:
            got = self.next(left)
            if got is not None:
                batches.append(got[1])
        return batches

    def quiet(self, seconds: float) -> list[WatchBatch]:
        """Everything that arrives within `seconds` (to show that nothing more does)."""
        return self.collect(lambda _b: False, timeout=seconds)


def changed(batches: list[WatchBatch]) -> list[Path]:
    return [path for batch in batches for path in batch.changed]


def deleted(batches: list[WatchBatch]) -> list[Path]:
    return [path for batch in batches for path in batch.deleted]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    return folder.resolve()


def start_watching(root: Path, *, polling: bool) -> Running:
    watcher = FolderWatcher(
        root, settle_s=SETTLE, sidecar_grace_s=GRACE, polling=polling, poll_interval_s=0.1
    )
    return Running(watcher).start()


@pytest.fixture
def running(root: Path) -> Iterator[Running]:
    started = start_watching(root, polling=False)
    yield started
    started.stop()


@pytest.fixture(params=[False, True], ids=["events", "polling"])
def either(root: Path, request: pytest.FixtureRequest) -> Iterator[Running]:
    """OS events, and the polling observer used for network filesystems."""
    started = start_watching(root, polling=request.param)
    yield started
    started.stop()


def write(path: Path, data: bytes = b"\xff\xd8\xff fake jpeg") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_file_written_slowly_is_emitted_once_settled(either: Running, root: Path) -> None:
    running = either
    image = root / "slow.jpg"
    with image.open("wb") as handle:
        for n in range(5):
            time.sleep(0.15 if n else 0)  # shorter than the settle time: still "changing"
            handle.write(b"x" * 1000)
            handle.flush()
            last_write = time.monotonic()
    write(root / "slow.txt", b"a caption")
    batches = running.collect(lambda b: image in changed(b))
    assert changed(batches).count(image) == 1
    assert image.stat().st_size == 5000
    assert not any(image in b.changed for b in batches[:-1])
    assert time.monotonic() - last_write >= SETTLE * 0.9


def test_image_waits_for_a_sidecar_that_comes_soon(running: Running, root: Path) -> None:
    image = write(root / "a" / "cat.jpg")
    time.sleep(SETTLE + 0.1)
    sidecar = write(root / "a" / "cat.jpg.txt", b"a cat")
    sidecar_written = time.monotonic()
    batches = running.collect(lambda b: image in changed(b))
    emitted_at = time.monotonic()
    assert image in changed(batches)
    assert emitted_at - sidecar_written >= 0  # not before its caption existed
    assert sidecar not in changed(batches)  # the sidecar is emitted as its image


def test_late_sidecar_reemits_its_image(either: Running, root: Path) -> None:
    running = either
    image = write(root / "dog.png")
    first = running.collect(lambda b: image in changed(b))
    assert image in changed(first)  # after the grace period, without a caption
    write(root / "dog.txt", b"a dog")
    again = running.collect(lambda b: image in changed(b))
    assert image in changed(again)
    write(root / "dog.txt", b"a dog, edited")
    edited = running.collect(lambda b: image in changed(b))
    assert image in changed(edited)


def test_caption_only_file_is_emitted_itself(running: Running, root: Path) -> None:
    note = write(root / "notes.txt", b"just words")
    assert note in changed(running.collect(lambda b: note in changed(b)))


def test_delete_and_move(either: Running, root: Path) -> None:
    running = either
    keep = write(root / "keep.jpg")
    gone = write(root / "gone.jpg")
    running.collect(lambda b: {keep, gone} <= set(changed(b)))
    gone.unlink()
    moved = root / "sub" / "moved.jpg"
    moved.parent.mkdir()
    os.rename(keep, moved)
    batches = running.collect(lambda b: {gone, keep} <= set(deleted(b)) and moved in changed(b))
    assert {gone, keep} <= set(deleted(batches))
    assert moved in changed(batches)


def test_folder_moved_in_and_out(running: Running, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "incoming"
    files = [write(outside / "trip" / f"{n}.jpg") for n in range(5)]
    os.rename(outside / "trip", root / "trip")
    arrived = {root / "trip" / f.name for f in files}
    batches = running.collect(lambda b: arrived <= set(changed(b)))
    assert arrived <= set(changed(batches))
    os.rename(root / "trip", tmp_path / "trip-out")
    batches = running.collect(lambda b: root / "trip" in deleted(b))
    assert root / "trip" in deleted(batches)


def test_ignores_hidden_partial_and_other_files(running: Running, root: Path) -> None:
    write(root / ".hidden.jpg")
    write(root / ".cache" / "x.jpg")
    write(root / "download.jpg.part")
    write(root / "readme.md", b"# hi")
    final = root / "download.jpg"
    os.rename(root / "download.jpg.part", final)
    batches = running.collect(lambda b: final in changed(b))
    assert changed(batches) == [final]


def test_reading_files_triggers_nothing(running: Running, root: Path) -> None:
    image = write(root / "read-me.jpg")
    running.collect(lambda b: image in changed(b))
    for _ in range(3):
        image.read_bytes()  # what the pipeline does after each batch
    assert running.quiet(GRACE + SETTLE) == []


def test_burst_keeps_the_queue_bounded_and_loses_nothing(root: Path) -> None:
    watcher = FolderWatcher(root, settle_s=1.0, sidecar_grace_s=0.0, max_queue=200)
    running = Running(watcher).start()
    try:
        expected = {write(root / f"d{n % 10}" / f"{n:04d}.jpg", b"\xff\xd8\xff%d" % n) for n in range(2000)}
        seen: set[Path] = set()

        def caught_up(batches: list[WatchBatch]) -> bool:
            for batch in batches[len(caught_up.done) :]:  # type: ignore[attr-defined]
                seen.update(batch.changed)
                if batch.rescan:  # what the daemon does: a full scan of the folder
                    seen.update(p for p in root.rglob("*.jpg"))
            caught_up.done = list(batches)  # type: ignore[attr-defined]
            return seen >= expected

        caught_up.done = []  # type: ignore[attr-defined]
        batches = running.collect(caught_up, timeout=30)
        assert seen >= expected
        assert any(b.rescan for b in batches)
        assert watcher.high_water <= 200
    finally:
        running.stop()


def test_rescan_waits_for_the_burst_to_end(root: Path) -> None:
    watcher = FolderWatcher(root, settle_s=0.5, max_queue=5)
    watcher.start()
    try:
        watcher.poll(time.monotonic())  # the initial rescan
        for n in range(20):
            write(root / f"{n}.jpg")
        time.sleep(0.2)  # let the observer thread deliver
        assert watcher.rescan_needed
        assert not watcher.poll(time.monotonic()).rescan  # the folder is still busy
        time.sleep(0.6)
        assert watcher.poll(time.monotonic()).rescan
        assert not watcher.rescan_needed
    finally:
        watcher.stop()
