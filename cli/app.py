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
from indexer.config import load_settings

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


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """The store, counts, pending items, failures by reason, model, last and next recluster, service."""
    from topics.status import status as get_status

    with user_errors(), open_context() as index:
        info = get_status(index)
    if as_json:
        typer.echo(json.dumps(info, sort_keys=True, default=str))
    else:
        render.status(info)


@app.command()
def recluster(as_json: JsonOpt = False) -> None:
    """Rebuild topics from every stored vector now (in `topics serve` when it owns the store)."""
    from topics.rebuild import recluster_anywhere

    with user_errors(), open_context() as index:
        report = recluster_anywhere(index)
    if as_json:
        typer.echo(json.dumps(report, sort_keys=True))
    else:
        render.recluster(report)


@app.command()
def serve(
    watch: Annotated[list[Path] | None, typer.Option("--watch", help="Folder to scan, then watch.")] = None,
    feed: Annotated[
        list[str] | None,
        typer.Option("--feed", help="JSONL file to follow, '-' for stdin, or an http(s) feed."),
    ] = None,
) -> None:
    """Ingest continuously, recluster on schedule, assign new items online; owns the embedded store."""
    from indexer.daemon import FeedSpec
    from topics.service import build_service

    with user_errors():
        for folder in watch or []:
            if not folder.is_dir():
                raise NotADirectoryError(f"--watch {folder}: not a folder")
        feeds = [FeedSpec.parse(f) for f in feed or []]
        service = build_service(load_settings(), list(watch or []), feeds)
    render.err.print(f"topics serve: pid {__import__('os').getpid()}, data dir {service.settings.data_dir}")
    service.run()


def main() -> None:
    app()
