"""Manifests: a CSV/TSV or JSONL/NDJSON file with one image/caption pair per row (a 4CAT export, a
spreadsheet, a scraper's output).

Columns are found by name from candidate lists (`ManifestColumns`), case-insensitively, so a 4CAT
export (``id, body, image_file, timestamp, author, ...``) works as is. Other scalar columns become
metadata. A bad row becomes a `SourceError` naming ``manifest.csv:LINE`` and reading goes on.

Image references are either http(s) URLs, passed through, or paths: relative ones resolve against the
manifest's folder, and any path (``../``, absolute, or a symlink) that resolves outside that folder and
`allowed_roots` is refused, so a manifest from elsewhere cannot make the indexer read arbitrary files.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import InvalidInput
from indexer.items import Item
from indexer.sources import SourceError, clean_caption, internal_error, repair_text, scalar_metadata

JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
CSV_FIELD_LIMIT = 2**31 - 1  # megabyte captions; the csv module's default stops at 128 kB
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")  # two letters at least: C:\ is a path
_VECTOR_VIEWS = {"vector_image": "image", "vector_text": "text", "vector_caption": "caption"}


class ManifestError(InvalidInput):
    """The manifest as a whole cannot be read (no usable columns); rows are not even tried."""


@dataclass(frozen=True)
class ManifestColumns:
    """Candidate column names per role, first match wins (case-insensitive).

    Pass a string or a tuple to override one role: ``ManifestColumns(caption="message")``. Plain
    ``url`` is not an image candidate: in most exports it is the post's page, not its picture.
    """

    id: tuple[str, ...] | str = ("id", "item_id", "post_id")
    caption: tuple[str, ...] | str = ("caption", "body", "text", "description", "title")
    image: tuple[str, ...] | str = (
        "image",
        "image_file",
        "image_path",
        "image_url",
        "thumbnail_url",
        "media_url",
    )
    created: tuple[str, ...] | str = ("created_at", "timestamp", "date", "created")
    vector_image: tuple[str, ...] | str = ("vector_image", "vector")
    vector_text: tuple[str, ...] | str = ("vector_text",)
    vector_caption: tuple[str, ...] | str = ("vector_caption",)

    def __post_init__(self) -> None:
        for role in fields(self):
            value = getattr(self, role.name)
            names = (value,) if isinstance(value, str) else tuple(value)
            object.__setattr__(self, role.name, tuple(n.strip().lower() for n in names))

    def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        """Which actual key plays each role in a row with these keys (roles without one are absent)."""
        by_lower: dict[str, str] = {}
        for key in keys:
            by_lower.setdefault(key.strip().lower(), key)
        roles: dict[str, str] = {}
        for role in fields(self):
            found = next((by_lower[n] for n in getattr(self, role.name) if n in by_lower), None)
            if found is not None and found not in roles.values():
                roles[role.name] = found
        return roles


@dataclass(frozen=True)
class _Context:
    directory: Path
    roots: tuple[Path, ...]
    namespace: str
    max_caption_bytes: int
    caption_columns: tuple[str, ...] = ()  # lower-case names whose texts, in this order, make the caption


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_manifest(
    path: Path,
    *,
    columns: ManifestColumns | None = None,
    allowed_roots: Sequence[Path] = (),
    namespace: str | None = None,
    max_caption_bytes: int,
    caption_columns: Sequence[str] = (),
) -> Iterator[Item | SourceError]:
    """Items from a CSV/TSV or JSONL/NDJSON manifest, in file order; bad rows as `SourceError`.

    `caption_columns`: the caption is the texts of these columns, in this order, joined by a blank
    line (4CAT: ``body`` then ``Transcript``); empty ones are left out. A CSV lacking one is refused.
    """
    names = tuple(n.strip().lower() for n in caption_columns if n.strip())
    columns = replace(columns or ManifestColumns(), caption=names) if names else columns or ManifestColumns()
    directory = path.resolve().parent
    context = _Context(
        directory=directory,
        roots=(directory, *(Path(root).resolve() for root in allowed_roots)),
        namespace=namespace or "manifest",
        max_caption_bytes=max_caption_bytes,
        caption_columns=names,
    )
    rows = _jsonl_rows(path) if _is_jsonl(path) else _csv_rows(path, columns, names)
    cached_roles: dict[tuple[str, ...], dict[str, str]] = {}
    for line, row in rows:
        origin = f"{path}:{line}"
        if isinstance(row, SourceError):
            yield row
            continue
        keys = tuple(row)
        roles = cached_roles.get(keys) or cached_roles.setdefault(keys, columns.resolve(keys))
        yield _row_item(row, roles, context, origin)


def count_rows(path: Path, columns: ManifestColumns | None = None) -> int:
    """How many items or errors `read_manifest` yields for `path` (one per non-blank row)."""
    if _is_jsonl(path):
        with path.open("rb") as handle:
            return sum(1 for number, raw in enumerate(handle, start=1) if _jsonl_text(raw, number).strip())
    return sum(1 for _ in _csv_rows(path, columns or ManifestColumns()))


def _is_jsonl(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return True
    if suffix in {".csv", ".tsv", ".txt"}:
        return False
    with path.open("rb") as handle:
        return handle.read(4096).removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"{")


# -- reading rows ------------------------------------------------------------------------------------


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | SourceError]]:
    """One JSON object per line; a malformed line is reported and skipped."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            text = _jsonl_text(raw, number)
            if not text.strip():
                continue
            origin = f"{path}:{number}"
            try:
                row = json.loads(text)
            except (ValueError, RecursionError) as error:  # RecursionError: nested a thousand deep
                yield number, SourceError(origin, "bad-json", str(error))
                continue
            if not isinstance(row, dict):
                yield number, SourceError(origin, "bad-json", f"expected an object, got {type(row).__name__}")
                continue
            yield number, row


