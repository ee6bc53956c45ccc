"""`topics report`'s page: one self-contained HTML page of the current run that opens offline.

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

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from topics.catalog import LineageEvent, Run, Theme, Topic
from topics.query.trends import Trends, small_multiples_svg
from topics.report.content import ReportContent
from topics.report.map import map_svg
from topics.report.pieces import change_text, esc, format_time, label_of, representation_of, short
from topics.report.tiles import TILE_SIDE

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
N_CAPTIONS = 3
CAPTION_CHARS = 280


def render_page(content: ReportContent, *, title: str, tile_of: Callable[[Topic], str]) -> str:
    """The whole page as one string; `tile_of` gives each topic's image URI (a `data:` URI)."""
    run = content.run
    body = "".join(
        (
            _header(content, title),
            "<h2>Themes</h2>",
            _theme_table(content.themes, content.topics, tile_of),
            f"<h2>Map</h2><p class=note>Topic centroids ({esc(run.view)} view) projected to 2-D with PCA; "
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
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} report</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _trends_section(found: Trends | None) -> str:
    if found is None:
        return ""
    note = (
        f"<p class=note>Items per {esc(found.every)} of the largest topics (created time, else ingest "
        "time), on one scale.</p>"
    )
    return f"<h2>Over time</h2>{note}{small_multiples_svg(found)}"


def _header(content: ReportContent, title: str) -> str:
    run = content.run
    facts = [
        ("run", str(run.run_id)),
        ("finished", format_time(run.finished)),
        ("view", run.view),
        ("themes", str(len(content.themes))),
        ("topics", str(len(content.topics))),
        ("items in run", str(run.n_items)),
        ("items stored now", str(content.items_now)),
        ("awaiting a topic", str(content.pending)),
        ("report made", format_time(content.generated)),
    ]
    cells = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
    return f"<header><h1>{esc(title)}</h1><dl class=facts>{cells}</dl></header>"


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
        f'<a class=term href="#topic-{t.topic_id}">{t.topic_id} {esc(short(label_of(t), 40))}</a>'
        for t in topics
    )
    words = representation_of(theme).words or tuple((w, math.nan) for w in theme.words)
    alt = f"exemplars of theme T{theme.theme_id}"
    return (
        f'<tr id="theme-{theme.theme_id}" class="{theme.status}"><td class=num>T{theme.theme_id}</td>'
        f'<td><img class=tile src="{esc(tile)}" alt="{esc(alt)}" width="{TILE_SIDE // 2}"></td>'
        f"<td class=label>{esc(label_of(theme))}</td>"
        f"<td class=num>{theme.size}</td><td class=num>{esc(change_text(theme))}</td>"
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
    rep = representation_of(topic)
    name = label_of(topic)
    width = max(1, round(80 * topic.size / largest))
    words = rep.words or tuple((w, math.nan) for w in topic.words)
    keywords = rep.keywords or tuple((k, math.nan) for k in topic.keywords)
    captions = (rep.captions or rep.generated_captions)[:N_CAPTIONS]
    change = change_text(topic)
    trend = "up" if topic.change > 0 else "down" if topic.change < 0 else "flat"
    return (
        f'<tr id="topic-{topic.topic_id}" class="{topic.status}">'
        f"<td class=num>{topic.topic_id}</td>"
        f"<td class=num>{_theme_link(topic.theme_id)}</td>"
        f'<td><img class=tile src="{esc(tile)}" alt="{esc(f"exemplars of topic {topic.topic_id}")}" '
        f'width="{TILE_SIDE // 2}"></td>'
        f"<td class=label>{esc(name)}</td>"
        f'<td class=num>{topic.size}<span class=bar style="width:{width}px"></span></td>'
        f'<td class="num {trend}">{esc(change)}</td>'
        f"<td>{esc(topic.status)}</td>"
        f"<td class=terms>{_scored(words)}</td><td class=terms>{_scored(keywords)}</td>"
        f"<td>{_captions(captions)}</td></tr>"
    )


def _theme_link(theme_id: int | None) -> str:
    return "" if theme_id is None else f'<a href="#theme-{theme_id}">T{theme_id}</a>'


def _scored(terms: Sequence[tuple[str, float]]) -> str:
    if not terms:
        return "<span class=none>none</span>"
    shown = [
        f"<span class=term>{esc(term)}"
        + ("" if math.isnan(score) else f" <small>{score:.2f}</small>")
        + "</span>"
        for term, score in terms
    ]
    return "".join(shown)


def _captions(captions: Sequence[str]) -> str:
    if not captions:
        return "<span class=none>none</span>"
    return "<ul>" + "".join(f"<li>{esc(short(c, CAPTION_CHARS))}</li>" for c in captions) + "</ul>"


def _lineage_section(content: ReportContent) -> str:
    topics = Counter(e.kind for e in content.events if e.level == "topic")
    themes = Counter(f"theme {e.kind}" for e in content.events if e.level == "theme")
    summary = ", ".join(f"{n} {kind}" for kind, n in [*sorted(topics.items()), *sorted(themes.items())])
    summary = summary or "no events"
    notable = [e for e in content.events if e.kind != "survived"]
    items = "".join(f"<li>{esc(_event_text(e))}</li>" for e in notable)
    gone = "".join(
        f"<li>topic {t.topic_id} ({esc(label_of(t))}) vanished, it had {-t.change} items</li>"
        for t in content.vanished
    )
    listed = f"<ul>{items}{gone}</ul>" if items or gone else ""
    return f"<h2>Lineage of run {content.run.run_id}</h2><p>{esc(summary)}.</p>{listed}"


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
        f"<tr><td class=num>{r.run_id}</td><td>{esc(format_time(r.finished))}</td>"
        f"<td class=num>{r.n_items}</td><td class=num>{r.n_topics}</td>"
        f"<td class=num>{(r.finished - r.started).total_seconds():.1f}</td></tr>"
        for r in reversed(runs)
    )
    head = "<tr><th>run</th><th>finished</th><th>items</th><th>topics</th><th>seconds</th></tr>"
    return f"<h2>Recent runs</h2><table class=runs><thead>{head}</thead><tbody>{rows}</tbody></table>"


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
