"""Fuzz targets: each takes bytes, feeds them to a real reader and checks every value it yields.

A reader may yield items (an `Item`, or a folder scan's `FolderEntry`) and reasoned failures (a
`SourceError` with a reason), or refuse a whole input with its own reasoned error (`ManifestError`,
the decoder's `BadImage`). Anything else it raises is a finding, and so is a value a user could not
use: text that does not encode to UTF-8 (the store and the ledger would refuse it later: a lone
surrogate from a JSON ``"\\ud800"`` or a file name that is not UTF-8), a caption over the limit, a
metadata number that is not finite (the store refuses NaN), a row count that disagrees with the rows
read (precomputed vectors are matched to rows by position), and an ``internal`` failure (a reader's
guard turning an unexpected exception into a failure of that one input).

Targets: ``manifest_csv``, ``manifest_tsv``, ``manifest_jsonl``, ``json_feed``, ``rss``, ``atom``,
``jsonl_tail``, ``sidecars``, ``svg``, ``file_names``. Readers that need a path get a file in one
scratch folder per process, rewritten for every input.
"""

from __future__ import annotations

import atexit
import math
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.fetch import Document
from indexer.images import SVG_MAX_SIDE, BadImage, decode_image
from indexer.items import Item
from indexer.sources import SourceError
from indexer.sources.feed import HttpFeed, JsonlTail
from indexer.sources.feed_items import parse_line
from indexer.sources.folder import (
    IMAGE_SUFFIXES,
    PARTIAL_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    FolderEntry,
    scan_folder,
    sidecar_signature,
)
from indexer.sources.manifest import ManifestError, count_rows, read_manifest
from indexer.svg import looks_like_svg

MAX_CAPTION_BYTES = 64  # small, so that truncation is reached often
MAX_LINE_BYTES = 48  # the tail's line limit, small for the same reason
MAX_PIXELS = 4096 * 4096
FEED_URL = "https://feed.example/feed"


class Finding(AssertionError):
    """A reader's output that breaks what a user relies on (an unexpected exception is one too)."""


_scratch = Path(tempfile.mkdtemp(prefix="topics-fuzz-"))
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)


def _fresh(name: str) -> Path:
    """An empty folder `name` in the scratch folder (what a previous input left is removed)."""
    folder = _scratch / name
    shutil.rmtree(os.fsencode(folder), ignore_errors=True)
    folder.mkdir()
    return folder


# -- checks ---------------------------------------------------------------------------------------


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Finding(message)


