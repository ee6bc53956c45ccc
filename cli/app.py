"""`topics`: the command line. Each command parses, calls one library function, renders.

Exit codes: 0 ok, 1 failure (including "some items failed"), 2 usage.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cli import render, research, served
from cli.context import open_context, user_errors
from indexer.config import load_settings
from topics.errors import NotAFolder

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n")[0])

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (stable schema).")]
REF_HELP = "A topic id (12) or a theme id (T3) from `topics list`."


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
    caption: Annotated[
        list[str] | None,
        typer.Option("--caption", help="Manifest column of the caption; repeat to join several, in order."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Embed every image/caption pair under PATHS into the store, exactly once."""
    from indexer.ingest import ingest_paths

    with user_errors(), open_context() as index, render.progress(not as_json) as advance:
        summary = ingest_paths(
            index, paths, namespace=namespace, progress=advance, caption_columns=caption or ()
        )
    if as_json:
        render.echo(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        render.summary(summary)
    raise typer.Exit(0 if summary.ok else 1)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """The store, counts, pending items, failures by reason, model, last and next recluster, service."""
    from topics.query.status import status as get_status

    with user_errors(), open_context(damaged_ok=True) as index:
        info = get_status(index)
    if as_json:
        render.echo(json.dumps(info, sort_keys=True, default=str))
    else:
        render.status(info)


@app.command()
def recluster(as_json: JsonOpt = False) -> None:
    """Rebuild topics from every stored vector now (in `topics serve` when it owns the store)."""
    from topics.service.jobs import recluster_anywhere

    with user_errors(), open_context() as index, render.phases(not as_json, "recluster") as step:
        report = recluster_anywhere(index, step)
    if as_json:
        render.echo(json.dumps(report, sort_keys=True))
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
    from indexer.sources import check_storable_path
    from topics.service.serve import build_service

    with user_errors():
        for folder in watch or []:
            check_storable_path(folder)
            if not folder.is_dir():
                raise NotAFolder(f"--watch {folder}: not a folder")
        feeds = [FeedSpec.parse(f) for f in feed or []]
        service = build_service(load_settings(), list(watch or []), feeds)
    service.offer("cli", served.runner(service.served_index))  # read-only commands of cli/client.py
    render.err.print(f"topics serve: pid {__import__('os').getpid()}, data dir {service.settings.data_dir}")
    site = _start_web(service)
    try:
        with user_errors():  # a store built with another model is refused once it answers
            service.run()
    finally:
        if site is not None:
            site.stop()


def _start_web(service):  # -> web.server.WebServer | None
    """The web interface on `web.host:web.port`, sharing the service's store; None when it is off or
    cannot listen (the service runs on without it, and says so)."""
    if not service.settings.web.enabled:
        return None
    from web.server import WebServer, WebUnavailable

    site = WebServer(service.served_index, service.settings)
    try:
        site.start()
    except WebUnavailable as error:
        render.err.print(f"{error}; serving without the web interface", markup=False)
        return None
    render.err.print(f"topics serve: web interface at {site.open_url}", markup=False, soft_wrap=True)
    return site


@app.command("list")
def list_(
    sort: Annotated[str, typer.Option(help="id, size, change or label.")] = "size",
    status: Annotated[str | None, typer.Option(help="active, emerging or vanished.")] = None,
    min_size: Annotated[int, typer.Option(help="Only topics at least this large.")] = 0,
    flat: Annotated[bool, typer.Option("--flat", help="Topics only, without their themes.")] = False,
    hidden: Annotated[bool, typer.Option("--hidden", help="Also hidden and merged-away ones.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The current themes with their topics nested: id, label, size, change since the last run, status."""
    from topics.query.browse import list_topics, list_tree

    if sort not in ("id", "size", "change", "label"):
        raise typer.BadParameter("sort by id, size, change or label", param_hint="--sort")
    with user_errors(), open_context() as index:
        listed = list_topics if flat else list_tree
        found = listed(index, sort=sort, status=status, min_size=min_size, include_hidden=hidden)  # type: ignore[arg-type,operator]
    _emit(found, as_json, render.topic_list if flat else render.theme_tree)


def _ref(text: str, hint: str = "ID"):
    from topics.query.browse import parse_ref

    try:
        return parse_ref(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=hint) from None


@app.command()
def show(topic_id: Annotated[str, typer.Argument(metavar="ID", help=REF_HELP)], as_json: JsonOpt = False):
    """One topic or theme: label, words with scores, keywords, exemplars, size history, lineage."""
    from topics.query.browse import show as show_ref

    ref = _ref(topic_id)
    with user_errors(), open_context() as index:
        found = show_ref(index, ref)
    _emit(found, as_json, render.theme if ref.level == "theme" else render.topic)


@app.command()
def exemplars(
    topic_id: Annotated[str, typer.Argument(metavar="ID", help=REF_HELP)],
    tile: Annotated[bool, typer.Option("--tile", help="Print the path of the 3×3 tile instead.")] = False,
    open_: Annotated[bool, typer.Option("--open", help="Open the tile (or the first exemplar).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """A topic's exemplar images with paths and captions."""
    from topics.query.browse import exemplars as get_exemplars

    ref = _ref(topic_id)
    with user_errors(), open_context() as index:
        found = get_exemplars(index, ref)
    if open_:
        render.open_file(found["tile"] or next((e["path"] for e in found["exemplars"] if e["path"]), None))
    if tile and not as_json:
        render.echo(found["tile"] or "")
        return
    _emit(found, as_json, render.exemplars)


@app.command()
def history(
    topic_id: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Only events of this topic (12) or theme (T3).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recluster runs and what happened to topic and theme ids: survived, split, merged, emerged, vanished."""
    from topics.query.browse import history as get_history

    ref = None if topic_id is None else _ref(topic_id)
    with user_errors(), open_context() as index:
        found = get_history(index, ref)
    _emit(found, as_json, render.history)


@app.command()
def search(
    query: Annotated[str | None, typer.Argument(help='What to look for, e.g. "tractor protest".')] = None,
    image: Annotated[Path | None, typer.Option("--image", help="Query by an example image.")] = None,
    not_: Annotated[list[str] | None, typer.Option("--not", help="Push results away from this term.")] = None,
    topic: Annotated[int | None, typer.Option(help="Only items of this topic.")] = None,
    theme: Annotated[str | None, typer.Option(help="Only items of this theme (T3).")] = None,
    source: Annotated[
        str | None, typer.Option(help="Only items from this source (folder, manifest, feed).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Only items created at or after this date.")] = None,
    until: Annotated[str | None, typer.Option(help="Only items created at or before this date.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Matching topics and matching items, grouped by theme and topic, with scores."""
    from topics.query.dates import checked_date
    from topics.query.search import SearchFilters, search_anywhere

    if query is None and image is None:
        raise typer.BadParameter("give a query text or --image", param_hint="QUERY")
    theme_id = None if theme is None else _ref(theme if theme[:1] in "tT" else f"T{theme}", "--theme").id
    with user_errors():  # a bad date is refused before the store is opened or the model loaded
        since, until = checked_date("--since", since), checked_date("--until", until)
    filters = SearchFilters(topic=topic, theme=theme_id, source=source, since=since, until=until)
    with user_errors(), open_context() as index:
        found = search_anywhere(
            index, query, image=image, negatives=tuple(not_ or ()), filters=filters, limit=limit
        )
    _emit(found, as_json, render.search)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
    title: Annotated[str, typer.Option(help="Heading and window title of the page.")] = "topics",
    as_json: JsonOpt = False,
) -> None:
    """Write one self-contained HTML page of the current topics (opens offline, runs no script)."""
    from topics.report import build_report

    with user_errors(), open_context() as index, render.phases(not as_json, "report") as step:
        summary = build_report(index, out, title=title, on_step=step)
    if as_json:
        render.echo(json.dumps(summary.as_dict(), sort_keys=True, default=str))
    else:
        size = f"{summary.bytes:,} bytes"
        render.echo(f"wrote {summary.path}: {summary.n_topics} topics, {summary.n_items} items, {size}")


@app.command()
def migrate(
    to: Annotated[str, typer.Option("--to", help="URL of a Qdrant server, local:PATH, or a data dir.")],
    source: Annotated[
        str | None, typer.Option("--from", help="Copy from here instead of the configured store.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="TOPICS_MIGRATE_API_KEY", help="API key of a server named by URL.")
    ] = None,
    prune: Annotated[bool, typer.Option(help="Delete destination points the source lacks.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy items and topics to another store (embedded <-> server) and verify the counts."""
    from topics.service.store_copy import migrate_store

    with user_errors(), open_context() as index:
        report = migrate_store(index, to, source=source, api_key=api_key, prune=prune)
    _emit(report.as_dict(), as_json, render.migrate)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def backup(
    dest: Annotated[Path, typer.Argument(help="Folder the backup is written into.")] = Path("backups"),
    archive: Annotated[bool, typer.Option("--archive", help="One .tar.gz instead of a folder.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Back up the store: a consistent copy of the data dir, or snapshots on the Qdrant server."""
    from indexer.backup import backup as take_backup

    with user_errors():
        made = take_backup(load_settings(), dest, archive=archive)
    _emit(made.as_dict(), as_json, lambda b: render.echo(f"backup: {b['path']} {b.get('counts', '')}"))


@app.command()
def restore(
    source: Annotated[Path, typer.Argument(help="A backup folder or .tar.gz made by `topics backup`.")],
    as_json: JsonOpt = False,
) -> None:
    """Put a backup of the embedded store into the data dir, which must hold no store or ledger yet."""
    from indexer.backup import restore as restore_backup
    from indexer.errors import InvalidInput

    with user_errors():
        try:
            made = restore_backup(source, load_settings().data_dir)
        except FileExistsError as error:  # the data dir holds a store: one line, as user_errors prints
            raise InvalidInput(str(error)) from None
    _emit(made.as_dict(), as_json, lambda b: render.echo(f"restored: {b['path']} {b.get('counts', '')}"))


@app.command()
def repair(as_json: JsonOpt = False) -> None:
    """Move damaged store collections aside, rebuild them from the ledger's folders, recluster."""
    from topics.service.repair import repair as repair_store

    with user_errors(), render.phases(not as_json, "repair") as step:
        report = repair_store(load_settings(), step)
    _emit(report, as_json, render.repair)


def _emit(data: object, as_json: bool, human: Callable[[object], None]) -> None:
    if as_json:
        render.echo(json.dumps(data, sort_keys=True, default=str))
    else:
        human(data)


research.register(app)  # label, merge, hide and their undo; export; trends


def main() -> None:
    app()
