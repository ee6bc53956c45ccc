"""A folder of images with optional sidecar captions, scanned recursively in a deterministic order.

Layout rules:
- Images are recognised by extension (jpg jpeg png webp gif bmp tif tiff avif jp2 svg svgz, any
  case). A file with the wrong content still comes through: decoding reports it (``not-an-image``)
  with its path.
- Picture and video files that no decoder here reads (HEIC, JPEG XL, RAW, PSD, MP4, MOV, ...) are never
  dropped silently: each yields a `SourceError` ``unsupported-format``, and its sidecar caption, if
  any, is still stored as a caption-only item.
- An image's caption sidecar is ``cat.jpg.txt`` or ``cat.txt``; its JSON sidecar ``cat.jpg.json`` or
  ``cat.json`` (the first form wins where both exist, as gallery-dl writes it). The caption comes from
  the text sidecar, else from the first of ``caption``, ``text``, ``title``, ``description`` in the
  JSON; the JSON's other scalar fields become metadata.
- A broken sidecar never costs the image: the scan yields a `SourceError` for the sidecar (reason
  ``bad-sidecar``) and then the image without what the sidecar would have added. The sidecar's size and
  mtime still enter the entry's `sidecars`, so fixing it re-ingests the image.
- A ``.txt`` or ``.json`` that belongs to no image is a caption-only item (a ``notes.txt`` with a
  ``notes.json`` beside it is one item: text from the first, metadata from the second).
- Hidden files and folders (``.name``) and partial downloads (``*.part``, ``*.crdownload``, ``*.tmp``)
  are skipped; symlinked folders are not followed (no loops).
- A file or folder whose name is not valid UTF-8 (a Latin-1 name from an old archive) cannot be kept
  in the ledger or a payload as it is: it yields one `SourceError` ``bad-file-name`` with the name
  shown as ``\\xNN`` escapes, and the scan goes on (a folder so named is not entered).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from indexer.errors import InvalidInput, NotAFolder
from indexer.items import Item
from indexer.sources import (
    Caption,
    SourceError,
    bad_file_name,
    caption_from_bytes,
    clean_caption,
    decode_text,
    displayable,
    guarded,
    is_storable_name,
    scalar_metadata,
)

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".jp2", ".svg", ".svgz"}
)
UNSUPPORTED_SUFFIXES: dict[str, str] = {
    **dict.fromkeys((".heic", ".heif", ".jxl", ".psd"), "picture"),
    **dict.fromkeys((".cr2", ".cr3", ".nef", ".arw", ".dng", ".orf", ".rw2", ".raf"), "camera RAW picture"),
    **dict.fromkeys(
        (".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".wmv", ".mpg", ".mpeg", ".3gp"), "video"
    ),
}
PARTIAL_SUFFIXES = frozenset({".part", ".crdownload", ".tmp"})
CAPTION_KEYS = ("caption", "text", "title", "description")
_OURS = IMAGE_SUFFIXES | frozenset(UNSUPPORTED_SUFFIXES) | {".txt", ".json"}  # what a scan reports on


class SidecarStamp(NamedTuple):
    """One caption file of an item as it was when read: a change in any field means an edit."""

    name: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class FolderEntry:
    """One item found in a folder, with what the ledger needs to tell later whether it changed.

    `path`, `size` and `mtime_ns` describe the item's main file (the image, or the caption file of a
    caption-only item); `sidecars` its other caption files (none: ``()``).
    """

    item: Item
    path: Path
    size: int
    mtime_ns: int
    sidecars: tuple[SidecarStamp, ...] = ()


def sidecar_signature(stamps: Sequence[SidecarStamp]) -> str:
    """Sidecar stamps as the ledger stores them: JSON (``""`` for none), so any file name survives."""
    if not stamps:
        return ""
    return json.dumps([list(s) for s in stamps], ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class _FileInfo:
    path: Path
    size: int
    mtime_ns: int


@dataclass
class _Sidecars:
    """What an item's caption files added, and what went wrong reading them."""

    caption: Caption | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    stamps: dict[str, SidecarStamp] = field(default_factory=dict)  # by file name
    errors: list[SourceError] = field(default_factory=list)


def scan_folder(root: Path, *, max_caption_bytes: int) -> Iterator[FolderEntry | SourceError]:
    """Every image and caption-only item under `root`, files of a folder before its subfolders."""
    root = Path(os.path.abspath(root))
    if not root.is_dir():
        raise NotAFolder(f"not a folder: {displayable(str(root))}")
    if not is_storable_name(str(root)):
        raise InvalidInput(f"{bad_file_name(root).origin}: the folder's name is not valid UTF-8; rename it")
    for found in _walk(root):
        if isinstance(found, SourceError):
            yield found
        else:
            directory, names = found
            yield from _scan_directory(root, directory, names, max_caption_bytes)


