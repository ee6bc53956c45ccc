"""The researcher's commands: curate topics (label, merge, hide and their undo), export, trends.

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
TopicArg = Annotated[int, typer.Argument(help="A topic id from `topics list`.")]


def _curate(verb: Callable, *args: object, done: str, as_json: bool) -> None:
    with user_errors(), open_context() as index:
        found = verb(index.backend, *args)
    if as_json:
        render.echo(json.dumps(found.as_dict(), sort_keys=True))
    else:
        render.echo(done)


def label(
    topic_id: TopicArg, text: Annotated[str, typer.Argument(help="The label.")], as_json: JsonOpt = False
):
    """Pin a label on a topic; it follows the topic through reclusters (undo: `topics unlabel ID`)."""
    from topics.curation import set_label

    _curate(set_label, topic_id, text, done=f"topic {topic_id}: label pinned", as_json=as_json)


def unlabel(topic_id: TopicArg, as_json: JsonOpt = False) -> None:
    """Drop a pinned label: the topic shows its computed label again."""
    from topics.curation import unset_label

    _curate(unset_label, topic_id, done=f"topic {topic_id}: label unpinned", as_json=as_json)


def hide(topic_id: TopicArg, as_json: JsonOpt = False) -> None:
    """Keep a topic out of `list`, `search` and the report (undo: `topics unhide ID`)."""
    from topics.curation import hide as hide_topic

    _curate(hide_topic, topic_id, done=f"topic {topic_id}: hidden", as_json=as_json)


def unhide(topic_id: TopicArg, as_json: JsonOpt = False) -> None:
    """Show a hidden topic again."""
    from topics.curation import unhide as unhide_topic

    _curate(unhide_topic, topic_id, done=f"topic {topic_id}: shown again", as_json=as_json)


def merge(
    topic_ids: Annotated[list[int], typer.Argument(help="Two or more topic ids; the first one stays.")],
    as_json: JsonOpt = False,
) -> None:
    """Show topics as one (the first id's); the merge holds in later runs (undo: `topics unmerge ID`)."""
    from topics.curation import merge as merge_topics

    rest = ", ".join(map(str, topic_ids[1:]))
    _curate(merge_topics, topic_ids, done=f"topic {topic_ids[0]}: merged with {rest}", as_json=as_json)


def unmerge(
    topic_id: Annotated[int, typer.Argument(help="A merge's first id (undoes it all) or one member.")],
    as_json: JsonOpt = False,
) -> None:
    """Undo a merge: a merge's first id splits the whole group, a member id leaves it."""
    from topics.curation import unmerge as unmerge_topics

    _curate(unmerge_topics, topic_id, done=f"topic {topic_id}: unmerged", as_json=as_json)


def export(
    fmt: Annotated[str, typer.Option("--format", help="csv, jsonl or parquet.")] = "csv",
    topic: Annotated[int | None, typer.Option(help="Only items of this topic.")] = None,
    since: Annotated[str | None, typer.Option(help="Only items created at or after this date.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="File to write (default: stdout).")] = None,
    topics: Annotated[bool, typer.Option("--topics", help="Export the topic table instead.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One row per item: source id, path or URL, caption, created time, topic, label, theme, score."""
    from topics.export import export as run_export

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
    from topics.trends import trends as get_trends

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
