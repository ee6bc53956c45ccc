"""`topics trends`: items per topic per day, week or month, and the report's small-multiples chart.

An item counts in the period of its created time (the source's date), or of its ingest time when the
source gave none. Topics are counted as curated (a merge member's items under the merge's first id);
hidden topics are left out unless asked for by id. One payload scroll; memory is topics × periods.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from indexer.index import Index
from topics import catalog
from topics.curation import layer as curation
from topics.errors import InvalidInput, NotFound

Every = Literal["day", "week", "month"]
EVERY: tuple[str, ...] = ("day", "week", "month")
SCROLL_BATCH = 4096


@dataclass(frozen=True)
class TopicTrend:
    topic_id: int
    label: str | None
    total: int
    counts: tuple[int, ...]  # one per period of `Trends.periods`


@dataclass(frozen=True)
class Trends:
    every: str
    periods: tuple[str, ...]  # oldest first, with no gaps
    topics: tuple[TopicTrend, ...]  # largest total first
    undated: int  # items with neither a created nor an ingest time

    def as_dict(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "periods": list(self.periods),
            "topics": [
                {"id": t.topic_id, "label": t.label, "total": t.total, "counts": list(t.counts)}
                for t in self.topics
            ],
            "undated": self.undated,
        }


def period_of(when: str, every: str) -> str | None:
    """The period an ISO date or datetime falls in: 2026-03-09, 2026-W11 or 2026-03 (None: unreadable)."""
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    if every == "day":
        return moment.date().isoformat()
    if every == "week":
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year}-{moment.month:02d}"


def _next(period: str, every: str) -> str:
    if every == "day":
        return date.fromordinal(date.fromisoformat(period).toordinal() + 1).isoformat()
    if every == "week":
        year, week = int(period[:4]), int(period[6:])
        monday = date.fromisocalendar(year, week, 1)
        return period_of(date.fromordinal(monday.toordinal() + 7).isoformat(), "week") or period
    year, month = int(period[:4]), int(period[5:])
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def _span(seen: Iterable[str], every: str, limit: int = 5000) -> tuple[str, ...]:
    """Every period from the first seen to the last, gaps filled (at most `limit`)."""
    ordered = sorted(seen)
    if not ordered:
        return ()
    out = [ordered[0]]
    while out[-1] < ordered[-1] and len(out) < limit:
        out.append(_next(out[-1], every))
    return tuple(out)


def trends(
    index: Index,
    topic_ids: Sequence[int] = (),
    *,
    every: str = "week",
    progress: Callable[[int], None] | None = None,
) -> Trends:
    """Item counts per topic per period (all shown topics, or those named)."""
    if every not in EVERY:
        raise InvalidInput(f"--every {every!r}: use day, week or month")
    run = catalog.current_run(index.backend)
    if run is None:
        raise NotFound("no topics yet: run `topics recluster` (or `topics serve`) first")
    cur = curation.load(index.backend, run)
    topics = {t.topic_id: t for t in curation.curate(catalog.list_topics(index.backend, run=run), cur)}
    unknown = [t for t in topic_ids if t not in topics]
    if unknown:
        raise NotFound(f"no topic {unknown[0]} (see `topics list`)")
    wanted = set(topic_ids) or {t for t, topic in topics.items() if curation.shown(topic)}
    counts, undated = _count(index, run, cur, wanted, every, progress)
    periods = _span({p for _, p in counts}, every)
    found = [
        TopicTrend(t, topics[t].label, total, tuple(counts.get((t, p), 0) for p in periods))
        for t, total in _totals(counts).items()
    ]
    found.sort(key=lambda t: (-t.total, t.topic_id))
    return Trends(every, periods, tuple(found), undated)


def _count(index, run, cur, wanted, every, progress) -> tuple[Counter, int]:
    counts: Counter = Counter()
    undated = 0
    for batch in index.items.scroll(batch=SCROLL_BATCH):
        for point in batch:
            found = catalog.read_assignment(point.payload, run)
            if found is None or found.topic < 0 or cur.target(found.topic) not in wanted:
                continue
            when = point.payload.get("created_at") or point.payload.get("ingested_at")
            period = period_of(when, every) if when else None
            if period is None:
                undated += 1
            else:
                counts[(cur.target(found.topic), period)] += 1
        if progress is not None:
            progress(len(batch))
    return counts, undated


def _totals(counts: Counter) -> dict[int, int]:
    totals: Counter = Counter()
    for (topic, _period), n in counts.items():
        totals[topic] += n
    return dict(totals)


# ---- the report's chart ----

CELL_W, CELL_H, COLUMNS = 240, 90, 3


def small_multiples_svg(found: Trends, n_topics: int = 9) -> str:
    """One small bar chart per top topic, on a shared count scale (inline SVG, no script)."""
    shown = found.topics[:n_topics]
    if not shown or not found.periods:
        return "<p class=note>No dated items to chart.</p>"
    peak = max(max(t.counts) for t in shown) or 1
    rows = (len(shown) + COLUMNS - 1) // COLUMNS
    cells = "".join(_cell(t, i, peak, found) for i, t in enumerate(shown))
    width, height = COLUMNS * CELL_W, rows * CELL_H
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="items per {found.every} of the largest topics">'
        f"{cells}</svg>"
    )


def _cell(trend: TopicTrend, i: int, peak: int, found: Trends) -> str:
    x0, y0 = (i % COLUMNS) * CELL_W + 8, (i // COLUMNS) * CELL_H
    plot_w, plot_h = CELL_W - 24, CELL_H - 34
    bar_w = plot_w / len(found.periods)
    bars = "".join(
        f'<rect x="{x0 + j * bar_w:.1f}" y="{y0 + 22 + plot_h * (1 - n / peak):.1f}" '
        f'width="{max(bar_w - 1, 0.5):.1f}" height="{plot_h * n / peak:.1f}" fill="#4a7fb5">'
        f"<title>{html.escape(found.periods[j])}: {n}</title></rect>"
        for j, n in enumerate(trend.counts)
        if n
    )
    name = html.escape(f"{trend.topic_id}: {trend.label or ''}"[:38], quote=True)
    span = html.escape(f"{found.periods[0]} … {found.periods[-1]}", quote=True)
    return (
        f'<text x="{x0}" y="{y0 + 14}" font-size="12">{name} ({trend.total})</text>{bars}'
        f'<line x1="{x0}" x2="{x0 + plot_w}" y1="{y0 + 22 + plot_h}" y2="{y0 + 22 + plot_h}" '
        f'stroke="#999"/><text x="{x0}" y="{y0 + CELL_H - 2}" font-size="9" fill="#666">{span}</text>'
    )
