"""Inputs the fuzzer found (bench/fuzz.py), reduced, each with what the reader must do with it now.

Each one used to raise out of the reader, or to give a value the store or the ledger would refuse
later. They go through the real readers, and through the fuzz targets' own checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.fuzz import targets
from indexer.items import Item
from indexer.sources import SourceError
from indexer.sources.manifest import count_rows, read_manifest

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
