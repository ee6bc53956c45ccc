"""A fork server for `topics` commands: import torch and the CLI once, then fork a process per command.

Crash tests kill `topics serve` twenty times. A fresh interpreter spends most of its start importing
torch and open_clip (6 s on a quiet 2-core machine, 30 s on a loaded one), which would dwarf the test.
This server pays the imports once; each command is then a forked child that runs exactly what the
`topics` entry point runs (`cli.app.main` with the command's argv and environment) in a process of its
own, which a test can `kill -9` like any other. Nothing of the command runs in the server before the
fork: settings, stores, models and threads are all created in the child.

Protocol (one JSON object per line on stdin, one answer per line on stdout):
``{"op": "spawn", "argv": [...], "env": {...}, "cwd": "...", "log": "path"}`` -> ``{"pid": N}``;
``{"op": "wait", "pid": N, "timeout": s}`` -> ``{"status": code}`` (negative: killed by that signal,
null: still running after the timeout).

Run it as ``python tests/reliability/forkserver.py``; the client side is :class:`ForkServer`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _preload() -> None:
    """Import what every command needs, without running any of it (no threads may exist at fork)."""
    import open_clip  # noqa: F401
    import torch  # noqa: F401

    import cli.app  # noqa: F401
    import indexer.embed.clip  # noqa: F401
    import topics.query.browse
    import topics.query.search
    import topics.query.status
    import topics.represent.from_store
    import topics.service.jobs
    import topics.service.serve  # noqa: F401

    if threading.active_count() != 1:
        raise RuntimeError(f"imports started threads: {threading.enumerate()}; forking would be unsafe")


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the command. Never returns."""
    code = 1
    try:
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request.get("cwd") or ROOT)
        for name, value in request.get("patch", {}).items():  # test-only module constants
            module, attr = name.rsplit(".", 1)
            setattr(sys.modules[module], attr, value)
        sys.argv = ["topics", *request["argv"]]
        from cli.app import main

        main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


_EXITED: dict[int, int] = {}  # reaped children's exit codes: a second wait gets the same answer


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while pid not in _EXITED:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _EXITED[pid] = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    return _EXITED[pid]


def serve_forever() -> None:
    """The server loop: read a request, answer it, until stdin closes."""
    _preload()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(request)
            answer: dict[str, Any] = {"pid": pid}
        else:
            answer = {"status": _wait(int(request["pid"]), float(request.get("timeout", 60)))}
        print(json.dumps(answer), flush=True)


class ForkServer:
    """The client: starts the server process and asks it for commands (one caller at a time)."""

    def __init__(self, env: dict[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self._lock = threading.Lock()
        ready = self._read()
        if "ready" not in ready:
            raise RuntimeError(f"fork server failed to start: {ready}")

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server exited ({self._proc.wait()})")
        return json.loads(line)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            return self._read()

    def spawn(
        self, argv: list[str], env: dict[str, str], log: Path, patch: dict[str, Any] | None = None
    ) -> int:
        """Start `topics ARGV` in a forked child with `env`; its stdout and stderr go to `log`."""
        return self._ask({"op": "spawn", "argv": argv, "env": env, "log": str(log), "patch": patch or {}})[
            "pid"
        ]

    def wait(self, pid: int, timeout: float = 60.0) -> int | None:
        """The child's exit code (negative: the signal that killed it), None if still running."""
        return self._ask({"op": "wait", "pid": pid, "timeout": timeout})["status"]

    def run(self, argv: list[str], env: dict[str, str], log: Path, timeout: float = 120.0) -> tuple[int, str]:
        """Run a command to its end: (exit code, what it printed)."""
        start = log.stat().st_size if log.exists() else 0
        pid = self.spawn(argv, env, log)
        code = self.wait(pid, timeout)
        if code is None:
            os.kill(pid, 9)
            self.wait(pid)
            raise TimeoutError(f"topics {' '.join(argv)} ran over {timeout} s")
        return code, log.read_bytes()[start:].decode(errors="replace")  # `start` counts bytes, not characters

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    serve_forever()
