"""The store refusing writes for a while: the ingest daemon backs off, resumes, and loses nothing.

Faults are injected by `RefusingStore`, a decorator over a real Qdrant Edge store that raises
`StoreError` from the write calls named in `refuse` (as the engine does when its disk is full or its
directory vanished), while every other call goes to the real engine. The daemon runs its real loop over
a real JSONL feed and a real watched folder, with the tiny CLIP.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from indexer.config import Settings, load_settings
from indexer.daemon import FeedSpec, IngestDaemon
from indexer.index import Index
from indexer.items import id_from_content, id_from_source, sha256_bytes
from indexer.pipeline import Pipeline
from indexer.store.base import StoreError, VectorStore
from indexer.store.qdrant import QdrantStore
from tests.helpers import closed_port, draw_image, use_tiny_clip
from tests.reliability.conftest import wait_for
from topics.query.status import status
from topics.service.serve import Service

WRITES = ("upsert", "flush", "set_payload", "set_payloads", "delete", "delete_where")


class RefusingStore:
    """A real store that refuses the write calls named in `refuse` (a set the test changes at will)."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.refuse: set[str] = set()
        self.refused: dict[str, int] = {}
        self.refused_at: list[float] = []
        self.accepted: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._store, name)
        if name not in WRITES:
            return attribute

        def guarded(*args: Any, **kwargs: Any) -> Any:
            if name in self.refuse:
                self.refused[name] = self.refused.get(name, 0) + 1
                self.refused_at.append(time.monotonic())
                raise StoreError(f"injected fault: the store refuses {name}")
            self.accepted[name] = self.accepted.get(name, 0) + 1
            return attribute(*args, **kwargs)

        return guarded


class Running:
    """The daemon in a thread over a feed and a folder, stopped at the end."""

    def __init__(self, index: Index, store: RefusingStore, feed: Path, inbox: Path | None = None) -> None:
        self.pipeline = Pipeline(index.settings, store, index.ledger, clip=index.clip)  # type: ignore[arg-type]
        watch = [inbox] if inbox else []
        self.daemon = IngestDaemon(index.settings, self.pipeline, watch, [FeedSpec.parse(str(feed))])
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.daemon.run(self.stop)
        except BaseException as error:  # the test reports it: a daemon that died lost its service
            self.errors.append(error)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        self.pipeline.close()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    use_tiny_clip(monkeypatch)
    monkeypatch.setenv("TOPICS_WATCH__SETTLE_S", "0.2")
    monkeypatch.setenv("TOPICS_WATCH__SIDECAR_GRACE_S", "0.2")
    monkeypatch.setenv("TOPICS_INGEST__FLUSH_INTERVAL_S", "0.1")
    return load_settings()


@pytest.fixture
def index(settings: Settings) -> Iterator[Index]:
    with Index(settings) as opened:
        yield opened


def _append(feed: Path, start: int, n: int) -> set[str]:
    with feed.open("a") as fh:
        for i in range(start, start + n):
            fh.write(json.dumps({"id": f"r{i}", "text": f"row {i} of the feed"}) + "\n")
    return {id_from_source(feed.stem, f"r{i}") for i in range(start, start + n)}


def _drop(inbox: Path, seeds: Sequence[int]) -> set[str]:
    paths = [draw_image(inbox / f"img{s}.jpg", seed=s) for s in seeds]
    return {id_from_content(sha256_bytes(p.read_bytes()), None, with_caption=False) for p in paths}


def _cursor_line(index: Index, feed: Path) -> int | None:
    return json.loads(index.ledger.get_cursor(f"jsonl:{feed.resolve()}") or "{}").get("line")


def _stored(index: Index) -> list[str]:
    return [p.id for batch in index.items.scroll(payload=False) for p in batch]


@pytest.mark.parametrize("refused", [("upsert",), ("flush",), WRITES])
def test_store_refusing_writes_for_a_while_loses_nothing(
    index: Index, tmp_path: Path, refused: tuple[str, ...]
) -> None:
    feed, inbox = tmp_path / "feed.jsonl", tmp_path / "inbox"
    inbox.mkdir()
    expected = _append(feed, 0, 40) | _drop(inbox, range(5))
    store = RefusingStore(index.items)
    running = Running(index, store, feed, inbox)
    try:
        wait_for(lambda: set(_stored(index)) == expected, 60, "the first items")
        store.refuse = set(refused)  # the outage: items keep arriving meanwhile
        expected |= _append(feed, 40, 60) | _drop(inbox, range(5, 12))
        wait_for(lambda: sum(store.refused.values()) >= 3, 60, "three refused attempts (backoff 0.5+1+2 s)")
        during = set(_stored(index))
        assert "store refused writes" in (running.daemon.stats.last_error or "")
        store.refuse = set()  # the store is back
        wait_for(lambda: set(_stored(index)) == expected, 60, "everything after the outage")
        expected |= _append(feed, 100, 10)  # and the service goes on as before
        wait_for(lambda: set(_stored(index)) == expected, 60, "items after the recovery")
    finally:
        running.close()
    stored = _stored(index)
    assert len(stored) == len(set(stored)) == len(expected) == 122
    assert len(during) < len(expected)  # the outage really held items back
    stats = running.daemon.stats
    assert stats.failed == 0
    # an attempt whose flush was refused still counts what it stored; its retry finds them and skips them
    assert stats.stored == 122
    cursor = json.loads(index.ledger.get_cursor(f"jsonl:{feed.resolve()}") or "{}")
    assert (cursor["line"], cursor["offset"]) == (110, feed.stat().st_size)
    assert {r.path for r in index.ledger.records_under(str(inbox.resolve()))} == {
        str(p) for p in inbox.resolve().glob("*.jpg")
    }
    assert index.ledger.failures() == []


