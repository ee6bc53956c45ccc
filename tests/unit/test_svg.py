"""SVG pictures: rasterised into a bounded size, and no reference outside the file is ever read."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from loopback import LoopbackServer, Reply
from PIL import Image

from indexer.images import SVG_MAX_SIDE, BadImage, decode_image
from indexer.svg import looks_like_svg

MAX_PIXELS = 89_478_485
BLUE = (0, 0, 255)
RED = (255, 0, 0)


def _svg(body: str, size: str = 'width="100" height="100"') -> bytes:
    return (
        '<?xml version="1.0"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" {size}>'
        f'<rect width="100%" height="100%" fill="#0000ff"/>{body}</svg>'
    ).encode()


def _red_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 50), RED).save(buffer, "PNG")
    return buffer.getvalue()


def _center(data: bytes) -> tuple[int, int, int]:
    decoded = decode_image(data, max_pixels=MAX_PIXELS)
    image = decoded.image
    return image.getpixel((image.width // 2, image.height // 2))


def test_an_svg_decodes_as_a_picture_with_its_drawing() -> None:
    decoded = decode_image(_svg('<circle cx="50" cy="50" r="30" fill="red"/>'), max_pixels=MAX_PIXELS)
    assert decoded.format == "SVG" and decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (100, 100)
    assert decoded.image.getpixel((50, 50)) == RED and decoded.image.getpixel((2, 2)) == BLUE


def test_a_gzipped_svg_decodes_too() -> None:
    assert _center(gzip.compress(_svg(""))) == BLUE


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ('width="100000" height="50000"', (SVG_MAX_SIDE, SVG_MAX_SIDE // 2)),
        ('viewBox="0 0 30 3000000"', (1, SVG_MAX_SIDE)),
        ('width="100%" height="100%"', (512, 512)),
        ('width="2in" viewBox="0 0 10 5"', (192, 96)),
    ],
)
def test_the_raster_fits_the_bound_whatever_size_the_file_declares(
    size: str, expected: tuple[int, int]
) -> None:
    decoded = decode_image(_svg("", size), max_pixels=MAX_PIXELS)
    assert decoded.image.size == expected


def test_no_outside_reference_is_read(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each reference would paint the centre red if the renderer followed it (unsanitised resvg reads
    absolute and relative local paths); the loopback server counts any connection."""
    server.route("/x.png", Reply(body=_red_png(), headers={"Content-Type": "image/png"}))
    (tmp_path / "red.png").write_bytes(_red_png())
    monkeypatch.chdir(tmp_path)
    nested = _svg(f'<image href="{server.url("/x.png")}" width="100" height="100"/>').decode()
    references = [
        f'<image href="{server.url("/x.png")}" width="100" height="100"/>',
        f'<image xlink:href="{server.url("/x.png")}" width="100" height="100"/>',
        '<image href="file:///etc/passwd" width="100" height="100"/>',
        f'<image href="{tmp_path / "red.png"}" width="100" height="100"/>',
        f'<image href="file://{tmp_path / "red.png"}" width="100" height="100"/>',
        '<image xlink:href="red.png" width="100" height="100"/>',
        '<filter id="f"><feImage href="red.png"/></filter><rect width="100" height="100" filter="url(#f)"/>',
        f"<style>@import url({server.url('/x.css')}); rect {{ fill: url(red.png) }}</style>",
        '<image href="data:image/svg+xml;utf8,{}" width="100" height="100"/>'.format(
            nested.replace('"', "'").replace("<", "%3C").replace(">", "%3E").replace("#", "%23")
        ),
    ]
    for reference in references:
        assert _center(_svg(reference)) == BLUE, reference
    assert server.connections == 0 and not server.hits


def test_an_embedded_raster_image_still_renders() -> None:
    import base64

    inline = "data:image/png;base64," + base64.b64encode(_red_png()).decode()
    assert _center(_svg(f'<image href="{inline}" width="100" height="100"/>')) == RED


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<svg xmlns='http://www.w3.org/2000/svg'><rect", "not-an-image"),
        (gzip.compress(b"<html><svg/></html>"), "not-an-image"),
        (gzip.compress(_svg(""))[:40], "truncated"),
    ],
)
def test_a_broken_svg_gets_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(BadImage) as caught:
        decode_image(data, max_pixels=MAX_PIXELS)
    assert caught.value.reason == reason


def test_an_entity_bomb_is_refused_not_expanded() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE svg ['
        '<!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">'
        + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 20}">' for i in range(8))
        + ']><svg xmlns="http://www.w3.org/2000/svg"><text>&i;</text></svg>'
    ).encode()
    with pytest.raises(BadImage) as caught:
        decode_image(bomb, max_pixels=MAX_PIXELS)
    assert caught.value.reason == "not-an-image"


def test_only_svg_documents_are_sniffed_as_svg() -> None:
    assert looks_like_svg(b"\xef\xbb\xbf\n  <?xml version='1.0'?><svg/>")
    assert not looks_like_svg(b"this is a caption, not a picture <svg")
    assert not looks_like_svg(_red_png())
