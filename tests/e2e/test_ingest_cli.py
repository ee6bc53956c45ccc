"""`topics ingest` as a user runs it: JSON output, exit codes, and a kill -9 in the middle."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.items import id_from_content, sha256_bytes
from tests.badimages import write_bad_corpus
from tests.helpers import ROOT, draw_image, make_folder, run_cli, tiny_env


def test_ingest_prints_a_json_summary(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "in")
    result = run_cli(["ingest", str(folder), "--json"], tiny_env(tmp_path / "data"))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    fields = {"ingested", "updated", "skipped", "deleted", "failed", "seconds", "failures", "notices"}
    assert set(summary) == fields
    assert (summary["ingested"], summary["failed"], summary["failures"]) == (10, 0, [])


def test_failed_items_give_exit_code_1_and_reasons(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_bad_corpus(folder)
    result = run_cli(["ingest", str(folder), "--json"], tiny_env(tmp_path / "data"))
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["failed"] > 0 and summary["ingested"] > 0
    assert {f["reason"] for f in summary["failures"]} >= {"truncated", "empty", "too-large"}


def test_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(["ingest", str(tmp_path / "nope")], tiny_env(tmp_path / "data"))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no such file or folder")
    assert "Traceback" not in result.stderr


def _ledger_rows(data_dir: Path) -> int:
    try:
        with sqlite3.connect(data_dir / "ledger.sqlite", timeout=1) as db:
            return db.execute("select count(*) from files").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_9_mid_ingest_then_rerun_stores_every_input_once(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    paths = [draw_image(folder / f"img{i:03d}.jpg", seed=i) for i in range(160)]
    data_dir = tmp_path / "data"
    env = tiny_env(
        data_dir,
        TOPICS_INGEST__BATCH_SIZE="4",
        TOPICS_INGEST__DECODE_WORKERS="1",
        TOPICS_INGEST__FLUSH_INTERVAL_S="0",  # ledger rows appear batch by batch, so the kill lands mid-run
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "ingest", str(folder)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while _ledger_rows(data_dir) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _ledger_rows(data_dir) < 160, "the kill came too late to test anything"

    result = run_cli(["ingest", str(folder), "--json"], env)
    assert result.returncode == 0, result.stderr
    os.environ["TOPICS_DATA_DIR"] = str(data_dir)
    expected = {id_from_content(sha256_bytes(p.read_bytes()), None, with_caption=False) for p in paths}
    with Index(load_settings(data_dir=data_dir)) as index:
        stored = [p.id for batch in index.items.scroll(payload=False) for p in batch]
        assert len(stored) == len(set(stored)) == 160
        assert set(stored) == expected
    assert _ledger_rows(data_dir) == 160
