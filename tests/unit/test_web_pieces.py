"""The web interface's small pieces without a store: Host parsing and the loopback rule, CSRF tokens,
the thumbnail cache's size bound."""

from __future__ import annotations

import os
import time
from pathlib import Path

from indexer.config import load_settings
from tests.helpers import draw_image
from web.security import Access, Csrf, host_name, is_loopback
from web.thumbs import Thumbnails


def test_host_names_and_who_needs_a_token() -> None:
    assert host_name("127.0.0.1:8765") == "127.0.0.1"
    assert host_name("[::1]:8765") == "::1"
    assert host_name("LocalHost") == "localhost"
    assert is_loopback("127.0.0.2") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("evil.example")
    local = Access.for_bind("127.0.0.1", None)
    assert local.token is None
    assert local.host_allowed("127.0.0.1:8765") and local.host_allowed("localhost:8765")
    assert not local.host_allowed("evil.example:8765") and not local.host_allowed("")
    assert not local.host_allowed("127.0.0.1.evil.example")
    lan = Access.for_bind("192.168.1.4", "given")
    assert lan.token == "given" and lan.host_allowed("192.168.1.4") and not lan.host_allowed("10.0.0.1")
    assert Access.for_bind("0.0.0.0", None).token != Access.for_bind("0.0.0.0", None).token


def test_csrf_tokens_are_bound_to_the_cookie_and_the_start() -> None:
    csrf = Csrf()
    nonce = Csrf.new_nonce()
    token = csrf.token(nonce)
    assert csrf.valid(nonce, token)
    assert not csrf.valid(Csrf.new_nonce(), token)  # another browser's cookie
    assert not csrf.valid(nonce, None) and not csrf.valid(None, token)
    assert not Csrf().valid(nonce, token)  # a token from before a restart


def test_the_thumbnail_cache_keeps_its_size_bound(tmp_path: Path) -> None:
    thumbs = Thumbnails(load_settings(data_dir=tmp_path / "data", web={"thumb_side": 64}))
    thumbs.limit = 6_000  # bytes: a handful of thumbnails
    for i in range(12):
        picture = draw_image(tmp_path / f"p{i}.png", seed=i, size=(300, 200), fmt="PNG")
        os.utime(picture)
        data = thumbs.get(f"{i:08d}-0000-0000-0000-000000000000", {"path": str(picture), "sha256": str(i)})
        assert data is not None and data[:2] == b"\xff\xd8"  # re-encoded as JPEG
        time.sleep(0.01)
    assert 0 < thumbs.size() <= thumbs.limit
    kept = sorted(p.name for p in (tmp_path / "data" / "thumbs").glob("*/*.jpg"))
    assert 0 < len(kept) < 12
    assert thumbs.get("x", {"path": str(tmp_path / "missing.jpg")}) is None
    (tmp_path / "junk.jpg").write_bytes(b"<html>not a picture</html>")
    assert thumbs.get("y", {"path": str(tmp_path / "junk.jpg")}) is None
    outside = Thumbnails(load_settings(data_dir=tmp_path / "data"))
    assert outside.tile(str(tmp_path / "p1.png"), tmp_path / "data") is None  # tiles: data dir only


def test_serve_prints_a_token_url_only_for_a_token_of_its_own(tmp_path: Path) -> None:
    from web.server import WebServer

    def nothing():
        raise RuntimeError("not serving")

    local = WebServer(nothing, load_settings(data_dir=tmp_path))
    assert local.open_url == "http://127.0.0.1:8765/"
    fresh = WebServer(nothing, load_settings(data_dir=tmp_path, web={"host": "0.0.0.0"}))
    assert fresh.open_url == f"http://0.0.0.0:8765/?token={fresh.access.token}"
    given = WebServer(nothing, load_settings(data_dir=tmp_path, web={"host": "::", "token": "s3cret"}))
    assert given.access.token == "s3cret" and "s3cret" not in given.open_url
    assert given.open_url == "http://[::]:8765/?token=<web.token>"
