"""Read-only commands that `topics serve` runs for the thin client (cli/client.py).

A `topics search` in a new process spends most of its time importing (typer, rich, pydantic, numpy)
before it reaches the store. When a service owns the data dir, the client hands it the argv instead:
the service parses it with the same typer app, runs the command on its own open index (the model is
already loaded), and returns what the command printed and its exit code. Output is rendered for the
client's terminal width and colour, so it matches what the command prints when run directly.
"""

from __future__ import annotations

import io
import logging
import traceback
from collections.abc import Callable
from functools import cache
from typing import Any

import typer

from cli import render
from cli.client import SERVED
from cli.context import serving
from indexer.index import Index

log = logging.getLogger(__name__)


@cache
def _command() -> Any:  # typer's (vendored) click command
    from cli.app import app

    return typer.main.get_command(app)


def runner(open_index: Callable[[], Index]) -> Callable[..., dict[str, Any]]:
    """The `cli` command of the control socket: run one argv here and return its output and exit code."""

    def run(argv: list[str], *, width: int = 80, color: bool = False) -> dict[str, Any]:
        if not argv or argv[0] not in SERVED:
            raise ValueError(f"topics serve does not run {argv[:1]} for other processes")
        stdout, stderr = io.StringIO(), io.StringIO()
        with render.captured(stdout, stderr, width=width, color=color), serving(open_index):
            code = _invoke(argv, stderr)
        return {"stdout": stdout.getvalue(), "stderr": stderr.getvalue(), "code": code}

    return run


def _invoke(argv: list[str], stderr: io.StringIO) -> int:
    try:
        code = _command().main(args=argv, prog_name="topics", standalone_mode=False)
    except typer.Abort:
        return 1
    except typer.TyperException as error:  # a usage error: the message click prints, exit 2
        if hasattr(error, "show"):
            error.show(file=stderr)
        else:
            stderr.write(f"error: {error}\n")
        return getattr(error, "exit_code", 2)
    except Exception:  # a bug: the traceback goes to the client, as it would in its own process
        log.exception("served command %s failed", argv[:1])
        stderr.write(traceback.format_exc())
        return 1
    return code if isinstance(code, int) else 0
