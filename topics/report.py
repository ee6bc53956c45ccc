"""`topics report`: one self-contained HTML page of the current run that opens offline.

The page leads with the themes (the coarse level: tile, label, size, words, their topics), then a 2-D
map of the topic centroids drawn server-side as inline SVG and coloured by theme, small multiples of
the largest topics' items per week (`topics.query.trends`, inline SVG too), the topic table grouped by theme
(id, label, size and change since the last run, status, top words with scores, keywords, tile,
representative captions), the last run's lineage of both levels and recent runs. Topics are shown as
curated (`topics.curation`): pinned labels, merges folded, hidden ones left out.

Map labels are placed greedily, themes first and then topics by size: each tries a few spots around
its point and is hidden when every spot would overlap a label already placed or leave the drawing
(its circle keeps a tooltip). Label boxes are estimated from the text's length (`label_box`).

Safety: captions, labels and words come from whoever fed the index, so every piece of data is escaped
with ``html.escape(quote=True)`` and nothing from the data reaches a URL or an attribute other than
escaped text. The page has no script at all, and a strict Content-Security-Policy (images only as
``data:`` URIs, inline styles only) makes anything that slipped through inert. Tiles are re-encoded
as JPEG and embedded, so the page needs no file beside it and no network.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from indexer.atomic import write_bytes_atomic
from indexer.index import Index
from indexer.store.base import Filter
from topics import catalog, curation
from topics.catalog import LineageEvent, Run, Theme, Topic
from topics.query.trends import Trends, small_multiples_svg, trends
from topics.represent import Representation

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
TILE_SIDE = 300  # pixels: the tile as shown; keeps a page of a thousand topics in tens of MB
MAX_TILE_BYTES = 20 * 1024 * 1024
N_CAPTIONS = 3
CAPTION_CHARS = 280
N_MAP_LABELS = 30  # the largest topics may get a label on the map (space allowing); every one a tooltip
TOPIC_FONT, THEME_FONT = 11, 13  # px
CHAR_EM = 0.62  # a character's width in ems, generous for system-ui so estimated boxes cover the text
N_RUNS = 10
MAP_W, MAP_H, MAP_PAD = 760, 460, 50
PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="150" height="150">'
    '<rect width="150" height="150" fill="#ddd"/>'
    '<text x="75" y="80" font-size="14" text-anchor="middle" fill="#666">no tile</text></svg>'
)
PLACEHOLDER = "data:image/svg+xml;base64," + base64.b64encode(PLACEHOLDER_SVG.encode()).decode()


class ReportError(RuntimeError):
    """The report cannot be made (nothing to show yet, or the output path is unusable)."""


@dataclass(frozen=True)
class ReportSummary:
    """What `build_report` wrote (`topics report --json`)."""

    path: Path
    n_topics: int
    n_items: int
    bytes: int
    n_themes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "topics": self.n_topics,
            "themes": self.n_themes,
            "items": self.n_items,
            "bytes": self.bytes,
        }


@dataclass(frozen=True)
class ReportContent:
    """Everything the page shows, read from the store once."""

    run: Run
    topics: tuple[Topic, ...]  # live ones (active, emerging)
    vanished: tuple[Topic, ...]  # ended in this run
    events: tuple[LineageEvent, ...]  # this run's lineage
    runs: tuple[Run, ...]  # recent runs, oldest first
    items_now: int
    pending: int  # stored items without a topic under this run yet
    generated: datetime
    themes: tuple[Theme, ...] = ()  # live ones, largest first
    trends: Trends | None = None  # items per week of the largest topics


def build_report(
    index: Index, out: Path, *, title: str = "topics", on_step: Callable[[str], None] | None = None
) -> ReportSummary:
    """Write the report of the current run to `out` (atomically: a reader never sees half a page).

    `on_step` hears what it is doing now, in words (a progress line)."""
    out = Path(out)
    if out.is_dir():
        raise ReportError(f"{out} is a folder: give the report's file name, e.g. {out / 'report.html'}")
    step = on_step or (lambda what: None)
    step("reading topics and counting items over time")
    content = read_content(index)
    step("embedding tiles")
    tiles = tile_uris([*content.topics, *content.themes], index.settings.data_dir)
    step("writing the page")
    page = render_page(content, title=title, tile_of=lambda t: tiles[_anchor(t)])
    data = page.encode("utf-8")
    try:
        write_bytes_atomic(out, data)
    except OSError as error:
        raise ReportError(f"cannot write the report to {out}: {error.strerror or error}") from error
    return ReportSummary(out, len(content.topics), content.run.n_items, len(data), len(content.themes))


def read_content(index: Index) -> ReportContent:
    """The current run's topics, lineage and counts; `ReportError` before the first recluster."""
    backend = index.backend
    run = catalog.current_run(backend)
    if run is None:
        raise ReportError("no topics yet: run `topics recluster` first")
    every = curation.curate(
        catalog.list_topics(backend, include_vanished=True, run=run), curation.load(backend, run)
    )
    theme_cur = curation.load(backend, run, level="theme")
    themes = [
        t for t in curation.curate(catalog.list_themes(backend, run=run), theme_cur) if curation.shown(t)
    ]
    live = _under_curated_themes(
        (t for t in every if t.status != "vanished" and curation.shown(t)), theme_cur
    )
    ended = tuple(t for t in every if t.status == "vanished" and t.run_id == run.run_id and t.change < 0)
    events = tuple(e for e in catalog.lineage(backend, level=None) if e.run_id == run.run_id)
    items_now, pending = _item_counts(index, run)
    return ReportContent(
        run=run,
        topics=tuple(sorted(live, key=lambda t: (-t.size, t.topic_id))),
        vanished=ended,
        events=events,
        runs=tuple(catalog.runs(backend)[-N_RUNS:]),
        items_now=items_now,
        pending=pending,
        generated=datetime.now(UTC),
        themes=tuple(sorted(themes, key=lambda t: (-t.size, t.theme_id))),
        trends=trends(index, every="week"),
    )


