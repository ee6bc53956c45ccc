"""Tiles embedded in the page: each re-encoded as a small JPEG `data:` URI, only from inside the data dir."""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from topics.catalog import Theme, Topic
from topics.report.pieces import anchor

TILE_SIDE = 300  # pixels: the tile as shown; keeps a page of a thousand topics in tens of MB
MAX_TILE_BYTES = 20 * 1024 * 1024
PLACEHOLDER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="150" height="150">'
    '<rect width="150" height="150" fill="#ddd"/>'
    '<text x="75" y="80" font-size="14" text-anchor="middle" fill="#666">no tile</text></svg>'
)
PLACEHOLDER = "data:image/svg+xml;base64," + base64.b64encode(PLACEHOLDER_SVG.encode()).decode()


def tile_uris(records: Sequence[Topic | Theme], root: Path) -> dict[str, str]:
    """Each topic's and theme's tile as a `data:` URI (a placeholder when it has none or it cannot be
    read), by its anchor (`topic-12`, `theme-3`)."""
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        uris = pool.map(lambda t: tile_data_uri(t.tile, root), records)
        return {anchor(t): uri for t, uri in zip(records, uris, strict=True)}


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
