"""scan_folder: order, sidecars, caption-only items, skipped files, encodings, truncation, signatures."""

from __future__ import annotations

import codecs
import os
from datetime import datetime
from pathlib import Path

import pytest
from badimages import write_bad_corpus
from PIL import Image

from indexer.sources import SourceError
from indexer.sources.folder import FolderEntry, scan_folder

MAX = 10_000


def _image(path: Path, colour: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF"}.get(path.suffix.lower(), path.suffix[1:].upper())
    Image.new("RGB", (8, 8), colour).save(path, fmt)
    return path


def _scan(root: Path, max_caption_bytes: int = MAX) -> list[FolderEntry | SourceError]:
    return list(scan_folder(root, max_caption_bytes=max_caption_bytes))


def _entries(root: Path, **kw: int) -> dict[str, FolderEntry]:
    found = _scan(root, **kw)
    return {e.item.metadata["relative_path"]: e for e in found if isinstance(e, FolderEntry)}


def test_finds_images_of_every_extension_in_any_case_recursively(tmp_path: Path) -> None:
    names = ["a.jpg", "b.JPEG", "c.png", "d.webp", "e.gif", "f.bmp", "g.tif", "h.TIFF", "deep/er/i.Png"]
    for name in names:
        _image(tmp_path / name)
    (tmp_path / "readme.md").write_text("not an item")
    assert sorted(_entries(tmp_path)) == sorted(names)


def test_order_is_deterministic_files_before_subfolders(tmp_path: Path) -> None:
    for name in ["b/z.jpg", "a/y.jpg", "c.jpg", "a.jpg", "a/b/x.jpg"]:
        _image(tmp_path / name)
    order = [e.item.metadata["relative_path"] for e in _scan(tmp_path)]
    assert order == ["a.jpg", "c.jpg", "a/y.jpg", "a/b/x.jpg", "b/z.jpg"]
    assert order == [e.item.metadata["relative_path"] for e in _scan(tmp_path)]


def test_entry_describes_the_image_for_the_ledger(tmp_path: Path) -> None:
    path = _image(tmp_path / "sub" / "cat.jpg")
    entry = _entries(tmp_path)["sub/cat.jpg"]
    info = path.stat()
    assert entry.path == path and entry.size == info.st_size and entry.mtime_ns == info.st_mtime_ns
    assert entry.sidecars == ()
    item = entry.item
    assert (item.source, item.origin, item.image, item.caption) == ("folder", str(path), str(path), None)
    assert item.with_caption_in_id is False
    assert datetime.fromisoformat(item.created_at).timestamp() == info.st_mtime_ns // 10**9


def test_text_sidecar_gives_the_caption_and_changes_the_signature(tmp_path: Path) -> None:
    _image(tmp_path / "cat.jpg")
    sidecar = tmp_path / "cat.txt"
    sidecar.write_bytes(b"\xef\xbb\xbfa cat\r\non a mat\r\n")
    entry = _entries(tmp_path)["cat.jpg"]
    assert entry.item.caption == "a cat\non a mat"
    first = entry.sidecars
    assert [stamp.name for stamp in first] == ["cat.txt"]
    sidecar.write_text("a different caption")
    os.utime(sidecar, ns=(1, 1))
    assert _entries(tmp_path)["cat.jpg"].sidecars != first


def test_full_name_sidecars_win_and_json_adds_metadata(tmp_path: Path) -> None:
    _image(tmp_path / "cat.jpg")
    (tmp_path / "cat.jpg.txt").write_text("from cat.jpg.txt")
    (tmp_path / "cat.txt").write_text("from cat.txt")
    (tmp_path / "cat.jpg.json").write_text(
        '{"title": "A title", "author": "ann", "likes": 3, "nested": {"x": 1}, "tags": ["a"], "none": null}'
    )
    entries = _entries(tmp_path)
    cat = entries["cat.jpg"]
    assert cat.item.caption == "from cat.jpg.txt"
    assert dict(cat.item.metadata) == {
        "title": "A title",
        "author": "ann",
        "likes": 3,
        "relative_path": "cat.jpg",
    }
    assert [stamp.name for stamp in cat.sidecars] == ["cat.jpg.txt", "cat.jpg.json"]  # both count
    assert entries["cat.txt"].item.caption == "from cat.txt"  # the unused one is its own item


def test_json_caption_keys_in_order(tmp_path: Path) -> None:
    _image(tmp_path / "a.png")
    (tmp_path / "a.json").write_text('{"description": "desc", "Text": "the text", "title": "t"}')
    entry = _entries(tmp_path)["a.png"]
    assert entry.item.caption == "the text"
    assert entry.item.metadata["description"] == "desc" and entry.item.metadata["title"] == "t"


def test_invalid_json_sidecar_is_reported_and_the_image_still_comes(tmp_path: Path) -> None:
    _image(tmp_path / "cat.jpg")
    (tmp_path / "cat.txt").write_text("still captioned")
    (tmp_path / "cat.json").write_text("{not json")
    found = _scan(tmp_path)
    errors = [e for e in found if isinstance(e, SourceError)]
    assert [(e.origin, e.reason) for e in errors] == [(str(tmp_path / "cat.json"), "bad-sidecar")]
    entry = found[-1]
    assert isinstance(entry, FolderEntry) and entry.item.caption == "still captioned"
    assert "cat.json" in [s.name for s in entry.sidecars]  # fixing the JSON will re-ingest the image


def test_json_sidecar_that_is_not_an_object(tmp_path: Path) -> None:
    _image(tmp_path / "cat.jpg")
    (tmp_path / "cat.json").write_text("[1, 2]")
    found = _scan(tmp_path)
    assert isinstance(found[0], SourceError) and found[0].reason == "bad-sidecar"
    assert isinstance(found[1], FolderEntry) and found[1].item.caption is None


def test_caption_only_items(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text("just words")
    (tmp_path / "note.json").write_text('{"author": "bo"}')
    (tmp_path / "post.json").write_text('{"caption": "json words", "lang": "en"}')
    (tmp_path / "blank.txt").write_text("   \n")
    (tmp_path / "broken.json").write_text("{")
    found = _scan(tmp_path)
    entries = {e.item.metadata["relative_path"]: e for e in found if isinstance(e, FolderEntry)}
    errors = {Path(e.origin).name: e.reason for e in found if isinstance(e, SourceError)}
    note = entries["note.txt"]
    assert (note.item.image, note.item.caption, note.item.metadata["author"]) == (None, "just words", "bo")
    assert [stamp.name for stamp in note.sidecars] == ["note.json"]
    post = entries["post.json"]
    assert (post.item.caption, post.item.metadata["lang"], post.sidecars) == ("json words", "en", ())
    assert errors == {"blank.txt": "no-caption", "broken.json": "bad-json"}


def test_svg_pictures_take_their_caption_like_any_image(tmp_path: Path) -> None:
    (tmp_path / "logo.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>')
    (tmp_path / "logo.txt").write_text("the club logo")
    (tmp_path / "map.SVGZ").write_bytes(b"\x1f\x8b")
    entries = _entries(tmp_path)
    assert sorted(entries) == ["logo.svg", "map.SVGZ"]
    logo = entries["logo.svg"].item
    assert (logo.image, logo.caption) == (str(tmp_path / "logo.svg"), "the club logo")


def test_pictures_and_videos_no_decoder_reads_are_reported_not_dropped(tmp_path: Path) -> None:
    for name in ("IMG_0001.HEIC", "clip.mp4", "raw.cr2", "layers.psd"):
        (tmp_path / name).write_bytes(b"\x00" * 64)
    (tmp_path / "IMG_0001.txt").write_text("a phone picture")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    found = _scan(tmp_path)
    errors = {Path(e.origin).name: (e.reason, e.detail) for e in found if isinstance(e, SourceError)}
    assert {name: reason for name, (reason, _) in errors.items()} == dict.fromkeys(
        ("IMG_0001.HEIC", "clip.mp4", "raw.cr2", "layers.psd"), "unsupported-format"
    )
    assert errors["IMG_0001.HEIC"][1].startswith("HEIC picture: no decoder")
    assert errors["clip.mp4"][1].startswith("MP4 video")
    caption = _entries(tmp_path)["IMG_0001.txt"].item  # the caption is kept as a caption-only item
    assert (caption.image, caption.caption) == (None, "a phone picture")


def test_hidden_and_partial_files_are_skipped(tmp_path: Path) -> None:
    _image(tmp_path / "ok.jpg")
    _image(tmp_path / ".hidden.jpg")
    _image(tmp_path / ".cache" / "in-hidden-dir.jpg")
    for name in ["x.jpg.part", "y.jpg.crdownload", "z.tmp", "w.PART"]:
        (tmp_path / name).write_bytes(b"partial")
    (tmp_path / ".notes.txt").write_text("hidden caption")
    assert list(_entries(tmp_path)) == ["ok.jpg"]


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    _image(tmp_path / "real" / "a.jpg")
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert list(_entries(tmp_path)) == ["real/a.jpg"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("naïve café ☕".encode(), "naïve café ☕"),
        ("naïve café – “quoted”".encode("cp1252"), "naïve café – “quoted”"),
        (b"\x81\x8d caf\xe9", "\x81\x8d café"),  # bytes cp1252 lacks: latin-1 takes anything
        (codecs.BOM_UTF16_LE + "Grüße aus Köln".encode("utf-16-le"), "Grüße aus Köln"),
        (b"line one\rline two", "line one\nline two"),
    ],
)
def test_caption_encodings_never_fail(tmp_path: Path, raw: bytes, expected: str) -> None:
    _image(tmp_path / "p.jpg")
    (tmp_path / "p.txt").write_bytes(raw)
    assert _entries(tmp_path)["p.jpg"].item.caption == expected


def test_megabyte_caption_is_truncated_at_a_character_boundary(tmp_path: Path) -> None:
    _image(tmp_path / "big.jpg")
    (tmp_path / "big.txt").write_text("é" * 1_500_000, encoding="utf-8")  # 3 MB of two-byte characters
    entry = _entries(tmp_path, max_caption_bytes=1_000_001)["big.jpg"]
    assert entry.item.caption == "é" * 500_000  # 1,000,000 bytes: the half character is dropped
    assert entry.item.metadata["caption_truncated"] is True


def test_caption_within_the_limit_is_not_marked(tmp_path: Path) -> None:
    _image(tmp_path / "small.jpg")
    (tmp_path / "small.txt").write_text("é" * 100)
    assert "caption_truncated" not in _entries(tmp_path, max_caption_bytes=200)["small.jpg"].item.metadata


def test_missing_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        _scan(tmp_path / "nope")


def test_bad_corpus_comes_through_for_decoding_to_judge(tmp_path: Path) -> None:
    expected = write_bad_corpus(tmp_path)
    assert sorted(_entries(tmp_path)) == sorted(expected)