def _under_curated_themes(topics: Iterable[Topic], cur: curation.Curation) -> tuple[Topic, ...]:
    """Topics under their themes as curated: a merged theme's under its target, a hidden theme's left out."""
    out = []
    for topic in topics:
        theme_id = None if topic.theme_id is None else cur.target(topic.theme_id)
        if theme_id not in cur.hidden and topic.theme_id not in cur.hidden:
            out.append(replace(topic, theme_id=theme_id))
    return tuple(out)


def _item_counts(index: Index, run: Run) -> tuple[int, int]:
    """Items stored now, and those with no topic under `run` yet (ingested since, awaiting assignment).

    Counted by the run field of the item's slot (an integer index), which is what readers go by.
    """
    items = index.items
    if not items.exists():
        return 0, 0
    total = items.count()
    assigned = items.count(Filter(must={catalog.slot_fields(run.slot)["run"]: run.run_id}))
    return total, max(0, total - assigned)


# ---- tiles ----


def tile_uris(records: Sequence[Topic | Theme], root: Path) -> dict[str, str]:
    """Each topic's and theme's tile as a `data:` URI (a placeholder when it has none or it cannot be
    read), by its anchor (`topic-12`, `theme-3`)."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        uris = pool.map(lambda t: tile_data_uri(t.tile, root), records)
        return {_anchor(t): uri for t, uri in zip(records, uris, strict=True)}


def tile_data_uri(path: str | None, root: Path, side: int = TILE_SIDE) -> str:
    """A tile re-encoded as a small JPEG `data:` URI; only images inside `root` (the data dir) count.

    Re-encoding means whatever the stored path points at, only pixels reach the page.
    """
    source = _inside(path, root)
    if source is None:
        return PLACEHOLDER
    try:
        with Image.open(source) as image:
            image.draft("RGB", (side, side))  # JPEG: decode at reduced scale, much faster
            shown = image.convert("RGB")
        shown.thumbnail((side, side))
        buffer = io.BytesIO()
        shown.save(buffer, "JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return PLACEHOLDER
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _inside(path: str | None, root: Path) -> Path | None:
    if not path:
        return None
    try:
        resolved = Path(path).resolve(strict=True)
        base = root.resolve()
        ok = resolved.is_relative_to(base) and resolved.is_file()
        return resolved if ok and resolved.stat().st_size <= MAX_TILE_BYTES else None
    except OSError:
        return None


# ---- map ----


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """PCA to two dimensions (SVD of the centred rows); signs fixed so reruns draw the same map."""
    x = np.asarray(vectors, dtype=np.float64)
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    k = min(2, len(s))
    coords = u[:, :k] * s[:k]
    for j in range(k):
        pivot = coords[np.argmax(np.abs(coords[:, j])), j]
        coords[:, j] *= -1.0 if pivot < 0 else 1.0
    out[:, :k] = coords
    return out


def _fit_to_box(coords: np.ndarray) -> np.ndarray:
    """Coordinates scaled (one factor for both axes) and centred into the drawing area."""
    if not len(coords):
        return coords
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = float(max(high - low)) or 1.0
    scale = min(MAP_W - 2 * MAP_PAD, MAP_H - 2 * MAP_PAD) / span
    centre = (low + high) / 2
    return (coords - centre) * scale + np.array([MAP_W / 2, MAP_H / 2])


@dataclass(frozen=True)
class MapLabel:
    """A label wanted on the map: its text, the point it names, that point's radius, font size, class."""

    text: str
    x: float
    y: float
    r: float
    size: int
    cls: str


