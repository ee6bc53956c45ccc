"""Inputs the fuzzer found (bench/fuzz.py), reduced, each with what the reader must do with it now.

Each one used to raise out of the reader, or to give a value the store or the ledger would refuse
later. They go through the real readers, and through the fuzz targets' own checks.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from evaluation.fuzz import targets
from indexer.fetch import Document
from indexer.images import BadImage, decode_image
from indexer.items import Item
from indexer.sources import SourceError, folder
from indexer.sources.feed import HttpFeed
from indexer.sources.feed_items import RecordContext, parse_line
from indexer.sources.manifest import count_rows, read_manifest
from indexer.sources.syndication import FeedFormatError, html_to_text, parse_document

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" '


def _manifest(tmp_path: Path, name: str, content: bytes) -> list[Item | SourceError]:
    path = tmp_path / name
    path.write_bytes(content)
    rows = targets.check_values(read_manifest(path, max_caption_bytes=64))
    assert count_rows(path) == len(rows)
    return rows


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("rows.csv", b"id,caption,im\xffage_file,\xff\n1,a cat,p,x\n"),
        ("rows.jsonl", b'{"caption": "a cat", "ve\x9d\x8btext": "x", "\\ud800": "y"}\n'),
    ],
)
def test_metadata_keys_are_repaired_to_utf8(tmp_path: Path, name: str, content: bytes) -> None:
    """A CSV header that is not UTF-8, a JSON key with a lone surrogate: the store refused the payload."""
    (item,) = _manifest(tmp_path, name, content)
    assert isinstance(item, Item) and item.caption == "a cat"
    for key in item.metadata:
        key.encode("utf-8")
    assert len(item.metadata) == 2


def test_metadata_numbers_that_are_not_finite_are_left_out(tmp_path: Path) -> None:
    """JSON's NaN and Infinity (and 1e999) parse as floats; the store refuses them in a payload."""
    line = b'{"caption": "x", "a": NaN, "b": -Infinity, "c": 1e999, "d": 2.5}\n'
    (item,) = _manifest(tmp_path, "rows.jsonl", line)
    assert dict(item.metadata) == {"d": 2.5}


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("rows.csv", b"caption,image\na cat,a\x00b.png\n"),
        ("rows.tsv", b"caption\timage\na cat\tx/\x00\n"),
        ("rows.jsonl", b'{"caption": "a cat", "image": "a\\u0000b.png"}\n'),
    ],
)
def test_a_nul_byte_in_a_manifest_image_path_is_a_bad_path(tmp_path: Path, name: str, content: bytes) -> None:
    """`Path.resolve` raised ValueError (embedded null byte) out of the reader."""
    (error,) = _manifest(tmp_path, name, content)
    assert isinstance(error, SourceError) and error.reason == "bad-path"


def test_a_nul_byte_in_a_feed_image_path_is_a_bad_path(tmp_path: Path) -> None:
    context = RecordContext(namespace="n", roots=(tmp_path,))
    error = parse_line(b'{"caption": "x", "image": "a\\u0000b.png"}', "feed.jsonl:1", context)
    assert isinstance(error, SourceError) and error.reason == "bad-path"


def test_an_integer_timestamp_beyond_any_float_costs_the_date_not_the_row(tmp_path: Path) -> None:
    """float(10**400) raised OverflowError out of both readers."""
    huge = b"1" + b"0" * 400
    (item,) = _manifest(tmp_path, "rows.jsonl", b'{"caption": "x", "timestamp": ' + huge + b"}\n")
    assert isinstance(item, Item) and item.created_at == huge.decode()  # kept as given, as other text is
    feed = parse_line(b'{"caption": "x", "timestamp": ' + huge + b"}", "o", RecordContext(namespace="n"))
    assert isinstance(feed, Item) and feed.created_at is None


@pytest.mark.parametrize("blank", [b"\x1c", b"\xc2\x85", b"\xe3\x80\x80", b"\xef\xbb\xbf"])
def test_count_rows_agrees_with_the_rows_read(tmp_path: Path, blank: bytes) -> None:
    """Lines blank only to `str.strip` (FS, NEL, ideographic space) or a BOM on a later line were
    counted differently: precomputed vectors are matched to rows by position."""
    rows = _manifest(tmp_path, "rows.jsonl", b'{"caption": "x"}\n' + blank + b'\n{"caption": "y"}\n')
    assert [r.caption for r in rows if isinstance(r, Item)] == ["x", "y"]