def _jsonl_text(raw: bytes, number: int) -> str:
    """Line `number` as text (a BOM is dropped from the first); `count_rows` counts what is not blank."""
    line = raw.removeprefix(codecs.BOM_UTF8) if number == 1 else raw
    return line.decode("utf-8", errors="surrogateescape")


def _csv_rows(
    path: Path, columns: ManifestColumns, caption_columns: Sequence[str] = ()
) -> Iterator[tuple[int, dict[str, Any] | SourceError]]:
    """CSV/TSV rows by the line they start on (the header is line 1); blank lines are skipped."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)  # process-wide, but only ever raised
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        delimiter = _delimiter(path, handle.readline())
        handle.seek(0)
        reader = csv.reader(handle, delimiter=delimiter)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            return
        missing = [n for n in caption_columns if n not in {h.lower() for h in header}]
        if missing:
            raise ManifestError(f"{path}: no caption column {missing[0]!r} among {header[:20]}")
        if not {"image", "caption", "vector_image", "vector_text", "vector_caption"} & set(
            columns.resolve(header)
        ):
            raise ManifestError(f"{path}: no image, caption or vector column among {header[:20]}")
        yield from _csv_records(path, reader, header)


def _csv_records(
    path: Path, reader: Any, header: list[str]
) -> Iterator[tuple[int, dict[str, Any] | SourceError]]:
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, SourceError(f"{path}:{start}", "bad-row", str(error))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            detail = f"{len(row)} fields for {len(header)} columns"
            yield line, SourceError(f"{path}:{line}", "bad-row", detail)
            continue
        yield line, dict(zip(header, row + [""] * (len(header) - len(row)), strict=True))


def _delimiter(path: Path, header_line: str) -> str:
    """The header names the columns, so the delimiter is the separator it uses most."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    counts = {sep: header_line.count(sep) for sep in ("\t", ";", ",")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


# -- one row to one item -----------------------------------------------------------------------------


def _row_item(
    row: Mapping[str, Any], roles: dict[str, str], context: _Context, origin: str
) -> Item | SourceError:
    """The row's item or the reason it has none; a bug met on one row fails that row alone."""
    try:
        return _row_item_of(row, roles, context, origin)
    except Exception as error:
        return internal_error(origin, error)