def label_box(text: str, x: float, y: float, anchor: str, size: float) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of an SVG text at baseline (x, y), from its length and font size."""
    width = len(text) * CHAR_EM * size
    left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return left, y - size, left + width, y + 0.3 * size


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(wanted: Sequence[MapLabel]) -> list[tuple[MapLabel, float, float, str]]:
    """Greedy placement in the given order: above, below, right or left of the point; a label that
    fits nowhere without overlapping a placed one or leaving the drawing is left out."""
    placed: list[tuple[MapLabel, float, float, str]] = []
    boxes: list[tuple[float, float, float, float]] = []
    for label in wanted:
        gap, drop = label.r + 4, label.size * 0.35
        spots = (
            (label.x, label.y - gap, "middle"),
            (label.x, label.y + gap + label.size, "middle"),
            (label.x + gap, label.y + drop, "start"),
            (label.x - gap, label.y + drop, "end"),
        )
        for x, y, anchor in spots:
            box = label_box(label.text, x, y, anchor, label.size)
            inside = box[0] >= 0 and box[1] >= 0 and box[2] <= MAP_W and box[3] <= MAP_H
            if inside and not any(_overlap(box, other) for other in boxes):
                placed.append((label, x, y, anchor))
                boxes.append(box)
                break
    return placed


def theme_colours(themes: Sequence[Theme]) -> dict[int, str]:
    """A distinct hue per theme (golden-angle steps, largest theme first); grey marks no theme."""
    return {t.theme_id: f"hsl({round(i * 137.508) % 360},62%,46%)" for i, t in enumerate(themes)}


def map_svg(topics: Sequence[Topic], view: str, themes: Sequence[Theme] = ()) -> str:
    """The topics' centroids in the run's view, projected to 2-D, as inline SVG: one circle each,
    coloured by theme, theme names at their topics' weighted centre, labels that never overlap."""
    placed = [t for t in topics if view in t.centroids]
    if not placed:
        return f"<p class=note>No topic has a centroid in the {_e(view)} view to draw.</p>"
    points = _fit_to_box(project_2d(np.stack([np.asarray(t.centroids[view]) for t in placed])))
    largest = max(t.size for t in placed) or 1
    radius = {t.topic_id: 5 + 28 * math.sqrt(t.size / largest) for t in placed}
    where = {t.topic_id: (float(x), float(y)) for t, (x, y) in zip(placed, points, strict=True)}
    colours = theme_colours(themes)
    circles = [
        _map_mark(t, *where[t.topic_id], radius[t.topic_id], colours.get(t.theme_id, "#999"))
        for t in sorted(placed, key=lambda t: -t.size)
    ]
    wanted = [*_theme_labels(placed, themes, where), *_topic_labels(placed, where, radius)]
    texts = [
        f'<text class="{label.cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" '
        f'font-size="{label.size}">{_e(label.text)}</text>'
        for label, x, y, anchor in place_labels(wanted)
    ]
    return (
        f'<svg class=map viewBox="0 0 {MAP_W} {MAP_H}" width="{MAP_W}" height="{MAP_H}" role="img" '
        f'aria-label="map of topics">{"".join(circles)}{"".join(texts)}</svg>{_legend(themes, colours)}'
    )