def test_backoff_doubles_between_refused_attempts(index: Index, tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    expected = _append(feed, 0, 5)
    store = RefusingStore(index.items)
    store.refuse = {"upsert"}
    running = Running(index, store, feed)
    try:
        wait_for(lambda: len(store.refused_at) >= 4, 30, "four refused attempts")
        store.refuse = set()
        wait_for(lambda: set(_stored(index)) == expected, 60, "the items after the outage")
    finally:
        running.close()
    times = store.refused_at[:4]
    gaps = [round((b - a) * 2) / 2 for a, b in itertools.pairwise(times)]
    assert gaps == [0.5, 1.0, 2.0]


def test_ledger_locked_by_another_process_for_a_while_loses_nothing(index: Index, tmp_path: Path) -> None:
    """Another process holding the ledger's write lock longer than its busy timeout (5 s)."""
    feed = tmp_path / "feed.jsonl"
    expected = _append(feed, 0, 10)
    running = Running(index, RefusingStore(index.items), feed)
    try:
        wait_for(lambda: set(_stored(index)) == expected, 60, "the first items")
        blocker = sqlite3.connect(index.settings.ledger_path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            expected |= _append(feed, 10, 10)
            time.sleep(7)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        expected |= _append(feed, 20, 10)
        wait_for(
            lambda: bool(running.errors) or set(_stored(index)) == expected,
            60,
            "everything after the lock was released",
        )
        wait_for(
            lambda: bool(running.errors) or _cursor_line(index, feed) == 30,
            30,
            "the cursor to catch up",
        )
        assert running.thread.is_alive()
    finally:
        running.close()
        for caught in running.errors:
            raise caught


def test_a_caption_that_arrives_before_its_image_leaves_no_duplicate(index: Index, tmp_path: Path) -> None:
    """Found by bench/soak.py: a watcher batch saw `post.txt` a moment before `post.jpg`."""
    inbox = tmp_path / "inbox"
    caption = inbox / "post.txt"
    inbox.mkdir()
    caption.write_text("a caption that came first")
    pipeline = Pipeline(index.settings, index.items, index.ledger, clip=index.clip)
    try:
        pipeline.ingest_folder_changes(inbox, [caption], [])
        assert len(_stored(index)) == 1  # a caption-only item, as it should be for now
        image = draw_image(inbox / "post.jpg", seed=7)
        pipeline.ingest_folder_changes(inbox, [image], [])
    finally:
        pipeline.close()
    image_id = id_from_content(sha256_bytes(image.read_bytes()), None, with_caption=False)
    assert _stored(index) == [image_id]


class Serving:
    """`Service.run` in a thread, as `topics serve` runs it, stopped at the end."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.service.run(install_signals=False)
        except BaseException as error:  # the test reports it: serve must not exit on its own
            self.errors.append(error)

    def state(self) -> str:
        return self.service.status()["store_state"]

    def close(self) -> None:
        self.service.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()
        for error in self.errors:
            raise error


def test_serve_waits_for_an_unreachable_server_and_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_tiny_clip(monkeypatch)
    url = f"http://127.0.0.1:{closed_port()}"
    serving = Serving(Service(load_settings(store={"url": url}), [], [], recluster=lambda index: {}))
    try:
        wait_for(lambda: "attempt 3 failed" in serving.state(), 60, "three attempts to reach the server")
        assert serving.thread.is_alive() and not serving.errors
        assert serving.state().startswith("unreachable (attempt 3 failed), retrying in 2s: ")
        assert url in serving.state()
        info = status(serving.service.served_index())  # `topics status`, answered by the service
        assert info["service"]["store_state"].startswith("unreachable")
        assert info["items"] is None and url in info["store"]["error"]
    finally:
        serving.close()


def test_serve_connects_once_the_store_answers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_tiny_clip(monkeypatch)
    real_ensure, calls = QdrantStore.ensure, []

    def ensure(store: QdrantStore, schema: Any) -> None:
        calls.append(store.name)
        if len(calls) <= 3:  # at start-up, then twice more while serve waits
            raise StoreError("injected: the server is not up yet")
        real_ensure(store, schema)

    monkeypatch.setattr(QdrantStore, "ensure", ensure)
    service = Service(load_settings(store={"backend": "memory"}), [], [], recluster=lambda index: {})
    assert service.store_state == "connecting"
    serving = Serving(service)
    try:
        wait_for(lambda: serving.state() == "connected", 60, "the store to answer")
        wait_for(lambda: service.scheduler.running, 30, "the scheduled jobs to start")
        assert calls == ["items"] * 4 and service.index.items.exists() and not serving.errors
    finally:
        serving.close()
