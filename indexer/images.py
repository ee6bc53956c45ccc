"""Safe image decoding: bytes in, an RGB picture ready for the embedder out, or a short reason why not.

Called from a thread pool. Pillow's C decoders release the GIL, so decoding runs in parallel; the one
piece of shared state is a lock around identification (see :func:`_identify`).
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from indexer.svg import SvgError, looks_like_svg, rasterise_svg

_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = frozenset({5, 6, 7, 8})  # EXIF orientations that rotate by 90 or 270 degrees
_WHITE = (255, 255, 255)
_DRAFTABLE = frozenset({"JPEG", "MPO"})  # MPO: the JPEG variant many phone cameras write
SVG_MAX_SIDE = 1024  # a drawing has no pixel size of its own: it is rendered this large at most

# `warnings.catch_warnings` swaps process-wide state; the lock keeps our own threads from restoring
# each other's filters. Only header parsing runs under it, never pixel decoding.
_IDENTIFY_LOCK = threading.Lock()


class BadImage(Exception):
    """An image that cannot be used. `reason` is a short stable code for the ledger and reports.

    Codes: ``empty``, ``not-an-image``, ``truncated``, ``too-large``, ``unreadable``; folder scans add
    ``unsupported-format`` for picture and video files no decoder here reads (HEIC, RAW, MP4, ...).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """A decoded picture. `width`/`height` are the original size after EXIF rotation, even when the
    pixels were decoded at reduced scale (`image.size` is then smaller)."""

    image: Image.Image
    width: int
    height: int
    sha256: str
    format: str


def decode_image(source: Path | bytes, *, max_pixels: int, draft_size: int | None = None) -> DecodedImage:
    """Decode an image file or its bytes into RGB, refusing bombs before any pixel is decoded.

    The bytes are read once and serve both the content hash and the decoder. The format is sniffed
    from the content, never the file name; SVG is rasterised first (`indexer.svg`). `draft_size` lets
    JPEGs decode at a reduced scale that is still at least that many pixels on each side (what a
    224-px model needs).
    """
    data = _read_bytes(source)
    if not data:
        raise BadImage("empty", "zero bytes")
    sha256 = hashlib.sha256(data).hexdigest()
    drawing = looks_like_svg(data)
    picture = _identify(_rasterised(data) if drawing else data)
    fmt = "SVG" if drawing else picture.format or "unknown"
    width, height = picture.size
    if width * height > max_pixels:
        raise BadImage("too-large", f"{width}x{height} {fmt} exceeds {max_pixels} pixels")
    if draft_size and fmt in _DRAFTABLE:
        picture.draft("RGB", (draft_size, draft_size))
    _load_pixels(picture)
    picture, orientation = _exif_transposed(picture)
    if orientation in _SWAPS_AXES:
        width, height = height, width
    try:
        rgb = _to_rgb(picture)
    except (OSError, ValueError) as error:  # exotic modes Pillow cannot convert (LAB, multi-band TIFF)
        raise BadImage("unreadable", f"{picture.mode} {fmt}: {error}") from error
    return DecodedImage(rgb, width, height, sha256, fmt)


def _read_bytes(source: Path | bytes) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise BadImage("unreadable", f"{type(error).__name__}: {error.strerror or error}") from error


def _rasterised(data: bytes) -> bytes:
    try:
        return rasterise_svg(data, max_side=SVG_MAX_SIDE)
    except SvgError as error:
        raise BadImage(error.reason, error.detail) from error


def _identify(data: bytes) -> Image.Image:
    """Parse the header only. Pillow's own bomb warning is silenced: our `max_pixels` check replaces it.

    Pillow's hard limit (2 x ``Image.MAX_IMAGE_PIXELS``) still applies and maps to ``too-large``.
    """
    with _IDENTIFY_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as error:
            raise BadImage("too-large", str(error)) from error
        except UnidentifiedImageError as error:
            raise BadImage("not-an-image", f"no image format recognised ({len(data)} bytes)") from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise BadImage("unreadable", f"{type(error).__name__}: {error}") from error


def _load_pixels(picture: Image.Image) -> None:
    """Decode the pixels; a file cut short raises (LOAD_TRUNCATED_IMAGES stays off)."""
    try:
        picture.load()
    except Image.DecompressionBombError as error:
        raise BadImage("too-large", str(error)) from error
    except (OSError, EOFError, SyntaxError, ValueError) as error:
        message = str(error)
        truncated = isinstance(error, EOFError) or "truncated" in message or "broken data stream" in message
        reason = "truncated" if truncated else "unreadable"
        raise BadImage(reason, f"{type(error).__name__}: {message}") from error


def _exif_transposed(picture: Image.Image) -> tuple[Image.Image, int]:
    """Apply the EXIF orientation. Broken EXIF is ignored: the pixels are still good."""
    try:
        orientation = int(picture.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF blocks raise all sorts of errors; the picture is still usable
        return picture, 1
    if orientation not in range(2, 9):
        return picture, 1
    return ImageOps.exif_transpose(picture), orientation


def _to_rgb(picture: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB: high bit depths scaled (not clipped), transparency on white."""
    mode = picture.mode
    if mode == "RGB":
        return picture
    if mode.startswith("I") or mode == "F":
        return _scaled_to_8bit(picture).convert("RGB")
    if mode in ("RGBa", "La"):
        picture = picture.convert(mode.upper())
        mode = picture.mode
    if mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        return _on_white(picture.convert("RGBA"))
    return picture.convert("RGB")


def _scaled_to_8bit(picture: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer pixels are taken as 16-bit range; floats in [0, 1] or stretched."""
    values = np.asarray(picture)
    if picture.mode == "F":
        low, high = float(np.nanmin(values)), float(np.nanmax(values))
        if low >= 0.0 and high <= 1.0:
            scaled = values * 255.0
        else:
            scaled = (values - low) * (255.0 / max(high - low, 1e-12))
        scaled = np.nan_to_num(scaled)
    else:
        scaled = np.clip(values.astype(np.float32), 0, 65535) / 257.0
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), mode="L")


def _on_white(rgba: Image.Image) -> Image.Image:
    """Composite on white: transparent regions of logos and stickers are white in every viewer."""
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