def scan_directory(
    root: Path, directory: Path, *, max_caption_bytes: int
) -> Iterator[FolderEntry | SourceError]:
    """The items of one folder of the tree under `root`, not its subfolders (what a watch event needs)."""
    root, directory = Path(os.path.abspath(root)), Path(os.path.abspath(directory))
    if not is_storable_name(str(directory)):
        yield bad_file_name(directory)
        return
    try:
        with os.scandir(directory) as listing:
            names = sorted(e.name for e in listing if not _skipped(e.name) and not _is_real_dir(e))
    except FileNotFoundError:
        return
    except OSError as error:
        yield SourceError(str(directory), "unreadable", f"cannot list folder: {error.strerror or error}")
        return
    yield from _scan_directory(root, directory, names, max_caption_bytes)


def _skipped(name: str) -> bool:
    return name.startswith(".") or Path(name).suffix.lower() in PARTIAL_SUFFIXES


def _walk(root: Path) -> Iterator[tuple[Path, list[str]] | SourceError]:
    """Depth first, names sorted: the same tree always gives the same order."""
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted((e for e in listing if not _skipped(e.name)), key=lambda e: e.name)
        except OSError as error:
            yield SourceError(str(directory), "unreadable", f"cannot list folder: {error.strerror or error}")
            continue
        subdirs = [e.name for e in entries if _is_real_dir(e)]
        yield from (bad_file_name(directory / name) for name in subdirs if not is_storable_name(name))
        yield directory, [e.name for e in entries if e.name not in subdirs]
        stack.extend(directory / name for name in reversed(subdirs) if is_storable_name(name))


def _is_real_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _scan_directory(
    root: Path, directory: Path, names: list[str], max_caption_bytes: int
) -> Iterator[FolderEntry | SourceError]:
    unstorable = [name for name in names if not is_storable_name(name)]
    if unstorable:
        yield from (bad_file_name(directory / n) for n in unstorable if Path(n).suffix.lower() in _OURS)
        names = [name for name in names if is_storable_name(name)]
    present = set(names)
    used: set[str] = set()
    for name in names:
        suffix = Path(name).suffix.lower()
        if suffix in UNSUPPORTED_SUFFIXES:
            yield _unsupported(directory / name, suffix)
        elif suffix in IMAGE_SUFFIXES:
            text, meta = _sidecar_name(name, present, ".txt"), _sidecar_name(name, present, ".json")
            used.update(n for n in (text, meta) if n)
            found = _image_entry(root, directory, name, text, meta, max_caption_bytes)
            yield from guarded(str(directory / name), found)
    captions: dict[str, dict[str, str]] = {}
    for name in names:
        path = Path(name)
        if name not in used and path.suffix.lower() in (".txt", ".json"):
            captions.setdefault(path.stem, {})[path.suffix.lower()] = name
    for names_of in captions.values():
        text, meta = names_of.get(".txt"), names_of.get(".json")
        found = _caption_entry(root, directory, text, meta, max_caption_bytes)
        yield from guarded(str(directory / (text or meta or "")), found)


def _unsupported(path: Path, suffix: str) -> SourceError:
    kind = UNSUPPORTED_SUFFIXES[suffix]
    detail = f"{suffix[1:].upper()} {kind}: no decoder for it here (convert it to JPEG, PNG or WebP)"
    return SourceError(str(path), "unsupported-format", detail)


def _sidecar_name(image: str, present: set[str], suffix: str) -> str | None:
    for candidate in (image + suffix, Path(image).stem + suffix):
        for name in (candidate, candidate[: -len(suffix)] + suffix.upper()):
            if name in present:
                return name
    return None


def _image_entry(
    root: Path, directory: Path, name: str, text: str | None, meta: str | None, max_bytes: int
) -> Iterator[FolderEntry | SourceError]:
    image = _file_info(directory / name)
    if not isinstance(image, _FileInfo):
        yield from [image] if image else []
        return
    sidecars = _read_sidecars(directory, text, meta, max_bytes)
    yield from (_as_sidecar_error(e) for e in sidecars.errors)
    yield _entry(root, image, sidecars, image=str(image.path))