def _theme_labels(
    topics: Sequence[Topic], themes: Sequence[Theme], where: dict[int, tuple[float, float]]
) -> list[MapLabel]:
    out = []
    for theme in themes:
        mine = [t for t in topics if t.theme_id == theme.theme_id]
        weight = sum(max(t.size, 1) for t in mine)
        if not mine:
            continue
        x = sum(where[t.topic_id][0] * max(t.size, 1) for t in mine) / weight
        y = sum(where[t.topic_id][1] * max(t.size, 1) for t in mine) / weight
        out.append(MapLabel(f"T{theme.theme_id} {_short(_label(theme), 24)}", x, y, 0.0, THEME_FONT, "theme"))
    return out


def _topic_labels(
    topics: Sequence[Topic], where: dict[int, tuple[float, float]], radius: dict[int, float]
) -> list[MapLabel]:
    largest = sorted(topics, key=lambda t: -t.size)[:N_MAP_LABELS]
    return [
        MapLabel(
            f"{t.topic_id} {_short(_label(t), 28)}",
            *where[t.topic_id],
            radius[t.topic_id],
            TOPIC_FONT,
            "topic",
        )
        for t in largest
    ]


def _map_mark(topic: Topic, x: float, y: float, r: float, colour: str) -> str:
    name = _label(topic)
    theme = "" if topic.theme_id is None else f", theme T{topic.theme_id}"
    tooltip = f"topic {topic.topic_id}: {name} ({topic.size} items, {_change(topic)}{theme})"
    return (
        f'<a href="#topic-{topic.topic_id}"><g class="mark {topic.status}">'
        f"<title>{_e(tooltip)}</title>"
        f'<circle data-topic="{topic.topic_id}" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" '
        f'style="fill:{colour};stroke:{colour}"/></g></a>'
    )


def _legend(themes: Sequence[Theme], colours: dict[int, str]) -> str:
    if not themes:
        return ""
    keys = "".join(
        f'<a class=key href="#theme-{t.theme_id}"><span class=swatch '
        f'style="background:{colours[t.theme_id]}"></span>T{t.theme_id} {_e(_short(_label(t), 40))}</a>'
        for t in themes
    )
    return f"<p class=legend>{keys}</p>"


# ---- page ----


def render_page(content: ReportContent, *, title: str, tile_of: Callable[[Topic], str]) -> str:
    """The whole page as one string; `tile_of` gives each topic's image URI (a `data:` URI)."""
    run = content.run
    body = "".join(
        (
            _header(content, title),
            "<h2>Themes</h2>",
            _theme_table(content.themes, content.topics, tile_of),
            f"<h2>Map</h2><p class=note>Topic centroids ({_e(run.view)} view) projected to 2-D with PCA; "
            "colour follows the theme, area the size, a dashed ring marks topics new in this run. "
            "Labels that would overlap are left out: hover for details, click to jump to the row.</p>",
            map_svg(content.topics, run.view, content.themes),
            _trends_section(content.trends),
            "<h2>Topics</h2>",
            _topic_table(_by_theme(content.topics, content.themes), tile_of),
            _lineage_section(content),
            _runs_section(content.runs),
        )
    )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} report</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _trends_section(found: Trends | None) -> str:
    if found is None:
        return ""
    note = (
        f"<p class=note>Items per {_e(found.every)} of the largest topics (created time, else ingest "
        "time), on one scale.</p>"
    )
    return f"<h2>Over time</h2>{note}{small_multiples_svg(found)}"


def _header(content: ReportContent, title: str) -> str:
    run = content.run
    facts = [
        ("run", str(run.run_id)),
        ("finished", _format_time(run.finished)),
        ("view", run.view),
        ("themes", str(len(content.themes))),
        ("topics", str(len(content.topics))),
        ("items in run", str(run.n_items)),
        ("items stored now", str(content.items_now)),
        ("awaiting a topic", str(content.pending)),
        ("report made", _format_time(content.generated)),
    ]
    cells = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in facts)
    return f"<header><h1>{_e(title)}</h1><dl class=facts>{cells}</dl></header>"


def _by_theme(topics: Sequence[Topic], themes: Sequence[Theme]) -> list[Topic]:
    """Topics in the order of their themes (largest first), by size within one."""
    rank = {t.theme_id: i for i, t in enumerate(themes)}
    return sorted(topics, key=lambda t: (rank.get(t.theme_id, len(rank)), -t.size, t.topic_id))


