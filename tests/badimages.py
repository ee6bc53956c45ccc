"""A corpus of awkward and broken image files, each with the outcome `decode_image` must give.

Reused by pipeline and folder tests: write it into a tmp dir, ingest, and compare with the expectations.
Every file carries an image extension, so a folder scan picks all of them up. The outcomes assume any
`max_pixels` of at least 1 million (the default is Pillow's 89 million).
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
NOISE_SIZE = (64, 48)


@dataclass(frozen=True)
class ExpectedDecode:
    """What decoding one corpus file must give: a reason code, or success with size/format/colour.

    `size` is the original size after EXIF rotation; `center` the RGB at the image centre and `probes`
    more (x, y, RGB) checks at fractions of the width and height, within `tolerance` per channel
    (JPEG is lossy).
    """

    reason: str | None = None
    size: tuple[int, int] | None = None
    format: str | None = None
    center: tuple[int, int, int] | None = None
    tolerance: int = 0
    probes: tuple[tuple[float, float, tuple[int, int, int]], ...] = ()

    @property
    def ok(self) -> bool:
        return self.reason is None


def write_bad_corpus(directory: Path) -> dict[str, ExpectedDecode]:
    """Write every corpus file into `directory` (created if needed); return expectations by file name."""
    directory.mkdir(parents=True, exist_ok=True)
    expected: dict[str, ExpectedDecode] = {}
    for name, (data, outcome) in _corpus().items():
        (directory / name).write_bytes(data)
        expected[name] = outcome
    return expected


def _corpus() -> dict[str, tuple[bytes, ExpectedDecode]]:
    return {
        "truncated.jpg": (_encode(_noise(), "JPEG")[:1200], ExpectedDecode("truncated")),
        "empty.jpg": (b"", ExpectedDecode("empty")),
        "text-named.png": (b"this is a caption, not a picture\n" * 4, ExpectedDecode("not-an-image")),
        "png-named.jpg": (
            _encode(Image.new("RGB", (30, 20), GREEN), "PNG"),
            ExpectedDecode(size=(30, 20), format="PNG", center=GREEN),
        ),
        "bomb.png": (_png_bomb(30_000, 30_000), ExpectedDecode("too-large")),
        "cmyk.jpg": (
            _encode(Image.new("CMYK", (32, 24), (0, 255, 255, 0)), "JPEG", quality=95),
            ExpectedDecode(size=(32, 24), format="JPEG", center=RED, tolerance=12),
        ),
        "gray16.png": (_gray16_png(), ExpectedDecode(size=(40, 10), format="PNG", center=(128, 128, 128))),
        "palette-transparent.png": (
            _palette_transparent(),
            ExpectedDecode(size=(20, 20), format="PNG", center=WHITE),
        ),
        "rgba.png": (_transparent_centre("RGBA", (0, 0, 255, 255)), _ok_png(center=WHITE)),
        "gray-alpha.png": (_transparent_centre("LA", (0, 255)), _ok_png(center=WHITE)),
        "exif-rotated.jpg": (
            _exif_rotated_jpeg(),
            ExpectedDecode(
                size=(20, 40), format="JPEG", center=BLUE, tolerance=12, probes=((0.5, 0.1, RED),)
            ),
        ),
        "animated.gif": (_animated_gif(), ExpectedDecode(size=(16, 16), format="GIF", center=RED)),
        "plain.bmp": (
            _encode(Image.new("RGB", (17, 9), BLUE), "BMP"),
            ExpectedDecode(size=(17, 9), format="BMP", center=BLUE),
        ),
        "plain.tiff": (
            _encode(Image.new("RGB", (12, 34), GREEN), "TIFF"),
            ExpectedDecode(size=(12, 34), format="TIFF", center=GREEN),
        ),
        "drawing.svg": (_SVG, ExpectedDecode(size=(40, 20), format="SVG", center=RED)),
        "lossless.webp": (
            _encode(Image.new("RGB", (25, 15), RED), "WEBP", lossless=True),
            ExpectedDecode(size=(25, 15), format="WEBP", center=RED),
        ),
    }


_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    b'<rect width="40" height="20" fill="#00ff00"/><circle cx="20" cy="10" r="6" fill="#ff0000"/></svg>'
)


def _ok_png(center: tuple[int, int, int]) -> ExpectedDecode:
    return ExpectedDecode(size=(20, 20), format="PNG", center=center)


def _encode(picture: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise() -> Image.Image:
    """Random pixels: JPEG cannot squeeze them, so cutting the file cuts into the scan data."""
    width, height = NOISE_SIZE
    seed = bytes((i * 131 + 7) % 251 for i in range(width * height * 3))
    return Image.frombytes("RGB", NOISE_SIZE, seed)


@functools.cache
def _png_bomb(width: int, height: int) -> bytes:
    """A real 1-bit PNG of `width` x `height` zeros: about 100 kB on disk, 112 MB once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_chunk = 1000
    parts = [compressor.compress(row * rows_per_chunk) for _ in range(height // rows_per_chunk)]
    parts.append(compressor.compress(row * (height % rows_per_chunk)))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    chunks = [_png_chunk(b"IHDR", header), _png_chunk(b"IDAT", b"".join(parts)), _png_chunk(b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _gray16_png() -> bytes:
    """16-bit grey at 0x8080 (32896): scaled properly it is 128; clipped to 8 bits it would be 255."""
    picture = Image.new("I;16", (40, 10), 0x8080)
    return _encode(picture, "PNG")


def _palette_transparent() -> bytes:
    """A palette image whose centre uses the transparent palette entry (red underneath)."""
    picture = Image.new("P", (20, 20), 1)
    picture.putpalette([*RED, *GREEN] + [0] * (254 * 3))
    picture.paste(0, (5, 5, 15, 15))
    return _encode(picture, "PNG", transparency=0)


def _transparent_centre(mode: str, colour: tuple[int, ...]) -> bytes:
    """An opaque frame around a fully transparent centre whose hidden colour is black."""
    picture = Image.new(mode, (20, 20), colour)
    hidden_black = (0,) * (len(colour) - 1) + (0,)
    picture.paste(hidden_black, (5, 5, 15, 15))
    return _encode(picture, "PNG")


def _exif_rotated_jpeg() -> bytes:
    """Stored 40x20, red on the left, with orientation 6 (turn 90 degrees clockwise to view): shown as
    20x40 with red at the top."""
    picture = Image.new("RGB", (40, 20), BLUE)
    picture.paste(RED, (0, 0, 8, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(picture, "JPEG", exif=exif.tobytes(), quality=95)


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()
