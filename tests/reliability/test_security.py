"""Security points not already covered elsewhere (docs/reliability.md maps the rest).

- manifest rows that point outside the allowed roots never reach the store (end to end, not just the
  reader: tests/unit/test_sources_manifest.py covers the reader);
- remote image URLs to loopback are refused by default before any connection, through the pipeline;
- the control socket refuses another user even when the socket and key are reachable (the SO_PEERCRED
  check behind the file modes);
- the API key of a Qdrant server never appears in logs, reprs, errors or CLI output when it is down.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import traceback
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.ingest import ingest_paths, open_pipeline
from indexer.items import Item
from indexer.store import QdrantBackend
from indexer.store.base import StoreError
from indexer.store.shared import CONTROL_FILE, KEY_FILE, StoreServer
from tests.helpers import draw_image, tiny_env, use_tiny_clip
from tests.loopback import Reply, serving
from tests.reliability.forkserver import ForkServer

API_KEY = "sk-reliability-test-4f2a9c"


def test_manifest_rows_outside_the_allowed_roots_never_reach_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_tiny_clip(monkeypatch)
    secret = draw_image(tmp_path / "secret" / "private.jpg", seed=1)
    inside = draw_image(tmp_path / "export" / "ok.jpg", seed=2)
    (tmp_path / "export" / "link.jpg").symlink_to(secret)
    rows = [
        {"id": "ok", "body": "allowed", "image_file": inside.name},
        {"id": "dotdot", "body": "escape", "image_file": "../secret/private.jpg"},
        {"id": "absolute", "body": "escape", "image_file": str(secret)},
        {"id": "symlink", "body": "escape", "image_file": "link.jpg"},
        {"id": "passwd", "body": "escape", "image_file": "/etc/passwd"},
    ]
    manifest = tmp_path / "export" / "posts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with Index(load_settings()) as index:
        summary = ingest_paths(index, [manifest])
        assert summary.ingested == 1
        assert sorted(reason for _, reason in summary.failures) == ["outside-allowed-roots"] * 4
        paths = {p.payload.get("path") for batch in index.items.scroll() for p in batch}
        assert paths == {str(inside.resolve())}
        assert {f.reason for f in index.ledger.failures()} == {"outside-allowed-roots"}


def test_remote_images_on_loopback_are_refused_by_default_without_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_tiny_clip(monkeypatch)
    with serving() as server, Index(load_settings()) as index:
        png = draw_image(Path(os.devnull).parent / "tmp" / f"sec-{os.getpid()}.png", seed=4, fmt="PNG")
        server.route("/a.png", Reply(body=png.read_bytes(), headers={"Content-Type": "image/png"}))
        png.unlink()
        urls = [server.url("/a.png"), server.url("/a.png").replace("127.0.0.1", "localhost")]
        items = [
            Item(source="feed", origin=f"feed#{i}", image=u, source_id=str(i)) for i, u in enumerate(urls)
        ]
        pipeline = open_pipeline(index)
        try:
            summary = pipeline.ingest_items(items)
        finally:
            pipeline.close()
        assert [reason for _, reason in summary.failures] == ["private-address"] * 2
        assert server.connections == 0
        assert index.items.count() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="connecting as another user needs root")
def test_control_socket_refuses_another_user_holding_the_right_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    top = Path(tempfile.mkdtemp(prefix="topics-peer-"))  # pytest's own tmp tree is root-only
    settings = load_settings(data_dir=top / "data")
    settings.data_dir.mkdir(parents=True)
    backend = QdrantBackend.memory()
    server = StoreServer(backend, settings.data_dir, extra={"hello": lambda: "owner here"})
    try:
        sock = json.loads((settings.data_dir / CONTROL_FILE).read_text())["socket"]
        key = (settings.data_dir / KEY_FILE).read_text().strip()
        for path in (top, settings.data_dir):
            os.chmod(path, 0o755)
        os.chmod(sock, 0o777)  # as if the modes had been loosened: only the uid check is left
        code = (
            "import sys\n"
            "from multiprocessing.connection import Client\n"
            f"conn = Client({sock!r}, family='AF_UNIX', authkey=bytes.fromhex({key!r}))\n"
            "try:\n"
            "    conn.send(('', 'hello', (), {}))\n"
            "    print(conn.recv())\n"
            "except (EOFError, ConnectionError):\n"
            "    sys.exit(7)\n"
        )
        with caplog.at_level(logging.WARNING, logger="indexer.store.shared"):
            done = subprocess.run(
                [_system_python(), "-c", code],
                user=65534,
                group=65534,
                capture_output=True,
                text=True,
                cwd="/",
            )
        assert done.returncode == 7, (done.stdout, done.stderr)
        assert "owner here" not in done.stdout
        assert "refused a connection from another user" in caplog.text
    finally:
        server.close()
        backend.close()
        shutil.rmtree(top, ignore_errors=True)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_api_key_never_logged_when_the_server_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with caplog.at_level(logging.DEBUG):
        backend = QdrantBackend.server(url, API_KEY, timeout_s=2)
        items = backend.collection("items")
        with pytest.raises(StoreError) as caught:
            items.exists()
        backend.close()
    chain = "".join(traceback.format_exception(caught.value))
    for text in (caplog.text, repr(backend), repr(items), str(caught.value), chain):
        assert API_KEY not in text
    settings = load_settings(store={"url": url, "api_key": API_KEY})
    assert API_KEY not in repr(settings) and API_KEY not in str(settings.model_dump())


def test_cli_with_a_server_down_prints_no_api_key(tmp_path: Path, forkserver: ForkServer) -> None:
    env = tiny_env(
        tmp_path / "data",
        TOPICS_STORE__URL=f"http://127.0.0.1:{_closed_port()}",
        TOPICS_STORE__API_KEY=API_KEY,
        TOPICS_STORE__TIMEOUT_S="2",
    )
    log = tmp_path / "cli.log"
    for argv in (
        ["-v", "status"],
        ["-v", "ingest", str(draw_image(tmp_path / "in" / "a.jpg", seed=3).parent)],
    ):
        code, out = forkserver.run(argv, env, log)
        assert code == 1, out
        assert API_KEY not in out
        assert "Traceback" not in out and "error" in out.lower()


def _system_python() -> str:
    """A Python another user may execute (the venv's may live under root's home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no system-wide python3 that another user could run")
