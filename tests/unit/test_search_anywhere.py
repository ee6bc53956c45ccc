"""`search_anywhere` through a running service: a query image is this process's file, sent as bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from topics.query.search import search_anywhere


class _ServedIndex:
    """An index whose store belongs to `topics serve`: commands go to the owner, which records them."""

    remote = True

    def __init__(self) -> None:
        self.backend = self
        self.calls: list[tuple[str, tuple, dict[str, Any]]] = []

    def call_owner(self, command: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append((command, args, kwargs))
        return {}


def test_a_relative_image_path_is_read_here_and_sent_as_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("query.jpg").write_bytes(b"the picture")
    index = _ServedIndex()
    search_anywhere(index, "cats", image=Path("query.jpg"), limit=3)  # type: ignore[arg-type]
    assert index.calls == [("search", ("cats",), {"image": b"the picture", "limit": 3})]


def test_a_missing_image_is_one_clear_error_before_the_service_is_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    index = _ServedIndex()
    with pytest.raises(ValueError, match=r"^--image missing.jpg: No such file or directory$"):
        search_anywhere(index, None, image=Path("missing.jpg"))  # type: ignore[arg-type]
    assert index.calls == []
