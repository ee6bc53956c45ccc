"""The `topics` entry point: a thin client for `topics serve`, else the full command line (cli/app.py).

Read-only commands (list, show, exemplars, history, search, status) are handed to a running
`topics serve` when one owns the data dir: it has the store open and the model loaded, so a search
costs the query alone instead of half a second of imports. This module imports only the standard
library; any doubt (no service, an old service, an option that reads local files, --help) falls back
to running the command here, which gives the same output.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Commands that only read the store and print; cli/served.py refuses any other.
SERVED = frozenset({"list", "show", "exemplars", "history", "search", "status"})
# Options that name local files or act on this machine's desktop, and help: always run here.
LOCAL_OPTIONS = frozenset({"--image", "--open", "--help"})
# As in indexer.store.shared, which this module cannot import (pydantic); a test checks they agree.
CONTROL_FILE, KEY_FILE = "control.json", "control.key"


def main() -> None:
    argv = sys.argv[1:]
    answer = ask_service(argv) if forwardable(argv) else None
    if answer is None:
        from cli.app import main as run_here

        run_here()
        return
    try:
        sys.stdout.write(answer["stdout"])
        sys.stdout.flush()
    except BrokenPipeError:  # `topics list | head -1`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    sys.stderr.write(answer["stderr"])
    raise SystemExit(answer["code"])


def forwardable(argv: list[str]) -> bool:
    """Whether `topics serve` may run this command line for us."""
    if os.environ.get("TOPICS_CLIENT", "").lower() in {"0", "off", "false", "no"}:
        return False
    return bool(argv) and argv[0] in SERVED and not any(a.split("=")[0] in LOCAL_OPTIONS for a in argv)


def data_dir() -> Path:
    """The data dir as `indexer.config.Settings` resolves it: env, then the TOML file, then ./data."""
    for key, value in os.environ.items():
        if key.lower() == "topics_data_dir":
            return Path(value).expanduser()
    config = Path(os.environ.get("TOPICS_CONFIG", "topics.toml"))
    if config.is_file():
        import tomllib

        with config.open("rb") as f:
            value = tomllib.load(f).get("data_dir")
        if value:
            return Path(str(value)).expanduser()
    return Path("./data")


def ask_service(argv: list[str]) -> dict[str, Any] | None:
    """The service's answer (stdout, stderr, code), or None when no service can answer."""
    from multiprocessing.connection import AuthenticationError, Client

    folder = data_dir()
    try:
        info = json.loads((folder / CONTROL_FILE).read_text())
        key = bytes.fromhex((folder / KEY_FILE).read_text().strip())
        os.kill(int(info["pid"]), 0)  # a control file left by a service that died
        with Client(info["socket"], family="AF_UNIX", authkey=key) as conn:
            conn.send(("", "cli", (argv,), _terminal()))
            answer = conn.recv()
    except (OSError, EOFError, ValueError, KeyError, TypeError, AuthenticationError):
        return None
    if answer[0] != "ok":  # e.g. a service from before this client: it has no `cli` command
        return None
    return answer[1]


def _terminal() -> dict[str, Any]:
    """Width and colour of our stdout, for the service to render as rich would render here."""
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size((80, 24)).columns if tty else int(os.environ.get("COLUMNS") or 80)
    color = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    return {"width": width, "color": color}
