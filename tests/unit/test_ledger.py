"""Ledger: file records, mark-and-sweep, failures, cursors, persistence and refusal of foreign files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from indexer.ledger import SCHEMA_VERSION, FileRecord, Ledger, LedgerError


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger(tmp_path / "state" / "ledger.sqlite")
    yield opened
    opened.close()


def _record(
    name: str, *, item: str = "item-a", size: int = 10, root: str = "/photos", **kw: object
) -> FileRecord:
    return FileRecord(path=f"{root}/{name}", root=root, size=size, mtime_ns=1_000, item_id=item, **kw)


def test_opens_in_wal_mode_and_creates_the_parent(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "ledger.sqlite"
    Ledger(path).close()
    db = sqlite3.connect(path)  # WAL mode is a property of the file, so a plain connection sees it
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_lookup_returns_what_was_recorded(ledger: Ledger) -> None:
    assert ledger.lookup("/photos/cat.jpg") is None
    ledger.record_files([_record("cat.jpg", caption_sig="5:7", sha256="abc", scan_id="s1")])
    found = ledger.lookup("/photos/cat.jpg")
    assert found is not None
    assert (found.root, found.size, found.mtime_ns, found.caption_sig) == ("/photos", 10, 1_000, "5:7")
    assert (found.sha256, found.item_id, found.scan_id) == ("abc", "item-a", "s1")
    assert found.updated_at is not None


def test_recording_again_updates_and_keeps_the_scan_id(ledger: Ledger) -> None:
    ledger.record_files([_record("cat.jpg", scan_id="s1")])
    ledger.record_files([_record("cat.jpg", item="item-b", size=99)])
    found = ledger.lookup("/photos/cat.jpg")
    assert (found.item_id, found.size, found.scan_id) == ("item-b", 99, "s1")


def test_sweep_removes_and_returns_only_unseen_files_under_the_root(ledger: Ledger) -> None:
    ledger.record_files(
        [_record("kept.jpg"), _record("gone.jpg", item="item-g"), _record("other.jpg", root="/elsewhere")]
    )
    ledger.mark_seen(["/photos/kept.jpg"], "scan-2")
    removed = ledger.sweep("/photos", "scan-2")
    assert [r.path for r in removed] == ["/photos/gone.jpg"]
    assert removed[0].item_id == "item-g"
    assert ledger.lookup("/photos/gone.jpg") is None
    assert ledger.lookup("/photos/kept.jpg") is not None
    assert ledger.lookup("/elsewhere/other.jpg") is not None  # another root is not this scan's business
    assert ledger.sweep("/photos", "scan-2") == []


def test_paths_for_item_lists_every_copy(ledger: Ledger) -> None:
    ledger.record_files([_record("b.jpg"), _record("a.jpg"), _record("c.jpg", item="item-c")])
    assert ledger.paths_for_item("item-a") == ["/photos/a.jpg", "/photos/b.jpg"]
    assert ledger.paths_for_item("nothing") == []


def test_failures_count_attempts_and_clear(ledger: Ledger) -> None:
    ledger.record_failure("/photos/x.jpg", "truncated", "cut short")
    ledger.record_failure("/photos/x.jpg", "truncated", "still cut short")
    ledger.record_failure("m.csv:3", "outside-allowed-roots", "../secret.jpg")
    failures = {f.origin: f for f in ledger.failures()}
    assert failures["/photos/x.jpg"].attempts == 2
    assert failures["/photos/x.jpg"].detail == "still cut short"
    assert failures["/photos/x.jpg"].first_at <= failures["/photos/x.jpg"].last_at
    assert ledger.failure_counts() == {"outside-allowed-roots": 1, "truncated": 1}
    ledger.clear_failure("/photos/x.jpg")
    assert [f.origin for f in ledger.failures()] == ["m.csv:3"]
    ledger.clear_failure("never-failed")  # clearing what is not there is fine


def test_huge_failure_details_are_bounded(ledger: Ledger) -> None:
    ledger.record_failure("o", "unreadable", "x" * 1_000_000)
    assert len(ledger.failures()[0].detail) <= 2000


def test_cursors(ledger: Ledger) -> None:
    assert ledger.get_cursor("feed") is None
    ledger.set_cursor("feed", "offset:10")
    ledger.set_cursor("feed", "offset:20")
    assert ledger.get_cursor("feed") == "offset:20"


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as first:
        first.record_files([_record("cat.jpg")])
        first.record_failure("o", "empty", "zero bytes")
        first.set_cursor("feed", "7")
    with Ledger(path) as second:
        assert second.lookup("/photos/cat.jpg") is not None
        assert second.failure_counts() == {"empty": 1}
        assert second.get_cursor("feed") == "7"


def test_a_failed_batch_records_nothing(ledger: Ledger) -> None:
    def records() -> object:
        yield _record("first.jpg")
        raise RuntimeError("source broke mid-batch")

    with pytest.raises(RuntimeError):
        ledger.record_files(records())
    assert ledger.lookup("/photos/first.jpg") is None


def test_committed_records_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    script = (
        "import os, sys; from pathlib import Path; from indexer.ledger import Ledger, FileRecord\n"
        "ledger = Ledger(Path(sys.argv[1]))\n"
        "ledger.record_files([FileRecord(path='/p/a.jpg', root='/p', size=1, mtime_ns=2, item_id='i')])\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=False, cwd=Path(__file__).parents[2])
    with Ledger(path) as reopened:
        assert reopened.lookup("/p/a.jpg") is not None


def test_can_be_handed_to_another_thread(ledger: Ledger) -> None:
    worker = threading.Thread(target=lambda: ledger.record_files([_record("t.jpg")]))
    worker.start()
    worker.join()
    assert ledger.lookup("/photos/t.jpg") is not None


def test_refuses_a_file_that_is_not_a_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(LedgerError, match="not a usable ledger"):
        Ledger(path)


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer"):
        Ledger(path)
