"""decode_image: the bad-image corpus, bombs refused before decoding, draft decoding, threads."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from badimages import ExpectedDecode, write_bad_corpus
from PIL import Image, ImageFile

from indexer.images import BadImage, DecodedImage, decode_image

DEFAULT_MAX_PIXELS = 89_478_485


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, ExpectedDecode]]:
    directory = tmp_path_factory.mktemp("bad-corpus")
    return directory, write_bad_corpus(directory)


def _outcome(path: Path) -> DecodedImage | BadImage:
    try:
        return decode_image(path, max_pixels=DEFAULT_MAX_PIXELS)
    except BadImage as error:
        return error


def _assert_matches(name: str, outcome: DecodedImage | BadImage, expected: ExpectedDecode) -> None:
    if not expected.ok:
        assert isinstance(outcome, BadImage), f"{name} decoded but should fail with {expected.reason}"
        assert outcome.reason == expected.reason, f"{name}: {outcome.detail}"
        return
    assert isinstance(outcome, DecodedImage), f"{name}: {outcome}"
    assert (outcome.width, outcome.height) == expected.size
    assert outcome.format == expected.format
    assert outcome.image.mode == "RGB"
    probes = ((0.5, 0.5, expected.center), *expected.probes) if expected.center else expected.probes
    for fx, fy, rgb in probes:
        x, y = int(outcome.image.width * fx), int(outcome.image.height * fy)
        actual = outcome.image.getpixel((x, y))
        assert all(abs(a - b) <= expected.tolerance for a, b in zip(actual, rgb, strict=True)), (
            f"{name} at ({x}, {y}): {actual} != {rgb}"
        )


def test_corpus_covers_every_reason(corpus: tuple[Path, dict[str, ExpectedDecode]]) -> None:
    reasons = {expected.reason for expected in corpus[1].values()}
    assert reasons == {None, "empty", "not-an-image", "truncated", "too-large"}


@pytest.mark.parametrize(
    "name",
    [
        "truncated.jpg",
        "empty.jpg",
        "text-named.png",
        "png-named.jpg",
        "bomb.png",
        "cmyk.jpg",
        "gray16.png",
        "palette-transparent.png",
        "rgba.png",
        "gray-alpha.png",
        "exif-rotated.jpg",
        "animated.gif",
        "plain.bmp",
        "plain.tiff",
        "lossless.webp",
    ],
)
def test_corpus_file_decodes_as_expected(corpus: tuple[Path, dict[str, ExpectedDecode]], name: str) -> None:
    directory, expectations = corpus
    _assert_matches(name, _outcome(directory / name), expectations[name])


def test_bytes_and_path_give_the_same_result_and_hash(
    corpus: tuple[Path, dict[str, ExpectedDecode]],
) -> None:
    path = corpus[0] / "exif-rotated.jpg"
    data = path.read_bytes()
    from_path = decode_image(path, max_pixels=DEFAULT_MAX_PIXELS)
    from_bytes = decode_image(data, max_pixels=DEFAULT_MAX_PIXELS)
    assert from_path.sha256 == from_bytes.sha256 == hashlib.sha256(data).hexdigest()
    assert from_path.image.tobytes() == from_bytes.image.tobytes()


def _jpeg(size: tuple[int, int], orientation: int | None = None) -> bytes:
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def test_draft_decodes_jpeg_at_reduced_scale_but_reports_original_size() -> None:
    data = _jpeg((640, 480))
    full = decode_image(data, max_pixels=DEFAULT_MAX_PIXELS)
    drafted = decode_image(data, max_pixels=DEFAULT_MAX_PIXELS, draft_size=224)
    assert full.image.size == (640, 480)
    assert drafted.image.size == (320, 240)  # the largest power-of-two reduction still >= 224 a side
    assert (drafted.width, drafted.height) == (640, 480)
    assert drafted.sha256 == full.sha256


def test_draft_of_rotated_jpeg_swaps_both_sizes() -> None:
    drafted = decode_image(_jpeg((640, 480), orientation=6), max_pixels=DEFAULT_MAX_PIXELS, draft_size=224)
    assert (drafted.width, drafted.height) == (480, 640)
    assert drafted.image.size == (240, 320)


def test_draft_applies_to_phone_mpo_jpegs() -> None:
    frames = [Image.new("RGB", (640, 480), (10, 20, 30)), Image.new("RGB", (640, 480), (30, 20, 10))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "MPO", save_all=True, append_images=frames[1:])
    drafted = decode_image(buffer.getvalue(), max_pixels=DEFAULT_MAX_PIXELS, draft_size=224)
    assert drafted.format == "MPO"
    assert drafted.image.size == (320, 240) and (drafted.width, drafted.height) == (640, 480)


def test_draft_leaves_other_formats_at_full_size() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (1, 2, 3)).save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue(), max_pixels=DEFAULT_MAX_PIXELS, draft_size=224)
    assert decoded.image.size == (640, 480)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but carries garbage pixel data: decoding it would fail."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"not zlib at all")


def test_too_large_is_decided_from_the_header_before_any_pixel() -> None:
    data = _png_header_only(5000, 5000)
    with pytest.raises(BadImage) as refused:
        decode_image(data, max_pixels=1_000_000)
    assert refused.value.reason == "too-large"
    assert "5000x5000" in refused.value.detail
    with pytest.raises(BadImage) as broken:  # the same file within the limit reaches the decoder
        decode_image(data, max_pixels=DEFAULT_MAX_PIXELS)
    assert broken.value.reason in {"truncated", "unreadable"}


def test_pillow_bomb_warning_never_escapes_or_prints(capsys: pytest.CaptureFixture[str]) -> None:
    data = _png_header_only(10_000, 10_000)  # between Pillow's warning and error thresholds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(BadImage) as refused:
            decode_image(data, max_pixels=DEFAULT_MAX_PIXELS)
    assert refused.value.reason == "too-large"
    assert caught == []
    assert capsys.readouterr() == ("", "")


def test_truncated_images_stay_an_error_globally(corpus: tuple[Path, dict[str, ExpectedDecode]]) -> None:
    _outcome(corpus[0] / "truncated.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BadImage) as missing:
        decode_image(tmp_path / "gone.jpg", max_pixels=DEFAULT_MAX_PIXELS)
    assert missing.value.reason == "unreadable"


def test_sixteen_bit_range_is_scaled_not_clipped() -> None:
    picture = Image.new("I;16", (3, 1))
    for x, value in enumerate((0, 0x8080, 0xFFFF)):
        picture.putpixel((x, 0), value)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    decoded = decode_image(buffer.getvalue(), max_pixels=DEFAULT_MAX_PIXELS)
    assert [decoded.image.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]


def test_half_transparent_pixels_blend_with_white() -> None:
    buffer = io.BytesIO()
    Image.new("RGBA", (4, 4), (255, 0, 0, 128)).save(buffer, "PNG")
    red, green, blue = decode_image(buffer.getvalue(), max_pixels=100).image.getpixel((1, 1))
    assert red == 255 and 120 <= green <= 135 and 120 <= blue <= 135


def test_concurrent_decoding_matches_sequential(corpus: tuple[Path, dict[str, ExpectedDecode]]) -> None:
    directory, expectations = corpus
    names = sorted(expectations) * 4
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda name: _outcome(directory / name), names))
    for name, outcome in zip(names, outcomes, strict=True):
        _assert_matches(name, outcome, expectations[name])