def _theme_table(themes: Sequence[Theme], topics: Sequence[Topic], tile_of: Callable[[Any], str]) -> str:
    if not themes:
        return "<p class=note>No themes in this run.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("id", "tile", "label", "size", "change", "words", "topics"))
    ordered = _by_theme(topics, themes)
    rows = "".join(
        _theme_row(th, [t for t in ordered if t.theme_id == th.theme_id], tile_of(th)) for th in themes
    )
    return f"<table class=themes><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _theme_row(theme: Theme, topics: Sequence[Topic], tile: str) -> str:
    links = "".join(
        f'<a class=term href="#topic-{t.topic_id}">{t.topic_id} {_e(_short(_label(t), 40))}</a>'
        for t in topics
    )
    words = _representation(theme).words or tuple((w, math.nan) for w in theme.words)
    alt = f"exemplars of theme T{theme.theme_id}"
    return (
        f'<tr id="theme-{theme.theme_id}" class="{theme.status}"><td class=num>T{theme.theme_id}</td>'
        f'<td><img class=tile src="{_e(tile)}" alt="{_e(alt)}" width="{TILE_SIDE // 2}"></td>'
        f"<td class=label>{_e(_label(theme))}</td>"
        f"<td class=num>{theme.size}</td><td class=num>{_e(_change(theme))}</td>"
        f"<td class=terms>{_scored(words)}</td><td class=terms>{links}</td></tr>"
    )


def _topic_table(topics: Sequence[Topic], tile_of: Callable[[Any], str]) -> str:
    if not topics:
        return "<p class=note>The current run has no topics: every item is an outlier.</p>"
    largest = max(t.size for t in topics) or 1
    head = "".join(
        f"<th>{h}</th>"
        for h in ("id", "theme", "tile", "label", "size", "change", "status", "words", "keywords", "captions")
    )
    rows = "".join(_topic_row(t, tile_of(t), largest) for t in topics)
    return f"<table class=topics><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _topic_row(topic: Topic, tile: str, largest: int) -> str:
    rep = _representation(topic)
    name = _label(topic)
    width = max(1, round(80 * topic.size / largest))
    words = rep.words or tuple((w, math.nan) for w in topic.words)
    keywords = rep.keywords or tuple((k, math.nan) for k in topic.keywords)
    captions = (rep.captions or rep.generated_captions)[:N_CAPTIONS]
    change = _change(topic)
    trend = "up" if topic.change > 0 else "down" if topic.change < 0 else "flat"
    return (
        f'<tr id="topic-{topic.topic_id}" class="{topic.status}">'
        f"<td class=num>{topic.topic_id}</td>"
        f"<td class=num>{_theme_link(topic.theme_id)}</td>"
        f'<td><img class=tile src="{_e(tile)}" alt="{_e(f"exemplars of topic {topic.topic_id}")}" '
        f'width="{TILE_SIDE // 2}"></td>'
        f"<td class=label>{_e(name)}</td>"
        f'<td class=num>{topic.size}<span class=bar style="width:{width}px"></span></td>'
        f'<td class="num {trend}">{_e(change)}</td>'
        f"<td>{_e(topic.status)}</td>"
        f"<td class=terms>{_scored(words)}</td><td class=terms>{_scored(keywords)}</td>"
        f"<td>{_captions(captions)}</td></tr>"
    )


def _theme_link(theme_id: int | None) -> str:
    return "" if theme_id is None else f'<a href="#theme-{theme_id}">T{theme_id}</a>'


def _scored(terms: Sequence[tuple[str, float]]) -> str:
    if not terms:
        return "<span class=none>none</span>"
    shown = [
        f"<span class=term>{_e(term)}"
        + ("" if math.isnan(score) else f" <small>{score:.2f}</small>")
        + "</span>"
        for term, score in terms
    ]
    return "".join(shown)


def _captions(captions: Sequence[str]) -> str:
    if not captions:
        return "<span class=none>none</span>"
    return "<ul>" + "".join(f"<li>{_e(_short(c, CAPTION_CHARS))}</li>" for c in captions) + "</ul>"


