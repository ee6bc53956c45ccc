"""SVG pictures rasterised with resvg, after every reference to anything outside the file is removed.

resvg reads any ``href`` that names a local file (absolute, or relative to the working directory), so
the document is parsed first (expat: no external entities, bounded entity expansion) and every
reference that is not a ``#fragment`` or an embedded raster ``data:`` image is dropped, as are
scripts, ``foreignObject`` and stylesheets that import or point at URLs. resvg itself has no network
client. The raster fits in `max_side` pixels whatever the declared size, so a huge ``width`` is no bomb.
"""

from __future__ import annotations

import gzip
import io
import math
import re
import xml.etree.ElementTree as ET
import zlib

import resvg_py

MAX_SVG_BYTES = 16 * 1024 * 1024  # after gunzip; a larger drawing is refused as too-large
DEFAULT_SIDE = 512  # raster side for a drawing that declares no usable size
_SVG_NS = "http://www.w3.org/2000/svg"
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")
_DROPPED = frozenset({"script", "foreignObject"})
_SAFE_DATA = re.compile(r"^\s*data:image/(png|jpeg|jpg|gif|webp);", re.IGNORECASE)
_CSS_REFERENCE = re.compile(r"@import|url\(\s*['\"]?\s*(?!#)", re.IGNORECASE)
_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|pt|pc|mm|cm|in)?\s*$")
_UNIT_PX = {None: 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


class SvgError(ValueError):
    """An SVG that cannot be rasterised; `reason` is a ledger code (``not-an-image``, ``too-large``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def looks_like_svg(data: bytes) -> bool:
    """An XML document whose root looks like ``<svg``, plain or gzipped (``.svgz``)."""
    if data[:2] == b"\x1f\x8b":
        return True
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<") and b"<svg" in head


def rasterise_svg(data: bytes, *, max_side: int) -> bytes:
    """PNG bytes of the drawing, its longer side at most `max_side`, with no outside reference read."""
    root = _parse(_gunzipped(data))
    if root.tag not in (f"{{{_SVG_NS}}}svg", "svg"):
        raise SvgError("not-an-image", f"the XML root is <{root.tag}>, not <svg>")
    _strip_references(root)
    _set_raster_size(root, max_side)
    width, height = int(root.get("width", "0")), int(root.get("height", "0"))
    try:
        return resvg_py.svg_to_bytes(
            svg_string=ET.tostring(root, encoding="unicode"), width=width, height=height
        )
    except (ValueError, RuntimeError) as error:
        raise SvgError("not-an-image", f"SVG could not be rendered: {error}") from error


def _gunzipped(data: bytes) -> bytes:
    if data[:2] != b"\x1f\x8b":
        if len(data) > MAX_SVG_BYTES:
            raise SvgError("too-large", f"SVG of {len(data)} bytes exceeds {MAX_SVG_BYTES}")
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(MAX_SVG_BYTES + 1)
    except (OSError, EOFError, zlib.error) as error:  # zlib.error: a damaged deflate stream
        raise SvgError("truncated", f"gzipped SVG: {error}") from error
    if len(out) > MAX_SVG_BYTES:
        raise SvgError("too-large", f"gzipped SVG expands beyond {MAX_SVG_BYTES} bytes")
    return out


def _parse(data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data)
    except (ET.ParseError, LookupError, ValueError) as error:  # also an unknown or multi-byte encoding
        raise SvgError("not-an-image", f"SVG is not well-formed XML: {error}") from error


def _strip_references(root: ET.Element) -> None:
    """Drop what could make the renderer read a file or another document; keep the drawing."""
    for parent in list(root.iter()):
        for child in list(parent):
            if _local(child.tag) in _DROPPED:
                parent.remove(child)
    for element in root.iter():
        for name in _HREFS:
            target = element.get(name)
            if target is not None and not target.startswith("#") and not _SAFE_DATA.match(target):
                del element.attrib[name]
        style = element.get("style")
        if style is not None and _CSS_REFERENCE.search(style):
            del element.attrib["style"]
        if _local(element.tag) == "style" and element.text and _CSS_REFERENCE.search(element.text):
            element.text = ""


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _set_raster_size(root: ET.Element, max_side: int) -> None:
    """Give the root the pixel size it is rendered at; the drawing keeps its own coordinates."""
    declared = _declared_size(root)
    width, height = declared or (float(DEFAULT_SIDE), float(DEFAULT_SIDE))
    scale = max_side / max(width, height) if max(width, height) > max_side else 1.0
    if _view_box(root.get("viewBox")) is None and declared is not None:
        root.set("viewBox", f"0 0 {width:g} {height:g}")
    root.set("width", str(max(1, round(width * scale))))
    root.set("height", str(max(1, round(height * scale))))


def _declared_size(root: ET.Element) -> tuple[float, float] | None:
    """Width and height in px from the attributes, the viewBox filling in what is missing or relative."""
    width, height = _length(root.get("width")), _length(root.get("height"))
    box = _view_box(root.get("viewBox"))
    if box is not None:
        if width is None and height is None:
            width, height = box
        elif width is None:
            width = height * box[0] / box[1]  # type: ignore[operator]
        elif height is None:
            height = width * box[1] / box[0]
    if width is None or height is None or not (math.isfinite(width) and math.isfinite(height)):
        return None  # also a ratio of extreme numbers that overflows
    return width, height


def _length(text: str | None) -> float | None:
    found = _LENGTH.match(text or "")
    if found is None:
        return None
    value = float(found.group(1)) * _UNIT_PX[found.group(2)]
    return value if 0 < value < math.inf else None


def _view_box(text: str | None) -> tuple[float, float] | None:
    try:
        parts = [float(p) for p in re.split(r"[\s,]+", (text or "").strip())]
    except ValueError:
        return None
    if len(parts) != 4 or not all(0 < p < math.inf for p in parts[2:]):  # NaN fails both
        return None
    return parts[2], parts[3]
