"""Disk full during ingest, recluster and ledger writes: one clear line, nothing half-written, and
everything resumes once space returns; `serve` keeps running and retries.

The embedded engine maps its files and leaves them sparse, so on a full disk it used to die with
SIGBUS (exit 135) instead of failing. The first test fills a real tmpfs (mounted by the test; it needs
root, and is skipped where mounting is refused) with a ballast file and drives the real CLI through
the fork server. The others inject the fault: `indexer.diskspace.free_bytes` reports what the test
says, or SQLite's ``max_page_count`` makes the ledger's file full.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import indexer.diskspace
from evaluation import synthetic
from indexer.config import Settings, load_settings
from indexer.diskspace import MIB, disk_use, free_bytes
from indexer.index import Index
from indexer.ledger import FileRecord, Ledger
from indexer.store.base import CollectionSchema, DiskFull, Point
from indexer.store.edge import EdgeStore
from tests.helpers import tiny_env, use_tiny_clip
from tests.reliability.conftest import wait_for
from tests.reliability.forkserver import ForkServer
from tests.reliability.test_store_faults import RefusingStore, Running, _append, _stored
from topics import catalog
from topics.query.status import status
from topics.recluster import recluster

SIGBUS = -7


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


class FreeSpace:
    """What `free_bytes` reports while the test holds it; None: the real figure."""

    def __init__(self) -> None:
        self.reported: int | None = None

    def __call__(self, path: Path) -> int:
        return free_bytes(path) if self.reported is None else self.reported


@pytest.fixture
def free(monkeypatch: pytest.MonkeyPatch) -> FreeSpace:
    fake = FreeSpace()
    monkeypatch.setattr(indexer.diskspace, "free_bytes", fake)
    return fake


def _rows(path: Path, start: int, stop: int) -> Path:
    rng = np.random.default_rng(start)
    with path.open("w") as fh:
        for i in range(start, stop):
            vector = synthetic.normalise(rng.standard_normal(64))
            fh.write(json.dumps({"id": f"r{i}", "vector_image": [round(float(x), 5) for x in vector]}) + "\n")
    return path


def _fill(disk: Path, leave_mb: int) -> Path:
    """A ballast file that leaves `leave_mb` MiB free on the disk."""
    ballast = disk / "ballast"
    size = free_bytes(disk) - leave_mb * MIB
    with ballast.open("wb") as fh:
        for _ in range(size // MIB):
            fh.write(b"\0" * MIB)
    return ballast


def _one_error(out: str) -> str:
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    return errors[0]


def _status(forkserver: ForkServer, env: dict[str, str], log: Path) -> dict:
    code, out = forkserver.run(["status", "--json"], env, log)
    assert code == 0, out
    return json.loads(out[out.index("{") :])


def test_ingest_and_recluster_on_a_full_disk_say_so_and_resume_when_space_returns(
    small_disk: Path, forkserver: ForkServer, tmp_path: Path
) -> None:
    data = small_disk / "data"
    env = tiny_env(
        data, TOPICS_STORE__MIN_FREE_MB="4", TOPICS_CLIENT="off", TOPICS_INGEST__FLUSH_INTERVAL_S="3600"
    )
    log = tmp_path / "cli.log"
    every = _rows(tmp_path / "rows.jsonl", 0, 8000)
    first = tmp_path / "first.jsonl"
    first.write_text("".join(every.read_text().splitlines(keepends=True)[:2000]))
    assert forkserver.run(["ingest", str(first)], env, log)[0] == 0

    # Less free than the store's files have mapped already: the engine faults even opening them.
    assert disk_use(data / "store")[1] > 100 * MIB
    ballast = _fill(small_disk, leave_mb=20)
    for argv in (["ingest", str(every)], ["recluster"], ["status"]):
        code, out = forkserver.run(argv, env, log)
        assert code == 1, f"topics {argv[0]}: exit {code} (SIGBUS is {SIGBUS}): {out}"
        assert _one_error(out).startswith("error: disk full: opening collection 'items' refused")
    ballast.unlink()

    # Enough to open the store, not to write to it.
    ballast = _fill(small_disk, leave_mb=disk_use(data / "store")[1] // MIB + 2)
    code, out = forkserver.run(["ingest", str(every)], env, log)
    assert code == 1 and _one_error(out).startswith("error: disk full: ")
    code, out = forkserver.run(["recluster"], env, log)
    assert code == 1 and _one_error(out).startswith("error: disk full: recluster refused")
    shown = _status(forkserver, env, log)
    assert shown["items"] == 2000 and shown["run_id"] is None  # nothing half-written
    assert any(w.startswith("low disk space") and "refused now" in w for w in shown["warnings"])

    ballast.unlink()  # space returns
    assert forkserver.run(["ingest", str(every)], env, log)[0] == 0
    assert forkserver.run(["recluster"], env, log)[0] == 0
    shown = _status(forkserver, env, log)
    assert (shown["items"], shown["run_id"], shown["failures"], shown["warnings"]) == (8000, 1, {}, [])


def test_a_low_free_space_check_refuses_before_the_engine_writes(free: FreeSpace, tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "items", "items", min_free_mb=64)
    store.ensure(CollectionSchema(vectors={"image": 8}, identity={"test": 1}))
    points = [Point(synthetic.item_id(i), {"image": np.ones(8, np.float32)}, {"n": i}) for i in range(10)]
    before = disk_use(tmp_path / "items")
    free.reported = 64 * MIB + disk_use(tmp_path)[1] - 1  # one byte short of backing what is mapped
    with pytest.raises(
        DiskFull, match=r"disk full: upsert 10 points in 'items' refused: .*store\.min_free_mb"
    ):
        store.upsert(points)
    with pytest.raises(DiskFull):
        store.set_payload([points[0].id], {"n": 1})
    store.optimize()  # maintenance waits for space (logged) instead of failing
    assert store.count() == 0 and disk_use(tmp_path / "items") == before
    free.reported = None
    store.upsert(points)
    assert store.count() == 10
    store.close()


def test_a_full_ledger_file_is_one_clear_error_and_rolls_back(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.record_files([FileRecord(f"/in/{i}.jpg", "/in", 1, 1) for i in range(10)])
    pages = ledger._db.execute("PRAGMA page_count").fetchone()[0]
    ledger._db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: SQLITE_FULL
    many = [FileRecord(f"/in/new-{i}-{'x' * 200}.jpg", "/in", 1, 1) for i in range(2000)]
    with pytest.raises(DiskFull, match=r"disk full: the ledger .* could not be written"):
        ledger.record_files(many)
    with pytest.raises(DiskFull):
        ledger.set_cursor("jsonl:feed", "x" * 100_000)
    assert not ledger._db.in_transaction and len(ledger.records_under("/in")) == 10
    ledger._db.execute("PRAGMA max_page_count = 1073741823")
    ledger.record_files(many)
    assert len(ledger.records_under("/in")) == 2010
    ledger.close()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    use_tiny_clip(monkeypatch)
    monkeypatch.setenv("TOPICS_INGEST__FLUSH_INTERVAL_S", "0.1")
    return load_settings()


def test_serve_keeps_running_while_the_disk_is_full_and_catches_up(
    settings: Settings, free: FreeSpace, tmp_path: Path
) -> None:
    with Index(settings) as index:
        feed = tmp_path / "feed.jsonl"
        expected = _append(feed, 0, 20)
        running = Running(index, RefusingStore(index.items), feed)
        try:
            wait_for(lambda: len(_stored(index)) == 20, 60, "the first rows")
            free.reported = 1 * MIB
            expected |= _append(feed, 20, 30)
            wait_for(lambda: "disk full" in (running.daemon.stats.last_error or ""), 60, "a refusal")
            assert running.thread.is_alive() and len(_stored(index)) == 20
            assert any(w.startswith("low disk space") for w in status(index)["warnings"])
            free.reported = None  # space returns
            wait_for(lambda: set(_stored(index)) == expected, 60, "the rows written meanwhile")
        finally:
            running.close()
        assert not running.errors and running.daemon.stats.failed == 0


def test_a_recluster_is_refused_before_any_write_and_runs_once_space_returns(
    free: FreeSpace, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(store={"backend": "memory"})
    with Index(settings) as index:
        synthetic.store_corpus(index.items, synthetic.churn_corpus(0))
        recluster(settings, index.backend)
        synthetic.store_corpus(index.items, synthetic.churn_corpus(1), prune=True)
        free.reported = 10 * MIB
        writes = threading.Event()
        monkeypatch.setattr(type(index.items), "set_payloads", lambda *a, **k: writes.set())
        with pytest.raises(DiskFull, match="disk full: recluster refused"):
            recluster(settings, index.backend)
        assert not writes.is_set() and catalog.current_run(index.backend).run_id == 1
        monkeypatch.undo()
        monkeypatch.setattr(indexer.diskspace, "free_bytes", FreeSpace())
        assert recluster(settings, index.backend).run_id == 2
