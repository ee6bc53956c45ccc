"""`backup` / `restore` of an embedded data dir, and what server snapshots need."""

from __future__ import annotations

import io
import json
import sqlite3
import tarfile
import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer.backup import backup, backup_held, copy_sqlite, restore, snapshot_server
from indexer.config import Settings, load_settings
from indexer.ledger import Ledger
from indexer.store import EdgeBackend, QdrantBackend
from indexer.store.base import CollectionSchema, Point, StoreError, StoreLocked
from indexer.store.shared import StoreServer

DIM = 8


def _points(n: int, seed: int, payload: dict | None = None) -> list[Point]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        Point(str(uuid.UUID(int=seed * 10_000 + k + 1)), {"image": vectors[k]}, {"n": k, **(payload or {})})
        for k in range(n)
    ]


def _fill(settings: Settings) -> dict[str, int]:
    """A data dir with both collections, a ledger with a failure, online state and a tile."""
    backend = EdgeBackend(settings.data_dir / "store")
    try:
        for name, n in (("items", 120), ("topics", 7)):
            store = backend.collection(name)
            store.ensure(CollectionSchema(vectors={"image": DIM}, identity={"model": "m", "of": name}))
            store.upsert(_points(n, seed=len(name)))
    finally:
        backend.close()  # closed without a flush: close must leave a loadable shard
    ledger = Ledger(settings.ledger_path)
    ledger.record_failure("/photos/bad.jpg", "decode", "truncated")
    ledger.set_cursor("feed:x", "42")
    ledger.close()
    (settings.data_dir / "online").mkdir()
    (settings.data_dir / "online" / "state.npz").write_bytes(b"state-bytes")
    (settings.data_dir / "tiles").mkdir()
    (settings.data_dir / "tiles" / "topic-0.jpg").write_bytes(b"jpeg")
    return {"items": 120, "topics": 7}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


def _read_back(data_dir: Path) -> tuple[dict[str, int], dict[str, int], str | None, bytes]:
    backend = EdgeBackend(data_dir / "store")
    try:
        counts = {n: backend.collection(n).count() for n in ("items", "topics")}
        some = backend.collection("items").retrieve([str(uuid.UUID(int=5 * 10_000 + 3))], vectors=True)
        assert some[0].payload == {"n": 2}
    finally:
        backend.close()
    ledger = Ledger(data_dir / "ledger.sqlite")
    try:
        failures, cursor = ledger.failure_counts(), ledger.get_cursor("feed:x")
    finally:
        ledger.close()
    return counts, failures, cursor, (data_dir / "online" / "state.npz").read_bytes()


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "tar.gz"])
def test_backup_then_restore_into_an_empty_data_dir(
    settings: Settings, tmp_path: Path, archive: bool
) -> None:
    counts = _fill(settings)
    made = backup(settings, tmp_path / "backups", archive=archive)
    assert made.kind == "embedded" and made.counts == counts and made.size_bytes > 0
    assert made.contents == ("store/items", "store/topics", "ledger.sqlite", "online", "tiles")
    assert made.path.name.startswith("topics-backup-") and made.path.name.endswith(".tar.gz") == archive
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [made.path.name]  # no partial left

    restored = restore(made.path, tmp_path / "elsewhere")
    assert restored.counts == counts
    assert _read_back(tmp_path / "elsewhere") == (counts, {"decode": 1}, "42", b"state-bytes")
    assert (tmp_path / "elsewhere" / "tiles" / "topic-0.jpg").read_bytes() == b"jpeg"
    sizes = {f.relative_to(settings.data_dir): f.stat().st_size for f in settings.data_dir.rglob("wal/*")}
    assert sizes and all((tmp_path / "elsewhere" / f).stat().st_size == n for f, n in sizes.items())
    assert not list((tmp_path / "elsewhere").glob(".restore*"))
    assert _read_back(settings.data_dir)[0] == counts  # the source is untouched and unlocked


def test_backup_is_refused_while_another_process_owns_the_store(settings: Settings, tmp_path: Path) -> None:
    _fill(settings)
    owner = EdgeBackend(settings.data_dir / "store")
    owner.collection("items")  # holds the lock, offers no control socket
    try:
        with pytest.raises(StoreLocked, match="owned by process"):
            backup(settings, tmp_path / "backups")
    finally:
        owner.close()
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir())


