"""`topics`: the command line. Each command parses, calls one library function, renders.

Exit codes: 0 ok, 1 failure (including "some items failed"), 2 usage.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.context import open_context, user_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (stable schema).")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Incremental multimodal topics over image/caption streams, stored in Qdrant."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Folders and manifests (.csv, .jsonl, .ndjson).")],
    namespace: Annotated[str | None, typer.Option(help="Id namespace for manifest rows.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed every image/caption pair under PATHS into the store, exactly once."""
    from indexer.ingest import ingest_paths

    with user_errors(), open_context() as index, render.progress(not as_json) as advance:
        summary = ingest_paths(index, paths, namespace=namespace, progress=advance)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        render.summary(summary)
    raise typer.Exit(0 if summary.ok else 1)


def main() -> None:
    app()
