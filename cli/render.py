"""Rendering for people (rich) — JSON output is printed by the commands themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from indexer.pipeline import IngestSummary

# The consoles of the command running in this thread: the process's own, or (inside `topics serve`)
# buffers for a client's stdout and stderr (see cli/served.py).
_consoles: ContextVar[tuple[Console, Console] | None] = ContextVar("consoles", default=None)
_own = (Console(), Console(stderr=True))


class _Current:
    """Stands for the current stdout (0) or stderr (1) console, so call sites stay `out.print(...)`."""

    def __init__(self, which: int) -> None:
        self._which = which

    def __getattr__(self, name: str) -> Any:
        return getattr((_consoles.get() or _own)[self._which], name)


def _real(console: Console) -> Console:
    """The console a `_Current` stands for now (rich's live display needs the object itself)."""
    return (_consoles.get() or _own)[console._which] if isinstance(console, _Current) else console


out: Console = _Current(0)  # type: ignore[assignment]
err: Console = _Current(1)  # type: ignore[assignment]


@contextmanager
def captured(stdout: IO[str], stderr: IO[str], *, width: int, color: bool) -> Iterator[None]:
    """Send this thread's output to these files, rendered as for a terminal of this width."""
    options: dict[str, Any] = {"width": width, "force_terminal": color, "no_color": not color}
    token = _consoles.set((Console(file=stdout, **options), Console(file=stderr, **options)))
    try:
        yield
    finally:
        _consoles.reset(token)


def echo(text: str, *, to_stderr: bool = False) -> None:
    """Plain text (JSON, paths) exactly as given, on the current stdout or stderr."""
    console = err if to_stderr else out
    console.file.write(text + "\n")
    console.file.flush()


@contextmanager
def progress(
    enabled: bool, what: str = "ingesting", total: int | None = None
) -> Iterator[Callable[[int], None] | None]:
    """A live counter (a bar when `total` is known) on stderr when it is a terminal; nothing otherwise
    (pipes, scripts, CI, --json)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description} {task.completed} items"), TimeElapsedColumn()]
    if total is not None:
        columns.insert(1, BarColumn())
    with Progress(*columns, console=_real(err), transient=True) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def phases(enabled: bool, what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner naming the current step of a long job (e.g. the recluster's phases) on a terminal."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=_real(err), transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda step: bar.update(task, description=f"{what}: {step}")


def summary(s: IngestSummary) -> None:
    rate = (s.ingested + s.updated) / s.seconds if s.seconds else 0.0
    out.print(
        f"ingested {s.ingested}, updated {s.updated}, skipped {s.skipped}, deleted {s.deleted}, "
        f"failed {s.failed} in {s.seconds:.1f}s ({rate:.1f} items/s)"
    )
    for origin, reason in s.failures[:20]:
        out.print(f"  failed: {origin}: {reason}", highlight=False, markup=False)
    if len(s.failures) > 20:
        out.print(f"  … and {len(s.failures) - 20} more (see `topics status`)")
    for origin, reason in s.notices[:20]:
        out.print(f"  stored without a part: {origin}: {reason}", highlight=False, markup=False)
    if len(s.notices) > 20:
        out.print(f"  … and {len(s.notices) - 20} more stored without a part (see `topics status`)")


def status(info: dict) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("data dir", info["data_dir"])
    store = info["store"]
    via = " (through topics serve)" if store["via_service"] else ""
    table.add_row("store", f"{store['kind']} at {store['location']}{via}")
    if store.get("error"):
        table.add_row("store error", store["error"])
    if info["items"] is not None:
        table.add_row("items", f"{info['items']} ({info['pending']} pending topic assignment)")
    failures = ", ".join(f"{reason}: {n}" for reason, n in sorted(info["failures"].items())) or "none"
    table.add_row("failures", failures)
    model = info["model"] or {}
    clip = model.get("clip") or {}
    table.add_row("model", f"{clip.get('arch', '-')} / {clip.get('pretrained', '-')}" if clip else "-")
    counts = f"{info['topics']} in {info.get('themes', 0)} themes (run {info['run_id']})"
    table.add_row("topics", counts if info["run_id"] else "none yet")
    index = info.get("search_index")
    if index:
        built = "" if index["built"] else " (run topics recluster)"
        table.add_row("search index", f"{index['detail']}{built}")
    table.add_row("last recluster", info["last_recluster"] or "never")
    table.add_row("next recluster", info["next_recluster"] or "-")
    service = info["service"]
    if service:
        table.add_row(
            "service",
            f"pid {service['pid']}, up {service['uptime_s']:.0f}s, queue {service['queue_depth']}, "
            f"{service['items_per_s']} items/s, last error: {service['last_error'] or 'none'}",
        )
        if service.get("store_state", "connected") != "connected":
            table.add_row("service store", service["store_state"])
    else:
        table.add_row("service", "not running")
    for warning in info.get("warnings") or []:
        table.add_row("warning", warning)
    out.print(table, markup=False, highlight=False)


def recluster(report: dict) -> None:
    out.print(
        f"run {report['run_id']}: {report.get('themes', 0)} themes, {report['topics']} topics over "
        f"{report['items']} items ({report['outliers']} outliers) in {report['seconds']:.1f}s",
        highlight=False,
    )
    for level, key in (("topics", "events"), ("themes", "theme_events")):
        counts: dict[str, int] = {}
        for event in report.get(key, []):
            counts[event["kind"]] = counts.get(event["kind"], 0) + 1
        if counts:
            listed = ", ".join(f"{kind}: {n}" for kind, n in sorted(counts.items()))
            out.print(f"  {level}: {listed}", highlight=False)


def _words(words: list) -> str:
    return ", ".join(w if isinstance(w, str) else w[0] for w in words)


def _theme_ref(theme_id: int | None) -> str:
    return "-" if theme_id is None else f"T{theme_id}"


def _row(table: Table, ref: str, t: dict, *rest: str, style: str | None = None) -> None:
    change = f"{t['change']:+d}"
    cells = (ref, t["label"] or "", str(t["size"]), change, t["status"], _words(t["words"]), *rest)
    table.add_row(*cells, style=style)


def topic_list(topics: list[dict]) -> None:
    if not topics:
        out.print("no topics match")
        return
    table = Table("id", "label", "size", "change", "status", "words", "theme")
    for t in topics:
        _row(table, str(t["id"]), t, _theme_ref(t["theme_id"]))
    out.print(table, markup=False, highlight=False)


def theme_tree(themes: list[dict]) -> None:
    """Themes (T3), each followed by its topics, indented."""
    if not themes:
        out.print("no topics match")
        return
    table = Table("id", "label", "size", "change", "status", "words")
    for theme in themes:
        label = theme["label"] or ("(topics without a theme)" if theme["theme_id"] is None else "")
        _row(table, _theme_ref(theme["theme_id"]), {**theme, "label": label}, style="bold")
        for t in theme["topics"]:
            _row(table, f"  {t['id']}", t)
    out.print(table, markup=False, highlight=False)


def theme(t: dict) -> None:
    _record(f"theme T{t['theme_id']}", t)
    for topic in t["topics"]:
        out.print(
            f"  topic {topic['id']}: {topic['label'] or ''} ({topic['size']} items)",
            markup=False,
            highlight=False,
        )
    _record_tail(t)


def topic(t: dict) -> None:
    _record(f"topic {t['id']}", t)
    if t.get("theme_id") is not None:
        out.print(f"  theme T{t['theme_id']}: {t.get('theme_label') or ''}", markup=False, highlight=False)
    _record_tail(t)


def _record(name: str, t: dict) -> None:
    out.print(f"{name}: {t['label'] or '(no label)'}", markup=False, highlight=False)
    out.print(f"  size {t['size']} ({t['change']:+d} since the last run), {t['status']}, run {t['run_id']}")
    out.print(f"  seen {t['first_seen']} … {t['last_seen']}", highlight=False)
    scored = ", ".join(f"{w} ({s:.3f})" if s is not None else w for w, s in t["words"])
    out.print(f"  words: {scored or '-'}", markup=False, highlight=False)
    out.print(f"  keywords: {_words(t['keywords']) or '-'}", markup=False, highlight=False)
    curated = _curation(t.get("curation") or {}, "T" if name.startswith("theme") else "")
    if curated:
        out.print(f"  curation: {curated}", markup=False, highlight=False)
    if t["tile"]:
        out.print(f"  tile: {t['tile']}", markup=False, highlight=False)


def _record_tail(t: dict) -> None:
    for e in t["exemplars"]:
        out.print(f"  • {e['path'] or e['item_id']}  {_short(e['caption'])}", markup=False, highlight=False)
    if t["size_history"]:
        out.print("  sizes: " + ", ".join(f"run {r}: {n}" for r, n in t["size_history"]), highlight=False)
    for event in t["lineage"]:
        out.print(f"  {_event(event)}", highlight=False)


def _event(e: dict) -> str:
    """`run 2: split [3] -> [3, 7]`; theme events name their ids T3."""
    if e.get("level") == "theme":
        ids = [", ".join(f"T{i}" for i in e[side]) for side in ("before", "after")]
        return f"run {e['run_id']}: theme {e['kind']} [{ids[0]}] -> [{ids[1]}]"
    return f"run {e['run_id']}: {e['kind']} {e['before']} -> {e['after']}"


def _curation(c: dict, mark: str = "") -> str:
    """What a person pinned on a topic (a theme: `mark` "T"), in words ('' when nothing)."""
    parts = ["label pinned"] if c.get("label") else []
    parts += ["hidden"] if c.get("hidden") else []
    if c.get("merged"):
        parts.append("merged with " + ", ".join(f"{mark}{m}" for m in c["merged"]))
    if "merged_into" in c:
        parts.append(f"merged into {mark}{c['merged_into']}")
    return ", ".join(parts)


def exemplars(found: dict) -> None:
    for e in found["exemplars"]:
        out.print(f"{e['path'] or e['item_id']}\t{_short(e['caption'])}", markup=False, highlight=False)


def history(found: dict) -> None:
    for run in found["runs"]:
        out.print(
            f"run {run['run_id']} at {run['finished']}: {run.get('themes', 0)} themes, "
            f"{run['topics']} topics, {run['items']} items"
        )
    for e in found["events"]:
        if e["kind"] != "survived":
            out.print(f"  {_event(e)}", highlight=False)
    for note in found.get("curation", []):
        out.print(
            f"  run {note['run_id']}: curated {_note_ref(note)} {note['event']}: {note['text']}",
            markup=False,
            highlight=False,
        )


def _note_ref(note: dict) -> str:
    return f"theme T{note['topic_id']}" if note.get("level") == "theme" else f"topic {note['topic_id']}"


def search(found: dict) -> None:
    if not found["topics"] and not found["unassigned"]:
        out.print("nothing matches")
        return
    topics = {t["topic_id"]: t for t in found["topics"]}
    for group in found.get("themes") or [{"theme_id": None, "label": None, "topics": list(topics)}]:
        if group["theme_id"] is not None:
            out.print(f"theme T{group['theme_id']} {group['label'] or ''}", markup=False, highlight=False)
        for topic_id in group["topics"]:
            t = topics[topic_id]
            similarity = f"similarity {t['similarity']:.3f}"
            out.print(
                f"  topic {t['topic_id']} {t['label'] or ''} (size {t['size']}, {similarity})",
                markup=False,
                highlight=False,
            )
            for hit in t["items"]:
                _hit(hit, "    ")
    if found["unassigned"]:
        out.print("not in a topic:")
        for hit in found["unassigned"]:
            _hit(hit)


def _hit(hit: dict, indent: str = "  ") -> None:
    views = " ".join(f"{v}={s:.3f}" for v, s in sorted(hit["views"].items()))
    where = hit["path"] or hit["item_id"]
    out.print(
        f"{indent}{hit['score']:.4f}  {where}  {_short(hit['caption'])}  [{views}]",
        markup=False,
        highlight=False,
    )


def _short(text: str | None, n: int = 80) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def open_file(path: str | None) -> None:
    """Open a file with the desktop's viewer (xdg-open / open); say so when there is nothing to open."""
    if not path:
        err.print("nothing to open: this topic has no tile or exemplar image")
        return
    import webbrowser

    if not webbrowser.open(Path(path).resolve().as_uri()):
        err.print(f"could not open a viewer; the file is {path}")


def trends(found: dict) -> None:
    """Periods as rows, the largest topics as columns (at most 8; --json has them all)."""
    if not found["topics"]:
        out.print("no dated items in these topics")
        return
    shown = found["topics"][:8]
    table = Table(found["every"], *(f"{t['id']} {_short(t['label'], 16)}" for t in shown))
    for row, period in enumerate(found["periods"]):
        table.add_row(period, *(str(t["counts"][row]) for t in shown))
    out.print(table, markup=False, highlight=False)
    if len(found["topics"]) > len(shown):
        out.print(f"… and {len(found['topics']) - len(shown)} more topics (see --json)")


def migrate(report: dict) -> None:
    for copy in report["collections"]:
        line = f"{copy['name']}: {copy['copied']} copied, {copy['source_count']} -> {copy['dest_count']}"
        if copy.get("skipped"):
            line += f" (skipped: {copy['skipped']})"
        if copy.get("mismatched"):
            line += f" MISMATCH: {len(copy['mismatched'])} points differ"
        out.print(line, markup=False, highlight=False)