def test_backup_goes_through_the_owner_when_it_offers_one(settings: Settings, tmp_path: Path) -> None:
    counts = _fill(settings)
    owner = EdgeBackend(settings.data_dir / "store")

    def take(dest: str, archive: bool) -> dict:
        return backup_held(owner, settings, Path(dest), archive=archive).as_dict()

    server = StoreServer(owner, settings.data_dir, extra={"backup": take})
    try:
        made = backup(settings, tmp_path / "backups", archive=True)
    finally:
        server.close()
        owner.close()
    assert made.counts == counts and made.path.is_file()


def test_an_owner_without_backups_is_named_in_the_refusal(settings: Settings, tmp_path: Path) -> None:
    _fill(settings)
    owner = EdgeBackend(settings.data_dir / "store")
    owner.collection("items")
    server = StoreServer(owner, settings.data_dir, extra={})
    try:
        with pytest.raises(StoreLocked, match="takes no backups; stop it"):
            backup(settings, tmp_path / "backups")
    finally:
        server.close()
        owner.close()


def test_restore_refuses_a_data_dir_that_holds_a_store(settings: Settings, tmp_path: Path) -> None:
    _fill(settings)
    made = backup(settings, tmp_path / "backups")
    with pytest.raises(FileExistsError, match="restore into an empty data dir"):
        restore(made.path, settings.data_dir)
    assert _read_back(settings.data_dir)[0] == {"items": 120, "topics": 7}


def test_restore_refuses_what_is_not_a_backup(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(StoreError, match="not a topics backup"):
        restore(tmp_path / "folder", tmp_path / "a")
    with pytest.raises(FileNotFoundError, match="neither a backup folder"):
        restore(tmp_path / "missing.tar.gz", tmp_path / "b")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        member = tarfile.TarInfo("../escaped.txt")
        member.size = 3
        tar.addfile(member, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="refused archive member"):
        restore(evil, tmp_path / "c")
    assert not (tmp_path / "escaped.txt").exists()


def test_restore_checks_the_counts_the_manifest_promises(settings: Settings, tmp_path: Path) -> None:
    _fill(settings)
    made = backup(settings, tmp_path / "backups")
    manifest = json.loads((made.path / "manifest.json").read_text())
    manifest["counts"]["items"] += 1
    (made.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="holds"):
        restore(made.path, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere" / "store").exists()


def test_a_second_backup_in_the_same_second_is_refused(settings: Settings, tmp_path: Path) -> None:
    _fill(settings)
    backend = EdgeBackend(settings.data_dir / "store")
    try:
        from datetime import UTC, datetime

        at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
        first = backup_held(backend, settings, tmp_path / "b", now=at)
        assert first.path.name == "topics-backup-20250102T030405Z"
        with pytest.raises(FileExistsError):
            backup_held(backend, settings, tmp_path / "b", now=at)
    finally:
        backend.close()


def test_sqlite_copy_is_consistent_while_a_writer_holds_a_transaction(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "a.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    db.execute("BEGIN")
    db.execute("INSERT INTO t VALUES (-1)")  # not committed: must not be in the copy
    copy_sqlite(tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    db.execute("ROLLBACK")
    db.close()
    copy = sqlite3.connect(tmp_path / "b.sqlite")
    assert copy.execute("SELECT count(*), min(x) FROM t").fetchone() == (100, 0)
    copy.close()


def test_server_snapshots_need_a_server(store_dir: Path) -> None:
    """qdrant-client's local mode has no snapshots (the server path runs in test_server_e2e.py)."""
    local = QdrantBackend.local(store_dir)
    try:
        local.collection("items").ensure(CollectionSchema(vectors={"image": DIM}, identity={"m": 1}))
        with pytest.raises(StoreError, match="local mode has no snapshots"):
            snapshot_server(local)
    finally:
        local.close()


def test_memory_store_has_nothing_to_back_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to back up"):
        backup(load_settings(store={"backend": "memory"}), tmp_path / "b")
