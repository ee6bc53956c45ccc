"""Tiles: one grid JPEG per topic showing its exemplars, rebuilt only when they change.

Each image keeps its aspect ratio and is letterboxed into a square cell. An image that is missing,
remote, broken or too large becomes a blank cell: one bad file must not cost a topic its tile.
The fingerprint of the exemplars is written into the JPEG's comment, so "is this tile current?"
needs only the file's header.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from indexer.atomic import atomic_file

BACKGROUND = (24, 24, 24)  # dark letterbox bands also set neighbouring cells apart


def tile_fingerprint(
    item_ids: Sequence[str], image_paths: Sequence[str | None], *, cell: int, grid: int
) -> str:
    """A short digest of what a tile shows and how; equal digests mean the tile need not be rebuilt."""
    digest = hashlib.sha256(f"v1|{cell}|{grid}".encode())
    for item_id, path in zip(item_ids, image_paths, strict=True):
        digest.update(f"|{item_id}={path or ''}".encode())
    return digest.hexdigest()[:32]


def tile_is_current(out_path: Path, fingerprint: str) -> bool:
    """True when `out_path` exists and was built from exemplars with this fingerprint."""
    try:
        with Image.open(out_path) as image:
            comment = image.info.get("comment", b"")
    except (OSError, ValueError):
        return False
    if isinstance(comment, bytes):
        comment = comment.decode("ascii", "replace")
    return comment == fingerprint


def build_tile(
    image_paths: Sequence[str | Path | None],
    out_path: Path,
    *,
    cell: int = 256,
    grid: int = 3,
    fingerprint: str | None = None,
    quality: int = 88,
) -> Path:
    """Write a `grid`×`grid` JPEG of the images (first `grid²` used; missing ones blank) atomically."""
    side = grid * cell
    canvas = Image.new("RGB", (side, side), BACKGROUND)
    for index, path in enumerate(list(image_paths)[: grid * grid]):
        thumb = _thumbnail(path, cell)
        if thumb is None:
            continue
        row, col = divmod(index, grid)
        left = col * cell + (cell - thumb.width) // 2
        top = row * cell + (cell - thumb.height) // 2
        canvas.paste(thumb, (left, top))
    with atomic_file(Path(out_path)) as handle:
        canvas.save(handle, format="JPEG", quality=quality, optimize=True, comment=fingerprint or "")
    return Path(out_path)


def _thumbnail(path: str | Path | None, cell: int) -> Image.Image | None:
    if path is None or not _is_local(str(path)):
        return None
    try:
        with Image.open(path) as image:
            image.draft("RGB", (cell, cell))  # JPEG: decode at reduced scale, far faster for big photos
            image = ImageOps.exif_transpose(image).convert("RGB")
            return ImageOps.contain(image, (cell, cell), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _is_local(path: str) -> bool:
    return "://" not in path and os.path.isfile(path)
