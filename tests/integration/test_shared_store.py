"""The store owner serves other processes through a user-only, authenticated local socket."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from multiprocessing.connection import AuthenticationError, Client
from pathlib import Path

import numpy as np
import pytest

from indexer.config import load_settings
from indexer.store import open_backend
from indexer.store.base import CollectionSchema, Filter, IdentityMismatch, Point, StoreLocked
from indexer.store.shared import CONTROL_FILE, KEY_FILE, RemoteBackend, StoreServer, open_backend_or_owner
from tests.helpers import ROOT

SCHEMA = CollectionSchema(vectors={"v": 4}, identity={"model": "m1"}, indexes={"n": "integer"})


def _points(n: int) -> list[Point]:
    rng = np.random.default_rng(0)
    return [
        Point(
            id=f"00000000-0000-0000-0000-{i:012d}",
            vectors={"v": rng.normal(size=4).astype(np.float32)},
            payload={"n": i % 3},
        )
        for i in range(n)
    ]


@pytest.fixture
def owner(tmp_path: Path):
    settings = load_settings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    backend = open_backend(settings)
    backend.collection("items"), backend.collection("topics")  # the owner holds the locks, as serve does
    server = StoreServer(backend, settings.data_dir, extra={"hello": lambda: "owner here"})
    yield settings
    server.close()
    backend.close()


def test_a_second_process_reaches_the_store_through_its_owner(owner) -> None:
    remote = open_backend_or_owner(owner)
    assert isinstance(remote, RemoteBackend)
    items = remote.collection("items")
    items.ensure(SCHEMA)
    items.upsert(_points(2500))
    items.flush()
    assert items.count() == 2500
    assert items.count(Filter(must={"n": 1})) == 833
    batches = list(items.scroll(batch=1000))
    assert [len(b) for b in batches] == [1000, 1000, 500]
    hits = items.search("v", np.array([1, 0, 0, 0], dtype=np.float32), limit=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score
    assert remote.call_owner("hello") == "owner here"
    remote.close()


def test_owner_errors_reach_the_caller_as_the_same_type(owner) -> None:
    remote = RemoteBackend(owner.data_dir)
    remote.collection("items").ensure(SCHEMA)
    with pytest.raises(IdentityMismatch):
        remote.collection("items").ensure(CollectionSchema(vectors={"v": 4}, identity={"model": "m2"}))
    remote.close()


def test_socket_and_key_are_user_only(owner) -> None:
    for name in (KEY_FILE, CONTROL_FILE):
        assert stat.S_IMODE((owner.data_dir / name).stat().st_mode) == 0o600
    import json

    sock = Path(json.loads((owner.data_dir / CONTROL_FILE).read_text())["socket"])
    assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0


def test_a_wrong_key_is_refused(owner) -> None:
    import json

    sock = json.loads((owner.data_dir / CONTROL_FILE).read_text())["socket"]
    with pytest.raises((AuthenticationError, EOFError, ConnectionError)):
        Client(sock, family="AF_UNIX", authkey=b"not the key")
    remote = RemoteBackend(owner.data_dir)  # the owner keeps serving after a refusal
    remote.collection("items").ensure(SCHEMA)
    remote.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="impersonating another user needs root")
def test_another_user_cannot_connect(owner) -> None:
    code = (
        "import sys, json\n"
        "from multiprocessing.connection import Client\n"
        f"info = json.load(open({str(owner.data_dir / CONTROL_FILE)!r}))\n"
        "try:\n"
        "    Client(info['socket'], family='AF_UNIX', authkey=b'x')\n"
        "except PermissionError:\n"
        "    sys.exit(7)\n"
        "sys.exit(0)\n"
    )
    os.chmod(owner.data_dir, 0o755)  # let the other user reach the files, so only their modes decide
    os.chmod(owner.data_dir.parent, 0o755)
    result = subprocess.run(
        [_system_python(), "-c", code], user=65534, group=65534, capture_output=True, text=True, cwd="/"
    )
    assert result.returncode in (7, 1), result.stderr  # 7: socket refused; 1: control file unreadable
    if result.returncode == 1:
        assert "PermissionError" in result.stderr


def test_without_an_owner_a_locked_store_says_who_holds_it(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from indexer.config import load_settings; "
            "from indexer.store import open_backend;"
            f"b = open_backend(load_settings(data_dir={str(settings.data_dir)!r})); b.collection('items');"
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLocked, match=str(holder.pid)):
            open_backend_or_owner(settings)
    finally:
        holder.kill()
        holder.wait()


def _system_python() -> str:
    """A Python another user may execute (the venv's may live under root's home)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no system-wide python3 that another user could run")