def _lineage_section(content: ReportContent) -> str:
    topics = Counter(e.kind for e in content.events if e.level == "topic")
    themes = Counter(f"theme {e.kind}" for e in content.events if e.level == "theme")
    summary = ", ".join(f"{n} {kind}" for kind, n in [*sorted(topics.items()), *sorted(themes.items())])
    summary = summary or "no events"
    notable = [e for e in content.events if e.kind != "survived"]
    items = "".join(f"<li>{_e(_event_text(e))}</li>" for e in notable)
    gone = "".join(
        f"<li>topic {t.topic_id} ({_e(_label(t))}) vanished, it had {-t.change} items</li>"
        for t in content.vanished
    )
    listed = f"<ul>{items}{gone}</ul>" if items or gone else ""
    return f"<h2>Lineage of run {content.run.run_id}</h2><p>{_e(summary)}.</p>{listed}"


def _event_text(event: LineageEvent) -> str:
    mark, name = ("T", "theme") if event.level == "theme" else ("", "topic")
    before = ", ".join(f"{mark}{t}" for t in event.before) or "nothing"
    after = ", ".join(f"{mark}{t}" for t in event.after) or "nothing"
    return {
        "split": f"{name} {before} split into {after}",
        "merged": f"{name}s {before} merged into {after}",
        "emerged": f"{name} {after} emerged",
        "vanished": f"{name} {before} vanished",
    }.get(event.kind, f"{name} {event.kind}: {before} to {after}")


def _runs_section(runs: Sequence[Run]) -> str:
    rows = "".join(
        f"<tr><td class=num>{r.run_id}</td><td>{_e(_format_time(r.finished))}</td>"
        f"<td class=num>{r.n_items}</td><td class=num>{r.n_topics}</td>"
        f"<td class=num>{(r.finished - r.started).total_seconds():.1f}</td></tr>"
        for r in reversed(runs)
    )
    head = "<tr><th>run</th><th>finished</th><th>items</th><th>topics</th><th>seconds</th></tr>"
    return f"<h2>Recent runs</h2><table class=runs><thead>{head}</thead><tbody>{rows}</tbody></table>"


# ---- small pieces ----


def _e(value: object) -> str:
    """Escape any value for HTML text and quoted attributes."""
    return html.escape(str(value), quote=True)


def _anchor(record: Topic | Theme) -> str:
    """The page anchor of a topic's or theme's row, also its key among the tiles."""
    return f"topic-{record.topic_id}" if isinstance(record, Topic) else f"theme-{record.theme_id}"


def _representation(topic: Topic | Theme) -> Representation:
    fallback = Representation(topic_id=-1, label=topic.label or "")
    payload = topic.extra.get("representation")
    if not isinstance(payload, dict):
        return fallback
    try:
        return Representation.from_payload(payload)
    except (TypeError, ValueError):  # a malformed payload must not cost the whole report
        return fallback


def _label(topic: Topic | Theme) -> str:
    return topic.label or ", ".join(topic.words[:3]) or _anchor(topic).replace("-", " ")


def _change(topic: Topic | Theme) -> str:
    if topic.status == "emerging" and topic.change == topic.size:
        return "new"
    return f"{topic.change:+d}" if topic.change else "±0"


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{margin:0 0 .3em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.facts{display:flex;flex-wrap:wrap;gap:.4em 1.6em;margin:0}.facts dt{font-size:11px;color:#666}
.facts dd{margin:0;font-weight:600}.note{color:#666}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ddd;padding:4px 6px;vertical-align:top}
.label,.terms,td ul{overflow-wrap:anywhere}
td.terms{max-width:22em}
th{background:#eee;text-align:left;white-space:nowrap}.num{text-align:right;white-space:nowrap}
.bar{display:block;height:6px;background:#4a7bd0;margin-top:3px;margin-left:auto}
.up{color:#1a7f37}.down{color:#b42318}.tile{display:block;border-radius:3px}
.label{font-weight:600;max-width:16em}.term{display:inline-block;margin:0 .5em .2em 0}
.term small{color:#888}.none{color:#aaa}td ul{margin:0;padding-left:1.1em;max-width:28em}
tr.emerging td:first-child{border-left:4px solid #e08a00}
.map{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
.mark circle{fill-opacity:.5;stroke-width:1.5}
.mark.emerging circle{stroke:#222 !important;stroke-dasharray:4 3}
.map text{fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}.map text.theme{font-weight:700}
.legend{display:flex;flex-wrap:wrap;gap:.3em 1.2em}.key{color:#222;text-decoration:none}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:50%;margin-right:.35em;vertical-align:-1px}
"""