def _caption_entry(
    root: Path, directory: Path, text: str | None, meta: str | None, max_bytes: int
) -> Iterator[FolderEntry | SourceError]:
    primary_name = text or meta
    assert primary_name is not None
    primary = _file_info(directory / primary_name)
    if not isinstance(primary, _FileInfo):
        yield from [primary] if primary else []
        return
    sidecars = _read_sidecars(directory, text, meta, max_bytes)
    sidecars.stamps.pop(primary_name, None)  # the main file's own size and mtime are in the entry
    origin = str(primary.path)
    yield from (e if e.origin == origin else _as_sidecar_error(e) for e in sidecars.errors)
    if any(e.origin == origin for e in sidecars.errors):
        return
    if sidecars.caption is None or not sidecars.caption.text:
        yield SourceError(origin, "no-caption", "a caption-only file without caption text")
        return
    yield _entry(root, primary, sidecars, image=None)


def _as_sidecar_error(error: SourceError) -> SourceError:
    return SourceError(error.origin, "bad-sidecar", f"{error.reason}: {error.detail}")


def _entry(root: Path, main: _FileInfo, sidecars: _Sidecars, *, image: str | None) -> FolderEntry:
    caption = sidecars.caption
    metadata: dict[str, Any] = {**sidecars.metadata, "relative_path": main.path.relative_to(root).as_posix()}
    if caption is not None and caption.truncated:
        metadata["caption_truncated"] = True
    item = Item(
        source="folder",
        origin=str(main.path),
        image=image,
        caption=caption.text if caption and caption.text else None,
        created_at=datetime.fromtimestamp(main.mtime_ns / 1e9, UTC).isoformat(timespec="seconds"),
        metadata=metadata,
        with_caption_in_id=False,
    )
    return FolderEntry(item, main.path, main.size, main.mtime_ns, tuple(sidecars.stamps.values()))


def _file_info(path: Path) -> _FileInfo | SourceError | None:
    """Size and mtime of a regular file; None when it vanished since the listing (the sweep sees it)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        return SourceError(str(path), "unreadable", error.strerror or str(error))
    if not stat.S_ISREG(info.st_mode):
        return None
    return _FileInfo(path, info.st_size, info.st_mtime_ns)


def _read_sidecars(directory: Path, text: str | None, meta: str | None, max_bytes: int) -> _Sidecars:
    """Read the text and JSON caption files; errors are ``unreadable`` or ``bad-json``."""
    sidecars = _Sidecars()
    for name in (text, meta):
        if name is None:
            continue
        path = directory / name
        try:
            info = path.stat()
            data, complete = _read_prefix(path, max_bytes)
        except OSError as error:
            sidecars.errors.append(SourceError(str(path), "unreadable", error.strerror or str(error)))
            continue
        sidecars.stamps[name] = SidecarStamp(name, info.st_size, info.st_mtime_ns)
        if name == text:
            sidecars.caption = caption_from_bytes(data, max_bytes=max_bytes, complete=complete)
        else:
            _add_json(sidecars, path, data, complete, max_bytes)
    return sidecars


def _read_prefix(path: Path, max_bytes: int) -> tuple[bytes, bool]:
    """At most what a `max_bytes` caption can need (UTF-16 takes two bytes per character or more)."""
    limit = 2 * max_bytes + 4
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    return data[:limit], len(data) <= limit


def _add_json(sidecars: _Sidecars, path: Path, data: bytes, complete: bool, max_bytes: int) -> None:
    try:
        if not complete:
            raise ValueError(f"larger than {len(data)} bytes")
        document = json.loads(decode_text(data))
    except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError; nested too deep
        sidecars.errors.append(SourceError(str(path), "bad-json", f"invalid JSON: {error}"))
        return
    if isinstance(document, str):
        document = {"caption": document}
    if not isinstance(document, Mapping):
        kind = type(document).__name__
        sidecars.errors.append(SourceError(str(path), "bad-json", f"expected a JSON object, got {kind}"))
        return
    has_text = sidecars.caption is not None and bool(sidecars.caption.text)
    key = None if has_text else _caption_key(document)  # a non-empty text sidecar wins
    if key is not None:
        sidecars.caption = clean_caption(document[key], max_bytes=max_bytes)
    sidecars.metadata.update(scalar_metadata(document, skip=[key] if key else []))


def _caption_key(document: Mapping[str, Any]) -> str | None:
    lowered = {k.lower(): k for k in document if isinstance(k, str)}
    for wanted in CAPTION_KEYS:
        key = lowered.get(wanted)
        if key is not None and isinstance(document[key], str) and document[key].strip():
            return key
    return None