_DEEP = b"[" * 2000 + b"]" * 2000


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("rows.jsonl", b'{"caption": "x", "m": ' + _DEEP + b"}\n", "bad-json"),
        ("rows.jsonl", b'{"caption": "x", "vector": "' + _DEEP + b'"}\n', "bad-vector"),
        ("rows.csv", b"caption,vector\nx," + _DEEP + b"\n", "bad-vector"),
    ],
)
def test_json_nested_a_thousand_deep_is_a_reasoned_failure(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    """json.loads raises RecursionError, which is no ValueError, out of the manifest reader."""
    (error,) = _manifest(tmp_path, name, content)
    assert isinstance(error, SourceError) and error.reason == reason


def test_a_sidecar_nested_a_thousand_deep_is_a_bad_sidecar_and_keeps_the_image(tmp_path: Path) -> None:
    """The RecursionError ended the whole folder scan."""
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.json").write_bytes(_DEEP)
    (tmp_path / "note.json").write_bytes(b'{"caption": ' + _DEEP + b"}")
    found = targets.check_values(folder.scan_folder(tmp_path, max_caption_bytes=1_000_000), 1_000_000)
    reasons = sorted(f.reason for f in found if isinstance(f, SourceError))
    assert reasons == ["bad-json", "bad-sidecar"]
    assert [f.path.name for f in found if isinstance(f, folder.FolderEntry)] == ["a.jpg"]


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("<p>Hello <![Hello world</p> again", "Hello again"),
        ("<![x]>after", "after"),
        ("a<![if x]>b<![endif]>", "ab"),
    ],
)
def test_an_unknown_marked_section_in_html_is_a_bogus_comment(fragment: str, text: str) -> None:
    """html.parser (CPython < 3.13) raised AssertionError on ``<![x``, out of the feed's poll."""
    assert html_to_text(fragment) == text


def test_a_json_feed_with_a_bogus_marked_section_yields_its_item() -> None:
    body = b'{"items": [{"id": "1", "content_html": "<p>Hello <![Hello world</p>"}]}'

    class Fetcher:
        def fetch_document(self, url: str, **_: object) -> Document:
            return Document(url, body, "application/feed+json", None, None)

    fetcher: object = Fetcher()
    (item,) = HttpFeed("https://feed.example/", fetcher=fetcher).poll()  # type: ignore[arg-type]
    assert isinstance(item, Item) and item.caption == "Hello"


@pytest.mark.parametrize("encoding", [b"x-nope", b"euc-jp"])
def test_an_xml_declaration_naming_an_unusable_encoding_is_a_bad_feed(encoding: bytes) -> None:
    """ElementTree raised LookupError (unknown) or ValueError (multi-byte) past the parse-error handler."""
    with pytest.raises(FeedFormatError, match="malformed XML"):
        parse_document(b'<?xml version="1.0" encoding="' + encoding + b'"?><rss/>')
    with pytest.raises(BadImage) as refused:
        decode_image(b'<?xml version="1.0" encoding="' + encoding + b'"?><svg/>', max_pixels=10**7)
    assert refused.value.reason == "not-an-image"


@pytest.mark.parametrize(
    "attributes",
    [
        b'viewBox="0 0 nan 5"',
        b'viewBox="0 0 inf 5"',
        b'width="1e999" height="5"',
        b'width="1e300" viewBox="0 0 1e-300 1e300"',
    ],
)
def test_svg_sizes_that_are_not_finite_fall_back_to_the_default_raster(attributes: bytes) -> None:
    """round(nan) raised ValueError out of the decoder (NaN or infinite declared sizes, or a ratio
    that overflows)."""
    for data in (SVG + attributes + b"/>", gzip.compress(SVG + attributes + b"/>")):
        decoded = decode_image(data, max_pixels=10**7)
        assert decoded.image.size == (512, 512)


def test_a_damaged_deflate_stream_in_an_svgz_is_a_bad_image() -> None:
    """gzip let zlib.error (not an OSError) out of the decoder: "invalid distance too far back"."""
    drawing = gzip.compress(SVG + b'viewBox="0 0 10 5"><path d="M0 0 L10 5"/></svg>', mtime=0)
    damaged = drawing[:10] + b"\x00" + drawing[11:]  # the first deflate block's header
    with pytest.raises(BadImage) as refused:
        decode_image(damaged, max_pixels=10**7)
    assert refused.value.reason == "truncated" and "decompressing" in refused.value.detail


def test_a_file_name_that_is_not_utf8_is_a_bad_file_name() -> None:
    """scan_folder yielded items whose origin held surrogates (the ledger and store cannot hold them);
    main's bad-file-name (merged) reports them."""
    targets.file_names(b"\xe9t\xe9.png\x00\xe9t\xe9.png.txt\x00d\xff/x.jpg")
