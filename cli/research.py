"""The researcher's commands: curate topics and themes (label, merge, hide and their undo), export, trends.

They live here so cli/app.py only registers them (`register(app)`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cli import render
from cli.context import open_context, user_errors

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output (stable schema).")]
RefArg = Annotated[str, typer.Argument(help="A topic id (12) or a theme id (T3) from `topics list`.")]


def _refs(texts: list[str]) -> tuple[str, list[int]]:
    """The level and ids of topic (12) or theme (T3) ids given on the command line; one level only."""
    from topics.query.browse import parse_ref

    try:
        refs = [parse_ref(t) for t in texts]
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="ID") from None
    if len({r.level for r in refs}) > 1:
        raise typer.BadParameter("give topic ids (12) or theme ids (T3), not both", param_hint="ID")
    return refs[0].level, [r.id for r in refs]


def _name(level: str, record_id: int) -> str:
    return f"theme T{record_id}" if level == "theme" else f"topic {record_id}"


def _curate(verb: Callable, ref: str, *args: object, done: str, as_json: bool) -> None:
    """Run a curation verb on topic or theme `ref`; `done` says what happened to it ({ref} filled in)."""
    level, (record_id,) = _refs([ref])
    with user_errors(), open_context() as index:
        found = verb(index.backend, record_id, *args, level=level)
    if as_json:
        render.echo(json.dumps(found.as_dict(), sort_keys=True))
    else:
        render.echo(f"{_name(level, record_id)}: {done}")


def label(ref: RefArg, text: Annotated[str, typer.Argument(help="The label.")], as_json: JsonOpt = False):
    """Pin a label on a topic or theme; it follows it through reclusters (undo: `topics unlabel ID`)."""
    from topics.curation import set_label

    _curate(set_label, ref, text, done="label pinned", as_json=as_json)


def unlabel(ref: RefArg, as_json: JsonOpt = False) -> None:
    """Drop a pinned label: the topic (theme) shows its computed label again."""
    from topics.curation import unset_label

    _curate(unset_label, ref, done="label unpinned", as_json=as_json)


def hide(ref: RefArg, as_json: JsonOpt = False) -> None:
    """Keep a topic or theme out of `list`, `search` and the report (undo: `topics unhide ID`)."""
    from topics.curation import hide as hide_topic

    _curate(hide_topic, ref, done="hidden", as_json=as_json)


def unhide(ref: RefArg, as_json: JsonOpt = False) -> None:
    """Show a hidden topic or theme again."""
    from topics.curation import unhide as unhide_topic

    _curate(unhide_topic, ref, done="shown again", as_json=as_json)


def merge(
    refs: Annotated[
        list[str], typer.Argument(help="Two or more topic ids (or theme ids T3); the first stays.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Show topics (or themes) as one, the first id's; the merge holds in later runs (undo: `topics
    unmerge ID`)."""
    from topics.curation import merge as merge_topics

    level, ids = _refs(refs)
    rest = ", ".join(_name(level, i).split()[1] for i in ids[1:])
    with user_errors(), open_context() as index:
        found = merge_topics(index.backend, ids, level=level)
    if as_json:
        render.echo(json.dumps(found.as_dict(), sort_keys=True))
    else:
        render.echo(f"{_name(level, ids[0])}: merged with {rest}")


def unmerge(
    ref: Annotated[str, typer.Argument(help="A merge's first id (undoes it all) or one member (12 or T3).")],
    as_json: JsonOpt = False,
) -> None:
    """Undo a merge: a merge's first id splits the whole group, a member id leaves it."""
    from topics.curation import unmerge as unmerge_topics

    _curate(unmerge_topics, ref, done="unmerged", as_json=as_json)


def export(
    fmt: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "csv",
    topic: Annotated[int | None, typer.Option(help="Only items of this topic.")] = None,
    since: Annotated[str | None, typer.Option(help="Only items created at or after this date.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    topics: Annotated[bool, typer.Option("--topics", help="Export the topic table instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One row per item: source id, path or URL, caption, created time, topic, label, theme, score."""
    from topics.query.export import export as run_export

    with user_errors(), open_context() as index:
        total = None if topics or out is None else index.items.count()
        with render.progress(out is not None, "exporting", total) as advance:
            summary = run_export(
                index, out, fmt=fmt, topic=topic, since=since, topics_table=topics,
                stdout=render.out.file, progress=advance,
            )  # fmt: skip
    if out is None:
        return
    if as_json:
        render.echo(json.dumps(summary.as_dict(), sort_keys=True))
    else:
        render.echo(f"wrote {summary.path}: {summary.rows} rows ({summary.format}) in {summary.seconds:.1f}s")


def trends(
    topic_ids: Annotated[
        list[int] | None, typer.Argument(help="Topic ids (default: every shown topic).")
    ] = None,
    every: Annotated[str, typer.Option(help="day, week or month.")] = "week",
    as_json: JsonOpt = False,
) -> None:
    """Items per topic per period, by the items' created time (ingest time when absent)."""
    from topics.query.trends import trends as get_trends

    with user_errors(), open_context() as index, render.progress(not as_json, "counting") as advance:
        found = get_trends(index, topic_ids or (), every=every, progress=advance)
    if as_json:
        render.echo(json.dumps(found.as_dict(), sort_keys=True))
    else:
        render.trends(found.as_dict())


def register(app: typer.Typer) -> None:
    """Add these commands to the `topics` app."""
    for command in (label, unlabel, hide, unhide, merge, unmerge, export, trends):
        app.command()(command)
