"""Opening the index for a command, and turning domain errors into one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from pydantic import ValidationError

from indexer.config import load_settings
from indexer.embed.base import ModelUnavailable
from indexer.index import Index
from indexer.store.base import IdentityMismatch, StoreError, StoreLocked


@contextmanager
def open_context() -> Iterator[Index]:
    """The index configured by env `TOPICS_*` and topics.toml."""
    index = Index(load_settings())
    try:
        yield index
    finally:
        index.close()


@contextmanager
def user_errors() -> Iterator[None]:
    """Known failures print one line and exit 1; bad settings exit 2. Bugs still show a traceback."""
    try:
        yield
    except ValidationError as error:
        _die(f"invalid settings: {error.errors()[0]['loc']}: {error.errors()[0]['msg']}", 2)
    except (StoreLocked, IdentityMismatch, ModelUnavailable, StoreError) as error:
        _die(str(error), 1)
    except RuntimeError as error:  # domain errors of the jobs (no items yet, service already running)
        if type(error).__module__.split(".")[0] not in {"indexer", "topics"}:
            raise
        _die(str(error), 1)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError, LookupError) as error:
        _die(str(error), 1)


def _die(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
