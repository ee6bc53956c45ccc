"""Feed records: one decoded JSON object (a JSONL line, a JSON Feed item, an RSS item made into a
dict) to one `Item`, or the `SourceError` that says why not.

Reason codes: ``bad-json`` (malformed, or not an object), ``wrong-type`` (a known field of the wrong
type), ``empty-row`` (nothing to embed), ``refused-scheme`` and ``outside-allowed-roots`` (an image
reference that is not http(s), or a local path outside the feed's allowed folders), ``bad-path`` (a
reference with a NUL byte, which no file name holds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urljoin

from indexer.items import Item
from indexer.sources import SourceError, clean_caption, internal_error, repair_text, scalar_metadata
from indexer.sources.syndication import html_to_text

ID_KEYS = ("id", "guid", "item_id", "post_id")
CAPTION_KEYS = ("caption", "text", "body", "content_text", "summary", "description", "title")
HTML_KEYS = ("content_html",)
IMAGE_KEYS = ("image", "image_url", "media", "enclosure", "attachments", "banner_image", "thumbnail_url")
CREATED_KEYS = ("created_at", "timestamp", "date_published", "published", "date", "created")
URL_KEYS = ("url", "href", "src")


class CursorStore(Protocol):
    """Where feeds keep their position between runs (the ledger implements it)."""

    def get_cursor(self, name: str) -> str | None: ...

    def set_cursor(self, name: str, value: str) -> None: ...


@dataclass(frozen=True)
class RecordContext:
    """How to read one feed's records.

    `roots`: folders a local image path may resolve into (empty: local paths are refused, as for any
    remote feed). `base_url`: what relative image URLs are relative to (the feed's own URL).
    """

    namespace: str
    max_caption_bytes: int = 1_000_000
    roots: tuple[Path, ...] = ()
    base_url: str | None = None


class _Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# -- one record to one item -----------------------------------------------------------------------


def parse_record(obj: Any, origin: str, context: RecordContext) -> Item | SourceError:
    """An `Item` from one decoded feed record, or the reason it cannot be one; a bug met on one
    record fails that record alone."""
    try:
        return _parse_record(obj, origin, context)
    except Exception as error:
        return internal_error(origin, error)


def _parse_record(obj: Any, origin: str, context: RecordContext) -> Item | SourceError:
    if not isinstance(obj, dict):
        return SourceError(origin, "bad-json", f"expected an object, got {type(obj).__name__}")
    try:
        source_id = _scalar(obj, ID_KEYS)
        caption, truncated = _caption(obj, context.max_caption_bytes)
        image = _image(obj, context)
        created = _created(obj)
    except _Refused as refused:
        return SourceError(origin, refused.reason, refused.detail)
    used = {*ID_KEYS, *CAPTION_KEYS, *HTML_KEYS, *IMAGE_KEYS, *CREATED_KEYS}
    metadata = scalar_metadata(obj, skip=used)
    if truncated:
        metadata["caption_truncated"] = True
    if image is None and caption is None:
        return SourceError(origin, "empty-row", "a record needs an image or a caption")
    return Item(
        source="feed",
        origin=origin,
        image=image,
        caption=caption,
        source_id=source_id,
        namespace=context.namespace,
        created_at=created,
        metadata=metadata,
    )


def first_field(obj: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, Any] | None:
    """The first of `keys` with a non-empty value, as (key, value)."""
    for key in keys:
        value = obj.get(key)
        if value is not None and value != "" and value != []:
            return key, value
    return None


def _scalar(obj: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    found = first_field(obj, keys)
    if found is None:
        return None
    key, value = found
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Refused("wrong-type", f"{key}: expected text or a number, got {type(value).__name__}")
    return repair_text(value).strip() if isinstance(value, str) else str(value)


def _caption(obj: Mapping[str, Any], max_bytes: int) -> tuple[str | None, bool]:
    found = first_field(obj, CAPTION_KEYS) or first_field(obj, HTML_KEYS)
    if found is None:
        return None, False
    key, value = found
    if not isinstance(value, str):
        raise _Refused("wrong-type", f"{key}: expected text, got {type(value).__name__}")
    text = repair_text(value)
    if key in HTML_KEYS:
        text = html_to_text(text)
    caption = clean_caption(text, max_bytes=max_bytes)
    return caption.text or None, caption.truncated


def _image(obj: Mapping[str, Any], context: RecordContext) -> str | None:
    found = first_field(obj, IMAGE_KEYS)
    if found is None:
        return None
    key, value = found
    reference = _image_url(value)
    if reference is None:
        if isinstance(value, str | dict | list):
            return None  # an attachment list without images: a caption-only record
        raise _Refused(
            "wrong-type", f"{key}: expected a URL, an object or a list, got {type(value).__name__}"
        )
    return _checked_reference(repair_text(reference).strip(), context)


def _image_url(value: Any) -> str | None:
    """The URL in a string, in an object (`url`/`href`/`src`, image type if typed), or the first in a list."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        mime = value.get("mime_type") or value.get("type") or value.get("medium")
        if isinstance(mime, str) and not mime.lower().startswith("image"):
            return None
        url = next((value[k] for k in URL_KEYS if isinstance(value.get(k), str)), None)
        return url or None
    if isinstance(value, list):
        return next(filter(None, (_image_url(v) for v in value[:100])), None)
    return None


def _checked_reference(reference: str, context: RecordContext) -> str:
    """http(s) URLs pass (the fetcher guards them); paths only inside the allowed roots."""
    scheme, sep, _ = reference.partition(":")
    if sep and len(scheme) > 1 and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        if scheme.lower() in ("http", "https"):
            return reference
        raise _Refused("refused-scheme", f"{scheme}: references are not fetched ({reference[:200]})")
    if "\x00" in reference:
        raise _Refused("bad-path", f"a NUL byte in the image reference {reference[:200]!r}")
    if context.base_url is not None:
        joined = urljoin(context.base_url, reference)
        if joined.startswith(("http://", "https://")):
            return joined
        raise _Refused("refused-scheme", f"{reference[:200]} is not an http(s) URL")
    if not context.roots:
        raise _Refused("outside-allowed-roots", f"local path {reference[:200]} in a feed")
    path = Path(reference)
    resolved = (path if path.is_absolute() else context.roots[0] / path).resolve()
    if not any(resolved.is_relative_to(root) for root in context.roots):
        raise _Refused("outside-allowed-roots", f"{reference[:200]} resolves to {resolved}")
    return str(resolved)


def _created(obj: Mapping[str, Any]) -> str | None:
    """ISO 8601 (UTC where no zone is given) from an epoch, an ISO date or an RFC 822 date (RSS)."""
    found = first_field(obj, CREATED_KEYS)
    if found is None:
        return None
    key, value = found
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Refused("wrong-type", f"{key}: expected a date or a number, got {type(value).__name__}")
    try:
        moment = _epoch(float(value)) if isinstance(value, int | float) else _date_text(value.strip())
    except OverflowError:  # an integer beyond any float
        moment = None
    return moment.isoformat() if moment else None


def _epoch(seconds: float) -> datetime | None:
    if not math.isfinite(seconds):
        return None
    if abs(seconds) > 1e11:  # milliseconds
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _date_text(text: str) -> datetime | None:
    try:
        return _epoch(float(text))
    except ValueError:
        pass
    for parse in (lambda t: datetime.fromisoformat(t.replace("Z", "+00:00")), parsedate_to_datetime):
        try:
            moment = parse(text)
        except (ValueError, TypeError, IndexError):
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None  # an unreadable date costs the date, not the record


def parse_line(line: bytes, origin: str, context: RecordContext) -> Item | SourceError:
    """One JSONL line (without its newline) to an item; a line that is no JSON gets ``bad-json``."""
    try:
        try:
            obj = json.loads(line)
        except UnicodeDecodeError:  # mis-encoded text: keep the bytes, captions repair them
            obj = json.loads(line.decode("utf-8", errors="surrogateescape"))
    except (ValueError, RecursionError) as error:
        return SourceError(origin, "bad-json", str(error)[:500])
    return parse_record(obj, origin, context)