def _row_item_of(
    row: Mapping[str, Any], roles: dict[str, str], context: _Context, origin: str
) -> Item | SourceError:
    try:
        image = _image_ref(_field(row, roles, "image"), context)
        vectors = _vectors(row, roles)
    except _Refused as refused:
        return SourceError(origin, refused.reason, refused.detail)
    joined = _joined(row, context.caption_columns)
    raw_caption = joined[0] if joined else _field(row, roles, "caption")
    caption, truncated = _caption(raw_caption, context.max_caption_bytes)
    metadata = scalar_metadata(row, skip=[*roles.values(), *(joined[1] if joined else ())])
    if truncated:
        metadata["caption_truncated"] = True
    try:
        return Item(
            source="manifest",
            origin=origin,
            image=image,
            caption=caption,
            source_id=_text(_field(row, roles, "id")),
            namespace=context.namespace,
            created_at=_created(_field(row, roles, "created")),
            metadata=metadata,
            vectors=vectors,
            with_caption_in_id=True,
        )
    except ValueError:
        return SourceError(origin, "empty-row", "no image, caption or vector")


def _joined(row: Mapping[str, Any], names: Sequence[str]) -> tuple[str | None, list[str]] | None:
    """The caption made of the named columns' texts in order, and those columns' actual keys."""
    if not names:
        return None
    by_lower = {key.strip().lower(): key for key in row}
    keys = [by_lower[n] for n in names if n in by_lower]
    texts = [text for text in (_text(row[k]) for k in keys) if text]
    return ("\n\n".join(texts) or None), keys


def _field(row: Mapping[str, Any], roles: dict[str, str], role: str) -> Any:
    return row[roles[role]] if role in roles else None


def _text(value: Any) -> str | None:
    """A scalar as stripped text; empty, missing and nested values are None."""
    if value is None or isinstance(value, dict | list):
        return None
    text = repair_text(value).strip() if isinstance(value, str) else str(value)
    return text or None


def _caption(value: Any, max_bytes: int) -> tuple[str | None, bool]:
    text = _text(value)
    if text is None:
        return None, False
    caption = clean_caption(text, max_bytes=max_bytes)
    return caption.text or None, caption.truncated


def _image_ref(value: Any, context: _Context) -> str | None:
    """An http(s) URL as is, or a path resolved and checked against the allowed roots."""
    reference = _text(value)
    if reference is None:
        return None
    scheme = _SCHEME.match(reference)
    if scheme:
        if scheme.group(1).lower() in ("http", "https"):
            return reference
        raise _Refused("refused-scheme", f"{scheme.group(1)}: references are not read ({reference[:200]})")
    if "\x00" in reference:
        raise _Refused("bad-path", f"a NUL byte in the image path {reference[:200]!r}")
    path = Path(reference)
    resolved = (path if path.is_absolute() else context.directory / path).resolve()
    if not any(resolved.is_relative_to(root) for root in context.roots):
        raise _Refused("outside-allowed-roots", f"{reference[:200]} resolves to {resolved}")
    return str(resolved)


def _vectors(row: Mapping[str, Any], roles: dict[str, str]) -> dict[str, np.ndarray]:
    vectors: dict[str, np.ndarray] = {}
    for role, view in _VECTOR_VIEWS.items():
        value = _field(row, roles, role)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        vectors[view] = _vector(value, roles[role])
    return vectors


def _vector(value: Any, column: str) -> np.ndarray:
    """A JSON list of finite numbers (a string in CSV, a list in JSONL)."""
    try:
        numbers = json.loads(value) if isinstance(value, str) else value
        vector = np.asarray(numbers, dtype=np.float32)
    except (ValueError, TypeError, RecursionError) as error:
        raise _Refused("bad-vector", f"{column}: not a list of numbers ({error})") from error
    if vector.ndim != 1 or vector.size == 0 or not np.isfinite(vector).all():
        raise _Refused("bad-vector", f"{column}: need a flat, non-empty list of finite numbers")
    return vector


def _created(value: Any) -> str | None:
    """ISO 8601 in UTC where the value is an epoch or an ISO date; other text is kept as given."""
    if isinstance(value, bool):
        return None
    text = _text(value)
    if text is None:
        return None
    try:
        return _from_epoch(float(value))
    except (ValueError, TypeError, OverflowError):  # OverflowError: an integer beyond any float
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _from_epoch(seconds: float) -> str:
    if not math.isfinite(seconds):
        raise ValueError("not a time")
    if abs(seconds) > 1e11:  # milliseconds, as JavaScript and many APIs write them
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError) as error:
        raise ValueError(str(error)) from error
