"""Damaged state files: each is detected, explained (log and `topics status`), rebuilt from the store,
and none stops `serve`.

The faults: a ledger that is not SQLite, a truncated online state, a damaged vocabulary cache and a
topics pointer that names a run whose records are gone. Each test damages a real data dir the way a
full disk, a bad copy or a restore would, then checks what the program says and does.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.health import CORRUPT_MARK
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.store.base import Filter
from tests.helpers import make_folder, use_tiny_clip
from topics import catalog
from topics.online.pending import state_path
from topics.query.status import status
from topics.service.jobs import assign_online, rebuild_topics
from topics.service.serve import build_service


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A data dir with a folder ingested, one recluster (with keywords) and one online pass saved."""
    use_tiny_clip(monkeypatch)
    settings = load_settings()
    make_folder(tmp_path / "in")
    with Index(settings) as index:
        ingest_paths(index, [tmp_path / "in"])
        rebuild_topics(index)
        assign_online(index)
    assert state_path(settings).exists() and list((settings.data_dir / "cache").glob("vocabulary-*.npz"))
    return settings.data_dir


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _damage_ledger(data_dir: Path) -> None:
    for extra in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (data_dir / extra).unlink(missing_ok=True)
    (data_dir / "ledger.sqlite").write_bytes(b"this is not a database\n" * 300)


def _drop_run_records(index: Index) -> catalog.Run:
    run = catalog.current_run(index.backend)
    index.topics.delete_where(Filter(must_not={"kind": "pointer"}))
    return run


def _warnings(index: Index) -> str:
    return "\n".join(status(index)["warnings"])


def test_a_ledger_that_is_not_sqlite_is_moved_aside_and_refilled_without_duplicates(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _damage_ledger(data_dir)
    with caplog.at_level(logging.WARNING), Index(load_settings()) as index:
        stored = index.items.count()
        assert "ledger.sqlite was damaged (file is not a database)" in caplog.text
        assert "ledger.sqlite was damaged" in _warnings(index)
        summary = ingest_paths(index, [tmp_path / "in"])
        assert (summary.ingested, summary.failed, index.items.count()) == (0, 0, stored)
        assert len(index.ledger.records_under(str(tmp_path / "in"))) == 10  # every item file again
    assert len(list(data_dir.glob(f"ledger.sqlite{CORRUPT_MARK}*.why"))) == 1


def test_a_truncated_online_state_is_rebuilt_from_the_store_and_reported(data_dir: Path) -> None:
    settings = load_settings()
    _truncate(state_path(settings))
    with Index(settings) as index:
        report = assign_online(index)
        assert report["run_id"] == catalog.current_run(index.backend).run_id
        assert "state.npz was damaged" in _warnings(index)
    from topics.online.state import OnlineState

    assert OnlineState.load(state_path(settings)).run_id == report["run_id"]  # a good one saved again


def test_a_damaged_vocabulary_cache_is_embedded_again_and_reported(data_dir: Path) -> None:
    cache = next((data_dir / "cache").glob("vocabulary-*.npz"))
    _truncate(cache)
    with Index(load_settings()) as index:
        rebuild_topics(index)
        assert any(t.keywords for t in catalog.list_topics(index.backend))
        assert f"{cache.name} was damaged" in _warnings(index)
    assert cache.exists()  # written again, whole


def test_a_pointer_to_a_missing_run_is_reported_and_the_next_run_keeps_the_ids(data_dir: Path) -> None:
    with Index(load_settings()) as index:
        before = {t.topic_id: t.size for t in catalog.list_topics(index.backend)}
        run = _drop_run_records(index)
        assert f"names run {run.run_id}, but 0 of its {run.n_topics} topic records" in _warnings(index)
        assert catalog.list_topics(index.backend) == []  # no crash, and status says why
        report = rebuild_topics(index)
        after = {t.topic_id: t.size for t in catalog.list_topics(index.backend)}
        assert report.run_id == run.run_id + 1 and after == before
        assert _warnings(index) == ""


def test_serve_keeps_running_with_every_state_file_damaged(data_dir: Path) -> None:
    settings = load_settings()
    with Index(settings) as index:
        _drop_run_records(index)
    _damage_ledger(data_dir)
    _truncate(state_path(settings))
    _truncate(next((data_dir / "cache").glob("vocabulary-*.npz")))
    service = build_service(settings, [], [])
    try:
        service.run_online()
        assert service.run_recluster()["topics"] > 0
        with Index(settings, backend=service.index.backend) as index:
            warned = _warnings(index)
        for name in ("ledger.sqlite", "state.npz", "vocabulary-"):
            assert name in warned
        assert "pointer" not in warned  # the recluster rebuilt the run
        assert service.status()["last_error"] is None
    finally:
        service.close()
