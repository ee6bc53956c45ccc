"""`topics report`: one self-contained HTML page of the current run that opens offline.

`content` reads what the page shows, `tiles` embeds the tiles, `map` draws the topic map, `page`
renders the HTML (its docstring says what the page holds and how it is kept safe), `pieces` are the
small text helpers they share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.atomic import write_bytes_atomic
from indexer.index import Index
from topics.report.content import ReportContent, ReportError, read_content
from topics.report.map import (
    MAP_H,
    MAP_W,
    MapLabel,
    label_box,
    map_svg,
    place_labels,
    project_2d,
    theme_colours,
)
from topics.report.page import CSP, render_page
from topics.report.pieces import anchor
from topics.report.tiles import PLACEHOLDER, tile_data_uri, tile_uris

__all__ = [
    "CSP",
    "MAP_H",
    "MAP_W",
    "PLACEHOLDER",
    "MapLabel",
    "ReportContent",
    "ReportError",
    "ReportSummary",
    "build_report",
    "label_box",
    "map_svg",
    "place_labels",
    "project_2d",
    "read_content",
    "render_page",
    "theme_colours",
    "tile_data_uri",
    "tile_uris",
]


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
    page = render_page(content, title=title, tile_of=lambda t: tiles[anchor(t)])
    data = page.encode("utf-8")
    try:
        write_bytes_atomic(out, data)
    except OSError as error:
        raise ReportError(f"cannot write the report to {out}: {error.strerror or error}") from error
    return ReportSummary(out, len(content.topics), content.run.n_items, len(data), len(content.themes))
