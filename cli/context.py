"""Opening the index for a command, and turning what a user can fix (`TopicsError`) into one clear line."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import typer
from pydantic import ValidationError

from cli import render
from indexer.config import load_settings
from indexer.errors import TopicsError
from indexer.index import Index

# Inside `topics serve`, commands run for a client open the service's own index (see cli/served.py).
_served_index: ContextVar[Callable[[], Index] | None] = ContextVar("served_index", default=None)


@contextmanager
def open_context(*, damaged_ok: bool = False) -> Iterator[Index]:
    """The index configured by env `TOPICS_*` and topics.toml (in `topics serve`: the service's).

    `damaged_ok` (`topics status`): a damaged collection is left unopened instead of refused."""
    served = _served_index.get()
    index = served() if served else Index(load_settings(), damaged_ok=damaged_ok)
    try:
        yield index
    finally:
        index.close()


@contextmanager
def user_errors() -> Iterator[None]:
    """What a user can fix (`TopicsError`: bad input, nothing there yet, a refused store, a missing
    model) prints its one line and exits 1; bad settings exit 2. Anything else is a bug and propagates
    with its traceback, whatever its type: a `KeyError` from a bug must not read like a user's mistake."""
    try:
        yield
    except ValidationError as error:
        _die(f"invalid settings: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}", 2)
    except TopicsError as error:
        _die(str(error), 1)


def _die(message: str, code: int) -> None:
    render.echo(f"error: {message}", to_stderr=True)
    raise typer.Exit(code)


@contextmanager
def serving(open_index: Callable[[], Index]) -> Iterator[None]:
    """Commands run in this thread open their index with `open_index` instead of from settings."""
    token = _served_index.set(open_index)
    try:
        yield
    finally:
        _served_index.reset(token)