def _check_text(value: Any, what: str, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    _require(isinstance(value, str), f"{what}: {type(value).__name__}, not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Finding(f"{what} does not encode to UTF-8 ({error}): {value[:200]!r}") from error


def check_error(error: SourceError) -> None:
    """A reasoned failure: a non-empty reason, and texts the ledger can store. ``internal`` is what a
    reader's guard makes of an exception it did not expect: a finding like the exception itself."""
    _require(isinstance(error.reason, str) and bool(error.reason), f"no reason: {error!r}")
    _require(error.reason != "internal", f"an unexpected exception, guarded: {error.detail}")
    _check_text(error.reason, "reason", optional=False)
    _check_text(error.origin, "error origin", optional=False)
    _check_text(error.detail, "error detail", optional=False)


def check_item(item: Item, max_caption_bytes: int = MAX_CAPTION_BYTES) -> None:
    """An item the pipeline can embed and the store can take as payload."""
    _require(isinstance(item, Item), f"{type(item).__name__}, not an Item")
    for name in ("source", "origin", "namespace"):
        _check_text(getattr(item, name), f"item {name}", optional=False)
    for name in ("image", "caption", "source_id", "created_at"):
        _check_text(getattr(item, name), f"item {name}")
    _require(bool(item.image or item.caption or item.vectors), f"an empty item: {item!r}")
    if item.caption is not None:
        size = len(item.caption.encode("utf-8"))
        _require(0 < size <= max_caption_bytes, f"caption of {size} bytes (limit {max_caption_bytes})")
    for key, value in item.metadata.items():
        _check_text(key, "metadata key", optional=False)
        if isinstance(value, str):
            _check_text(value, f"metadata {key!r}")
        elif isinstance(value, float):
            _require(math.isfinite(value), f"metadata {key!r} = {value} (the store refuses it)")
        else:
            _require(isinstance(value, bool | int), f"metadata {key!r}: {type(value).__name__}")
    for view, vector in item.vectors.items():
        _require(isinstance(vector, np.ndarray) and vector.ndim == 1 and vector.size > 0, f"vector {view}")
        _require(bool(np.isfinite(vector).all()), f"vector {view} is not finite")


def check_values(values: Iterable[Any], max_caption_bytes: int = MAX_CAPTION_BYTES) -> list[Any]:
    """Consume what a reader yields, checking each value; the values, as a list."""
    seen = []
    for value in values:
        if isinstance(value, SourceError):
            check_error(value)
        elif isinstance(value, FolderEntry):
            check_item(value.item, max_caption_bytes)
            _check_text(str(value.path), "entry path", optional=False)
            _check_text(sidecar_signature(value.sidecars), "sidecar stamps", optional=False)
        else:
            check_item(value, max_caption_bytes)
        seen.append(value)
    return seen


# -- manifests ------------------------------------------------------------------------------------


def _manifest(data: bytes, suffix: str) -> None:
    path = _fresh("manifest") / f"rows{suffix}"
    path.write_bytes(data)
    try:
        values = check_values(read_manifest(path, max_caption_bytes=MAX_CAPTION_BYTES))
    except ManifestError as error:  # the whole manifest refused, with its reason
        _require(bool(str(error)), "a ManifestError without a message")
        return
    counted = count_rows(path)
    _require(counted == len(values), f"count_rows says {counted}, read_manifest yielded {len(values)}")


def manifest_csv(data: bytes) -> None:
    _manifest(data, ".csv")


def manifest_tsv(data: bytes) -> None:
    _manifest(data, ".tsv")


def manifest_jsonl(data: bytes) -> None:
    _manifest(data, ".jsonl")


# -- HTTP feeds: a fetcher that answers the input as the document -------------------------------


class _MemoryCursors:
    def __init__(self) -> None:
        self.cursors: dict[str, str] = {}

    def get_cursor(self, name: str) -> str | None:
        return self.cursors.get(name)

    def set_cursor(self, name: str, value: str) -> None:
        _check_text(value, f"cursor {name}", optional=False)
        self.cursors[name] = value


class _Fetcher:
    def __init__(self, body: bytes, content_type: str) -> None:
        self.body, self.content_type = body, content_type

    def fetch_document(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Any:
        return Document(url, self.body, self.content_type, '"v1"', None)


def _feed(data: bytes, content_type: str) -> None:
    """One poll of an HTTP feed serving `data`, then a restarted feed polls it again: nothing twice."""
    cursors = _MemoryCursors()
    fetcher: Any = _Fetcher(data, content_type)
    feed = HttpFeed(FEED_URL, fetcher=fetcher, cursor_store=cursors, max_caption_bytes=MAX_CAPTION_BYTES)
    first = check_values(feed.poll())
    feed.commit()
    again = HttpFeed(FEED_URL, fetcher=fetcher, cursor_store=cursors, max_caption_bytes=MAX_CAPTION_BYTES)
    repeated = [r for r in check_values(again.poll()) if getattr(r, "reason", None) != "bad-feed"]
    _require(not repeated, f"{len(repeated)} of {len(first)} records yielded again after a restart")


def json_feed(data: bytes) -> None:
    _feed(data, "application/feed+json")


def rss(data: bytes) -> None:
    _feed(data, "application/rss+xml")


def atom(data: bytes) -> None:
    _feed(data, "application/atom+xml")


# -- a JSONL file followed as it grows ------------------------------------------------------------


def _record_key(record: Any) -> tuple[Any, ...]:
    if isinstance(record, SourceError):
        return ("error", record.origin, record.reason)
    return ("item", record.origin, record.caption, record.image, record.source_id, record.created_at)


def jsonl_tail(data: bytes) -> None:
    """The input appended in pieces (partial lines too), the tail polled after each and restarted at
    one point: it yields exactly the records of the complete lines, in order, once each."""
    if not data:
        return
    rng = random.Random(data[0])
    content = data[1:]
    path = _fresh("tail") / "feed.jsonl"
    path.write_bytes(b"")
    cursors = _MemoryCursors()

    def opened() -> JsonlTail:
        return JsonlTail(path, cursor_store=cursors, max_line_bytes=MAX_LINE_BYTES, max_batch=4)

    tail, got, at = opened(), [], 0
    restart_after = rng.randrange(0, 8)
    pieces = 0
    while at < len(content):
        size = rng.choice((1, 2, 3, 7, 16, 40, 100))
        with path.open("ab") as handle:
            handle.write(content[at : at + size])
        at += size
        while records := tail.poll():
            got.extend(check_values(records))
        tail.commit()
        pieces += 1
        if pieces == restart_after:
            tail.close()
            tail = opened()
    while records := tail.poll():
        got.extend(check_values(records))
    tail.close()
    complete = content[: content.rfind(b"\n") + 1].split(b"\n")[:-1]
    expected = []
    for number, line in enumerate(complete, start=1):
        if len(line) > MAX_LINE_BYTES:
            expected.append(SourceError(f"{path}:{number}", "line-too-long", ""))
        elif line.strip():
            expected.append(parse_line(line, f"{path}:{number}", tail.context))
    want, have = [_record_key(r) for r in expected], [_record_key(r) for r in got]
    if want != have:
        first = next(i for i, (w, h) in enumerate(zip([*want, None], [*have, None], strict=False)) if w != h)
        raise Finding(f"record {first}: expected {want[first : first + 1]}, got {have[first : first + 1]}")


# -- folders: sidecar captions and file names -----------------------------------------------------


def sidecars(data: bytes) -> None:
    """An image with a text and a JSON sidecar, and a caption-only note, made of the input (the first
    byte says which files exist, and whether the caption limit is small or as large as the input)."""
    if not data:
        return
    flags, rest = data[0], data[1:]
    limit = 16 * 1024 if flags & 64 else MAX_CAPTION_BYTES
    text, _, meta = rest.partition(b"\x00")
    root = _fresh("sidecars")
    (root / "photo.jpg").write_bytes(b"")
    if flags & 4:
        (root / ("photo.jpg.txt" if flags & 1 else "photo.TXT")).write_bytes(text)
    if flags & 8:
        (root / ("photo.jpg.json" if flags & 2 else "photo.json")).write_bytes(meta)
    if flags & 16:
        (root / "note.txt").write_bytes(text)
    if flags & 32:
        (root / "note.json").write_bytes(meta)
    values = check_values(scan_folder(root, max_caption_bytes=limit), limit)
    photos = [v for v in values if isinstance(v, FolderEntry) and v.path.name == "photo.jpg"]
    _require(len(photos) == 1, f"{len(photos)} entries for photo.jpg: a sidecar cost the image")
    if flags & 48:
        notes = [v for v in values if Path(v.origin if isinstance(v, SourceError) else v.path).stem == "note"]
        _require(bool(notes), "the caption-only note gave neither an item nor a reason")


_CONSIDERED = IMAGE_SUFFIXES | set(UNSUPPORTED_SUFFIXES) | {".txt", ".json"}
_CONTENT = {b".txt": b"a caption", b".json": b'{"title": "a title", "n": 1}'}


def _considered(parts: list[bytes]) -> bool:
    """Would the scanner look at this file (not hidden, not partial, a suffix it reads)?"""
    if any(part.startswith(b".") for part in parts):
        return False
    suffix = os.path.splitext(parts[-1])[1].decode("latin-1").lower()
    return suffix in _CONSIDERED and suffix not in PARTIAL_SUFFIXES


def file_names(data: bytes) -> None:
    """Files named by the input (NUL separates names, ``/`` folders; any other byte goes), scanned.

    A name that is not UTF-8 cannot be stored or shown: the scan must report it (``bad-file-name``),
    never yield an item for it.
    """
    root = _fresh("names")
    broken = False
    for name in data.split(b"\x00")[:16]:
        parts = [p[:200] for p in name.split(b"/") if p not in (b"", b".", b"..")][:4]
        if not parts:
            continue
        path = os.path.join(os.fsencode(root), *parts)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "xb") as handle:
                handle.write(_CONTENT.get(os.path.splitext(path)[1].lower(), b""))
        except OSError:  # a name taken by a folder, or a folder by a file: not this name's turn
            continue
        if _considered(parts):
            try:
                b"/".join(parts).decode("utf-8")
            except UnicodeDecodeError:
                broken = True
    values = check_values(scan_folder(root, max_caption_bytes=MAX_CAPTION_BYTES))
    if broken:
        reasons = {v.reason for v in values if isinstance(v, SourceError)}
        _require("bad-file-name" in reasons, f"a name that is not UTF-8 gave no bad-file-name ({reasons})")


# -- SVG through the image decoder ----------------------------------------------------------------


def svg(data: bytes) -> None:
    """A drawing (or gzipped drawing) decoded as a picture: a bounded RGB raster or `BadImage`."""
    if not looks_like_svg(data):
        return  # the raster formats are Pillow's; this target is about indexer/svg.py
    try:
        decoded = decode_image(data, max_pixels=MAX_PIXELS)
    except BadImage as error:
        _require(isinstance(error.reason, str) and bool(error.reason), f"BadImage without reason: {error}")
        return
    width, height = decoded.image.size
    _require(decoded.image.mode == "RGB", f"mode {decoded.image.mode}")
    _require(0 < width <= SVG_MAX_SIDE and 0 < height <= SVG_MAX_SIDE, f"raster {width}x{height}")


TARGETS: dict[str, Callable[[bytes], None]] = {
    "manifest_csv": manifest_csv,
    "manifest_tsv": manifest_tsv,
    "manifest_jsonl": manifest_jsonl,
    "json_feed": json_feed,
    "rss": rss,
    "atom": atom,
    "jsonl_tail": jsonl_tail,
    "sidecars": sidecars,
    "svg": svg,
    "file_names": file_names,
}
