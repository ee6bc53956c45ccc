"""read_manifest: 4CAT CSV and NDJSON, delimiters, encodings, huge captions, refused paths, vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indexer.items import Item, id_from_source
from indexer.sources import MAX_METADATA_CHARS, MAX_METADATA_KEYS, SourceError
from indexer.sources.manifest import ManifestColumns, ManifestError, read_manifest

MAX = 10_000


def _read(path: Path, **kw: object) -> list[Item | SourceError]:
    kw.setdefault("max_caption_bytes", MAX)
    return list(read_manifest(path, **kw))


def _items(path: Path, **kw: object) -> list[Item]:
    found = _read(path, **kw)
    assert all(isinstance(f, Item) for f in found), [f for f in found if isinstance(f, SourceError)]
    return found


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (1, 2, 3)).save(path, "PNG")
    return path


FOURCAT_CSV = (
    "id,thread_id,body,author,timestamp,unix_timestamp,image_file,url\n"
    "1001,1000,Tractors block the A1,farmer_jo,2024-01-08 07:12:00,1704697920,images/1001.png,https://t.me/x/1001\n"
    "1002,1000,,farmer_jo,2024-01-08 07:15:00,1704698100,images/1002.png,https://t.me/x/1002\n"
    '1003,1000,"Second line\nof a long post",ann,2024-01-08 08:00:00,1704700800,,https://t.me/x/1003\n'
)


def test_fourcat_csv_works_as_is(tmp_path: Path) -> None:
    _image(tmp_path / "images" / "1001.png")
    manifest = tmp_path / "export.csv"
    manifest.write_text(FOURCAT_CSV, encoding="utf-8")
    first, second, third = _items(manifest)
    assert (first.source, first.origin, first.source_id) == ("manifest", f"{manifest}:2", "1001")
    assert first.caption == "Tractors block the A1"
    assert first.image == str((tmp_path / "images" / "1001.png").resolve())
    assert first.created_at == "2024-01-08T07:12:00+00:00"
    assert dict(first.metadata) == {
        "thread_id": "1000",
        "author": "farmer_jo",
        "unix_timestamp": "1704697920",
        "url": "https://t.me/x/1001",
    }
    assert first.namespace == "manifest" and first.with_caption_in_id is True
    assert first.known_id == id_from_source("manifest", "1001")
    assert second.caption is None and second.image is not None  # a missing image file is decode's business
    assert (third.origin, third.caption, third.image) == (
        f"{manifest}:4",
        "Second line\nof a long post",
        None,
    )


def test_ndjson_with_a_malformed_line_reports_it_and_goes_on(tmp_path: Path) -> None:
    manifest = tmp_path / "export.ndjson"
    lines = [
        json.dumps({"id": 7, "body": "seven", "likes": 3, "tags": ["a"], "author": {"name": "x"}}),
        "",
        '{"id": 8, "body": "eight"',
        "[1, 2]",
        json.dumps({"post_id": "9", "text": "nine", "created_at": 1_704_697_920_000}),
    ]
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = _read(manifest)
    seven, bad, not_object, nine = found
    assert isinstance(seven, Item) and (seven.source_id, seven.caption) == ("7", "seven")
    assert dict(seven.metadata) == {"likes": 3}  # nested values are not metadata
    assert isinstance(bad, SourceError) and (bad.origin, bad.reason) == (f"{manifest}:3", "bad-json")
    assert isinstance(not_object, SourceError) and not_object.origin == f"{manifest}:4"
    assert isinstance(nine, Item) and nine.origin == f"{manifest}:5"
    assert nine.created_at == "2024-01-08T07:12:00+00:00"  # epoch milliseconds


@pytest.mark.parametrize(
    ("name", "separator"), [("a.csv", ";"), ("b.csv", "\t"), ("c.tsv", "\t"), ("d.csv", ",")]
)
def test_delimiters(tmp_path: Path, name: str, separator: str) -> None:
    manifest = tmp_path / name
    rows = [["id", "caption", "note"], ["1", "one, with a comma; and a semicolon", "n"]]
    if separator != ",":
        rows[1][1] = "one, with a comma"
    text = "\n".join(separator.join(f'"{c}"' if "," in c or ";" in c else c for c in row) for row in rows)
    manifest.write_text(text + "\n")
    (item,) = _items(manifest)
    assert item.caption == rows[1][1] and item.metadata == {"note": "n"}


def test_utf8_bom_header_is_recognised(tmp_path: Path) -> None:
    manifest = tmp_path / "bom.csv"
    manifest.write_bytes(b"\xef\xbb\xbfid,caption\nx1,hello\n")
    (item,) = _items(manifest)
    assert (item.source_id, item.caption) == ("x1", "hello")


def test_megabyte_caption_in_csv_is_read_and_truncated(tmp_path: Path) -> None:
    manifest = tmp_path / "big.csv"
    manifest.write_text("id,caption\n1," + "ü" * 1_500_000 + "\n2,short\n", encoding="utf-8")
    big, short = _items(manifest, max_caption_bytes=1_000_001)
    assert big.caption == "ü" * 500_000
    assert big.metadata["caption_truncated"] is True
    assert short.caption == "short" and "caption_truncated" not in short.metadata


def test_megabyte_caption_in_ndjson(tmp_path: Path) -> None:
    manifest = tmp_path / "big.jsonl"
    manifest.write_text(json.dumps({"id": 1, "caption": "x" * 2_000_000}) + "\n")
    (item,) = _items(manifest, max_caption_bytes=1_000_000)
    assert len(item.caption) == 1_000_000 and item.metadata["caption_truncated"] is True


def test_non_utf8_captions_fall_back_per_field(tmp_path: Path) -> None:
    csv_manifest = tmp_path / "cp1252.csv"
    csv_manifest.write_bytes("id,caption,author\n1,Caffè “latte” – 3€,José\n".encode("cp1252"))
    (item,) = _items(csv_manifest)
    assert item.caption == "Caffè “latte” – 3€" and item.metadata["author"] == "José"
    jsonl_manifest = tmp_path / "latin1.jsonl"
    jsonl_manifest.write_bytes(b'{"id": 1, "caption": "Gr\xfc\xdfe aus K\xf6ln"}\n')
    (item,) = _items(jsonl_manifest)
    assert item.caption == "Grüße aus Köln"


def test_lone_surrogate_escapes_never_reach_an_item(tmp_path: Path) -> None:
    manifest = tmp_path / "s.jsonl"
    manifest.write_text('{"id": 1, "caption": "half an emoji \\ud83d here"}\n')
    (item,) = _items(manifest)
    item.caption.encode("utf-8")  # would raise on a lone surrogate
    assert item.caption.startswith("half an emoji")


def test_paths_outside_the_manifest_folder_are_refused(tmp_path: Path) -> None:
    base = tmp_path / "export"
    outside = _image(tmp_path / "secret" / "s.png")
    _image(base / "ok.png")
    (base / "link-out.png").symlink_to(outside)
    rows = ["../secret/s.png", str(outside), "link-out.png", "ok.png", "sub/../ok.png", str(base / "ok.png")]
    manifest = base / "m.csv"
    manifest.write_text("id,image\n" + "".join(f"{i},{row}\n" for i, row in enumerate(rows)))
    found = _read(manifest)
    assert [f.reason if isinstance(f, SourceError) else "ok" for f in found] == [
        "outside-allowed-roots",
        "outside-allowed-roots",
        "outside-allowed-roots",
        "ok",
        "ok",
        "ok",
    ]
    assert found[0].origin == f"{manifest}:2"


def test_allowed_roots_admit_paths_elsewhere(tmp_path: Path) -> None:
    library = tmp_path / "library"
    picture = _image(library / "p.png")
    manifest = tmp_path / "export" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(f"id,image\n1,{picture}\n2,../library/p.png\n")
    first, second = _items(manifest, allowed_roots=[library])
    assert first.image == second.image == str(picture.resolve())


def test_urls_pass_and_other_schemes_are_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    refs = ["https://cdn.example/a.jpg", "HTTP://cdn.example/b.jpg", "file:///etc/passwd", "ftp://h/x.jpg"]
    refs.append("javascript:alert(1)")
    manifest.write_text("id,image_url\n" + "".join(f"{i},{ref}\n" for i, ref in enumerate(refs)))
    found = _read(manifest)
    assert [f.image if isinstance(f, Item) else f.reason for f in found] == [
        refs[0],
        refs[1],
        "refused-scheme",
        "refused-scheme",
        "refused-scheme",
    ]


def test_precomputed_vectors(tmp_path: Path) -> None:
    manifest = tmp_path / "v.jsonl"
    rows = [
        {"id": 1, "vector": [1, 0, 0]},
        {"id": 2, "vector_image": [0, 1], "vector_text": "[0.5, 0.5]", "vector_caption": [3, 4, 5]},
        {"id": 3, "vector_image": [[1, 2]]},
        {"id": 4, "vector_text": "not json"},
        {"id": 5, "vector_image": [1, None]},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    one, two, nested, not_json, with_null = _read(manifest)
    assert isinstance(one, Item) and one.image is None and one.caption is None
    np.testing.assert_array_equal(one.vectors["image"], np.array([1, 0, 0], dtype=np.float32))
    assert sorted(two.vectors) == ["caption", "image", "text"] and two.vectors["text"].dtype == np.float32
    assert [e.reason for e in (nested, not_json, with_null)] == ["bad-vector"] * 3


def test_vectors_in_csv_cells(tmp_path: Path) -> None:
    manifest = tmp_path / "v.csv"
    manifest.write_text('id,caption,vector_image\n1,hi,"[0.1, 0.2]"\n2,no vector,\n')
    first, second = _items(manifest)
    assert first.vectors["image"].shape == (2,) and dict(second.vectors) == {}


def test_ids_namespace_and_caption_in_id(tmp_path: Path) -> None:
    manifest = tmp_path / "n.jsonl"
    manifest.write_text('{"id": 12, "caption": "a"}\n{"id": "", "caption": "b"}\n{"caption": "c"}\n')
    named, blank, missing = _items(manifest, namespace="telegram")
    assert named.source_id == "12" and named.namespace == "telegram"
    assert named.item_id(None) == id_from_source("telegram", "12")
    assert blank.source_id is None and missing.source_id is None
    assert blank.known_id != missing.known_id  # captions differ, and captions are part of the id


def test_created_values(tmp_path: Path) -> None:
    manifest = tmp_path / "t.csv"
    values = ["1704697920", "2024-01-08T07:12:00Z", "2024-01-08T09:12:00+02:00", "yesterday", ""]
    manifest.write_text("id,caption,created_at\n" + "".join(f"{i},c,{v}\n" for i, v in enumerate(values)))
    assert [item.created_at for item in _items(manifest)] == [
        "2024-01-08T07:12:00+00:00",
        "2024-01-08T07:12:00+00:00",
        "2024-01-08T09:12:00+02:00",
        "yesterday",
        None,
    ]


def test_custom_columns(tmp_path: Path) -> None:
    manifest = tmp_path / "c.csv"
    manifest.write_text("Message ID,Message,Photo,body\n5,the real text,pic.png,not the caption\n")
    columns = ManifestColumns(id="message id", caption=("message",), image="photo")
    (item,) = _items(manifest, columns=columns)
    assert (item.source_id, item.caption) == ("5", "the real text")
    assert item.image == str((tmp_path / "pic.png").resolve())
    assert item.metadata == {"body": "not the caption"}


def test_ragged_csv_rows(tmp_path: Path) -> None:
    manifest = tmp_path / "r.csv"
    manifest.write_text("id,caption,author\n1,short row\n2,too,many,fields\n3,,\n")
    short, too_many, empty = _read(manifest)
    assert isinstance(short, Item) and short.caption == "short row"
    assert isinstance(too_many, SourceError) and too_many.reason == "bad-row"
    assert isinstance(empty, SourceError) and empty.reason == "empty-row"


def test_a_csv_without_usable_columns_is_refused_whole(tmp_path: Path) -> None:
    manifest = tmp_path / "x.csv"
    manifest.write_text("name,age\nann,3\n")
    with pytest.raises(ManifestError, match="no image, caption or vector column"):
        _read(manifest)


def test_metadata_is_bounded(tmp_path: Path) -> None:
    manifest = tmp_path / "wide.jsonl"
    row = {"id": 1, "caption": "c", "long": "y" * 10_000, **{f"k{i:03d}": i for i in range(200)}}
    manifest.write_text(json.dumps(row) + "\n")
    (item,) = _items(manifest)
    assert len(item.metadata) <= MAX_METADATA_KEYS + 1  # + caption_truncated at most
    assert len(item.metadata["long"]) == MAX_METADATA_CHARS


def test_format_is_sniffed_for_other_suffixes(tmp_path: Path) -> None:
    jsonish = tmp_path / "export.dat"
    jsonish.write_text('{"id": 1, "caption": "from json"}\n')
    csvish = tmp_path / "export.out"
    csvish.write_text("id,caption\n1,from csv\n")
    assert _items(jsonish)[0].caption == "from json"
    assert _items(csvish)[0].caption == "from csv"


def test_origin_uses_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,caption\n1,a\n")
    monkeypatch.chdir(tmp_path)
    (item,) = _items(Path("m.csv"))
    assert item.origin == "m.csv:2"


TIKTOK_4CAT_CSV = (
    "id,author,body,Transcript,timestamp,image_file\n"
    "7300000000000000001,farmer_jo,#boerenprotest trekkers,we drive to the hague today,2024-01-08 07:12:00,\n"
    "7300000000000000002,ann,,only spoken words here,2024-01-09 10:00:00,\n"
    "7300000000000000003,ann,only a body,,2024-01-10 10:00:00,\n"
)


def test_caption_joins_the_named_columns_in_the_stated_order(tmp_path: Path) -> None:
    manifest = tmp_path / "tiktok.csv"
    manifest.write_text(TIKTOK_4CAT_CSV, encoding="utf-8")
    first, second, third = _items(manifest, caption_columns=["Transcript", "BODY"])
    assert first.caption == "we drive to the hague today\n\n#boerenprotest trekkers"
    assert (second.caption, third.caption) == ("only spoken words here", "only a body")
    assert first.source_id == "7300000000000000001"
    assert "Transcript" not in first.metadata and "body" not in first.metadata
    default = _read(manifest)[0]  # without the option: the first candidate column alone, as before
    assert default.caption == "#boerenprotest trekkers" and default.metadata["Transcript"]


def test_a_named_caption_column_the_csv_lacks_is_refused_whole(tmp_path: Path) -> None:
    manifest = tmp_path / "tiktok.csv"
    manifest.write_text(TIKTOK_4CAT_CSV, encoding="utf-8")
    with pytest.raises(ManifestError, match="no caption column 'transkript'"):
        _read(manifest, caption_columns=["body", "Transkript"])


def test_caption_columns_in_ndjson_rows(tmp_path: Path) -> None:
    manifest = tmp_path / "tiktok.ndjson"
    rows = [{"id": "1", "body": "b", "Transcript": "t"}, {"id": "2", "body": "only b"}]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    first, second = _items(manifest, caption_columns=["body", "transcript"])
    assert (first.caption, second.caption) == ("b\n\nt", "only b")
