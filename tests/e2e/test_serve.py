"""`topics serve` as a real subprocess: watched folder, feeds, queries through the owner, kill -9, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.items import id_from_content, id_from_source, sha256_bytes
from indexer.store.shared import CONTROL_FILE, RemoteBackend
from tests.helpers import ROOT, draw_image, run_cli, start_serve, tiny_env, wait_for
from tests.loopback import Reply, serving

pytestmark = pytest.mark.slow

FAST = {
    "TOPICS_WATCH__SETTLE_S": "0.2",
    "TOPICS_WATCH__SIDECAR_GRACE_S": "0.3",
    "TOPICS_FETCH__ALLOW_PRIVATE": "true",  # the test's feed server is on loopback
}


def _start(data_dir: Path, args: list[str], **extra: str) -> subprocess.Popen:
    return start_serve(tiny_env(data_dir, **FAST, **extra), args)


def _stored_ids(data_dir: Path) -> list[str]:
    remote = RemoteBackend(data_dir)
    try:
        items = remote.collection("items")
        return [p.id for batch in items.scroll(payload=False) for p in batch] if items.exists() else []
    finally:
        remote.close()


@pytest.fixture
def stop_all() -> Iterator[list[subprocess.Popen]]:
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_dropped_files_become_searchable_and_queries_go_through_serve(tmp_path: Path, stop_all) -> None:
    inbox, data = tmp_path / "inbox", tmp_path / "data"
    draw_image(inbox / "before.jpg", seed=1)
    proc = _start(data, ["--watch", str(inbox)])
    stop_all.append(proc)
    wait_for(lambda: len(_stored_ids(data)) == 1, 60, "the existing file")
    for i in range(5):
        draw_image(inbox / f"new{i}.jpg", seed=10 + i)
        (inbox / f"new{i}.txt").write_text(f"new caption {i}")
    wait_for(lambda: len(_stored_ids(data)) == 6, 60, "the dropped files")

    status = run_cli(["status", "--json"], tiny_env(data))
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert info["store"]["via_service"] is True
    assert info["items"] == 6
    assert info["service"]["pid"] == proc.pid
    assert info["service"]["watching"] == [str(inbox.resolve())]

    # --image names a file relative to *this* process's folder, not the service's (it runs in ROOT)
    query = subprocess.run(
        [sys.executable, "-m", "cli", "search", "--image", "new1.jpg", "--limit", "6", "--json"],
        env=tiny_env(data),
        cwd=inbox,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert query.returncode == 0, query.stderr
    found = json.loads(query.stdout)
    items = [*(i for t in found["topics"] for i in t["items"]), *found["unassigned"]]
    by_path = {i["path"]: i for i in items}
    assert by_path[str((inbox / "new1.jpg").resolve())]["views"]["image"] > 0.99  # the query was new1.jpg

    (inbox / "new0.jpg").unlink()
    (inbox / "new0.txt").unlink()  # alone, the sidecar would stay on as a caption-only item
    wait_for(lambda: len(_stored_ids(data)) == 5, 60, "the deleted file to leave the store")


def test_a_second_serve_on_the_same_data_dir_refuses(tmp_path: Path, stop_all) -> None:
    data = tmp_path / "data"
    stop_all.append(_start(data, []))
    second = subprocess.run(
        [sys.executable, "-m", "cli", "serve"],
        env=tiny_env(data),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr and "Traceback" not in second.stderr


def test_kill_9_then_restart_loses_and_duplicates_nothing(tmp_path: Path, stop_all) -> None:
    inbox, data = tmp_path / "inbox", tmp_path / "data"
    paths = [draw_image(inbox / f"img{i:03d}.jpg", seed=i) for i in range(60)]
    proc = _start(data, ["--watch", str(inbox)], TOPICS_INGEST__BATCH_SIZE="4")
    wait_for(lambda: len(_stored_ids(data)) >= 4, 120, "some items")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    restarted = _start(data, ["--watch", str(inbox)])
    stop_all.append(restarted)
    wait_for(lambda: len(_stored_ids(data)) >= 60, 180, "every file after the restart")
    stored = _stored_ids(data)
    expected = {id_from_content(sha256_bytes(p.read_bytes()), None, with_caption=False) for p in paths}
    assert len(stored) == len(set(stored)) == 60 and set(stored) == expected


def test_http_feed_and_jsonl_feed_are_followed(tmp_path: Path, stop_all) -> None:
    data = tmp_path / "data"
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_text(json.dumps({"id": "a1", "text": "first post"}) + "\n")
    feed = [{"id": "h1", "caption": "from the web"}, {"id": "h2", "caption": "also from the web"}]
    with serving() as server:
        server.route(
            "/feed.json", Reply(body=json.dumps(feed).encode(), headers={"Content-Type": "application/json"})
        )
        stop_all.append(_start(data, ["--feed", str(jsonl), "--feed", server.url("/feed.json")]))
        wait_for(lambda: len(_stored_ids(data)) == 3, 60, "the first feed items")
        with jsonl.open("a") as fh:
            fh.write(json.dumps({"id": "a2", "text": "second post"}) + "\n")
        wait_for(lambda: len(_stored_ids(data)) == 4, 60, "the appended line")
    stored = set(_stored_ids(data))
    assert id_from_source("posts", "a2") in stored


def test_sigterm_stops_cleanly_and_releases_the_store(tmp_path: Path, stop_all) -> None:
    data = tmp_path / "data"
    proc = _start(data, [])
    stop_all.append(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert not (data / CONTROL_FILE).exists()
    settings = load_settings(data_dir=data)
    from indexer.store import open_backend

    backend = open_backend(settings)
    backend.collection("items")  # the lock is free again
    backend.close()
