"""Sources turn folders, manifests and feeds into `Item`s. What they share lives here: the error value
they yield instead of raising, caption decoding that never fails on encoding, and bounded metadata.
"""

from __future__ import annotations

import codecs
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from indexer.errors import InvalidInput

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_METADATA_KEYS = 64
MAX_METADATA_CHARS = 2000

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class SourceError:
    """One input a source could not turn into an item; sources yield these and carry on.

    `reason` is a short stable code for the ledger (``bad-sidecar``, ``outside-allowed-roots``, ...).
    """

    origin: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Caption:
    """Caption text after decoding; `truncated` when it was cut to the byte limit."""

    text: str
    truncated: bool = False


def decode_text(data: bytes, *, complete: bool = True) -> str:
    """Decode text of unknown encoding without ever failing: a BOM wins, then UTF-8, cp1252, latin-1.

    `complete=False` means `data` is a prefix of a longer text: a character cut in half at the end is
    dropped rather than taken as proof of another encoding.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(data[len(bom) :], encoding, complete, errors="replace")
    for encoding in ("utf-8", "cp1252"):
        try:
            return _decode(data, encoding, complete, errors="strict")
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")  # every byte is a latin-1 character


def _decode(data: bytes, encoding: str, complete: bool, *, errors: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors=errors)
    return decoder.decode(data, final=complete)


def clean_caption(text: str, *, max_bytes: int, truncated: bool = False) -> Caption:
    """Normalise newlines, strip a stray BOM and outer whitespace, and cut to `max_bytes` of UTF-8
    at a character boundary."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").strip()
    encoded = text.encode("utf-8", errors="replace")  # a lone surrogate cannot be stored or embedded
    text = encoded.decode("utf-8")
    if len(encoded) > max_bytes:
        text = encoded[:max_bytes].decode("utf-8", errors="ignore").rstrip()
        truncated = True
    return Caption(text, truncated)


def caption_from_bytes(data: bytes, *, max_bytes: int, complete: bool = True) -> Caption:
    """A caption from raw bytes of unknown encoding (a sidecar file, a mis-encoded manifest field)."""
    return clean_caption(decode_text(data, complete=complete), max_bytes=max_bytes, truncated=not complete)


def displayable(text: str) -> str:
    """`text` as valid UTF-8 for the ledger, the store and the terminal: a file name's undecodable bytes
    (the surrogate escapes `os.fsdecode` gives them) shown as ``\\xff``, any other lone surrogate as
    ``\\ud800``. Text that is valid already comes back as it is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    except UnicodeEncodeError:  # a surrogate outside the escape range: no byte stands behind it
        return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def is_storable_name(name: str) -> bool:
    """Whether a file name (as `os.fsdecode` gives it) is valid UTF-8, so the ledger and the store's
    payloads can hold it as it is and open the file by it again."""
    return displayable(name) is name


def bad_file_name(path: str | os.PathLike[str]) -> SourceError:
    """The failure of a file (or folder) whose name is not valid UTF-8: its other files go on."""
    shown = displayable(os.fspath(path))
    detail = "the name is not valid UTF-8 (undecodable bytes shown as \\xNN); rename it to ingest it"
    return SourceError(shown, "bad-file-name", detail)


def check_storable_path(path: str | os.PathLike[str]) -> None:
    """Refuse a folder, manifest or feed named on the command line whose path is not valid UTF-8:
    every item from it would carry that path, which the ledger and the store cannot hold."""
    text = os.path.abspath(os.fspath(path))
    if not is_storable_name(text):
        raise InvalidInput(f"{displayable(text)}: the path is not valid UTF-8; rename it to ingest it")


def internal_error(origin: str, error: Exception) -> SourceError:
    """A bug met while reading one input: logged with its traceback, recorded against that input
    (reason ``internal``), so the inputs after it still go in."""
    shown = displayable(origin)
    log.error("%s: unexpected error (reported as 'internal')", shown, exc_info=error)
    detail = f"{type(error).__name__}: {error} (a bug: the log has its traceback)"
    return SourceError(shown, "internal", detail)


def guarded(origin: str, found: Iterable[T]) -> Iterator[T | SourceError]:
    """What `found` yields for one input; an unexpected exception ends it as an ``internal`` failure
    of `origin` instead of ending the whole scan."""
    try:
        yield from found
    except Exception as error:
        yield internal_error(origin, error)


def repair_text(text: str) -> str:
    """Re-decode text read with ``errors="surrogateescape"``: undecodable bytes get the fallbacks."""
    try:
        text.encode("utf-8")  # C speed, and megabyte captions pass through here
        return text
    except UnicodeEncodeError:
        pass
    try:
        return decode_text(text.encode("utf-8", errors="surrogateescape"))
    except UnicodeEncodeError:  # other lone surrogates too (a JSON "\\ud83d" escape): replace them
        return text.encode("utf-8", errors="replace").decode("utf-8")


def scalar_metadata(fields: Mapping[str, Any], *, skip: Iterable[str] = ()) -> dict[str, Any]:
    """Scalar fields worth keeping as payload: no nested values, no empty strings, no NaN, bounded in
    size; keys and texts repaired to UTF-8 as captions are."""
    skipped = set(skip)
    metadata: dict[str, Any] = {}
    for key, value in fields.items():
        if len(metadata) >= MAX_METADATA_KEYS:
            break
        if key in skipped or not isinstance(key, str) or not key:
            continue
        if isinstance(value, str):
            value = repair_text(value).strip()
            if not value:
                continue
            value = value[:MAX_METADATA_CHARS]
        elif not isinstance(value, bool | int | float):
            continue  # None, lists, objects: not a filterable scalar
        elif isinstance(value, float) and not math.isfinite(value):
            continue  # JSON's NaN and Infinity: the store refuses them
        metadata[repair_text(key)[:MAX_METADATA_CHARS]] = value  # a mis-encoded CSV header, a "\ud800" key
    return metadata
