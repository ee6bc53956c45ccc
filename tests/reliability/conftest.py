"""Reliability fixtures: one fork server per session (imports paid once), and a way to drive `serve`."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.store.shared import CONTROL_FILE
from tests.helpers import tiny_env
from tests.reliability.forkserver import ForkServer


@pytest.fixture(scope="session")
def forkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForkServer]:
    server = ForkServer(tiny_env(tmp_path_factory.mktemp("forkserver") / "data"))
    yield server
    server.close()


def owner_pid(data_dir: Path) -> int | None:
    """The pid in the control file (a kill -9 leaves a stale one until the next serve starts)."""
    try:
        return json.loads((data_dir / CONTROL_FILE).read_text())["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Serve:
    """`topics serve` children of the fork server, on one data dir; kills whatever is left at the end."""

    def __init__(self, forkserver: ForkServer, data_dir: Path, log: Path) -> None:
        self.forkserver = forkserver
        self.data_dir = data_dir
        self.log = log
        self.pids: list[int] = []

    def start(self, args: list[str], env: dict[str, str], *, wait: bool = True) -> int:
        pid = self.forkserver.spawn(["serve", *args], env, self.log)
        self.pids.append(pid)
        if wait:
            wait_for(
                lambda: owner_pid(self.data_dir) == pid or self.forkserver.wait(pid, 0) is not None,
                120,
                "serve to start",
            )
            assert owner_pid(self.data_dir) == pid, self.log.read_text()[-3000:]
        return pid

    def kill9(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)
        assert self.forkserver.wait(pid, 30) == -signal.SIGKILL

    def stop(self, pid: int) -> int | None:
        os.kill(pid, signal.SIGTERM)
        return self.forkserver.wait(pid, 60)

    def cleanup(self) -> None:
        for pid in self.pids:
            if self.forkserver.wait(pid, 0) is None:
                os.kill(pid, signal.SIGKILL)
                self.forkserver.wait(pid, 30)


@pytest.fixture
def serve(forkserver: ForkServer, tmp_path: Path) -> Iterator[Serve]:
    running = Serve(forkserver, tmp_path / "data", tmp_path / "serve.log")
    yield running
    running.cleanup()
