"""A running `topics serve` fed every kind of bad input: each gets a recorded reason, nothing stops.

The corpus is made here: broken images in a watched folder (`tests/badimages.py`), a JSONL feed with
malformed, incomplete, mistyped, 100 MB and path-escaping lines, and an HTTP feed on a loopback server
whose image URLs answer HTML, 404, redirect loops, redirects to other schemes, or too slowly, or name
private, link-local and IPv6 loopback addresses. Loopback is allowed for this feed by
`fetch.allow_networks = ["127.0.0.0/8"]` only, so the other private addresses stay refused.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from indexer.items import id_from_content, id_from_source, sha256_bytes
from indexer.store.shared import RemoteBackend
from tests.badimages import write_bad_corpus
from tests.helpers import tiny_env
from tests.loopback import LoopbackServer, Reply, serving
from tests.reliability.conftest import Serve, wait_for

pytestmark = pytest.mark.slow

MiB = 1024 * 1024


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _jsonl_feed(path: Path, outside: Path) -> dict[int, str | None]:
    """Write the feed; return each line number's expected failure reason (None: stored)."""
    lines: list[tuple[str, str | None]] = [
        (json.dumps({"id": "good1", "text": "a fine post"}), None),
        ('{"id": "broken", "text": "no closing brace"', "bad-json"),
        ("[1, 2, 3]", "bad-json"),
        (json.dumps({"id": "nothing-to-embed"}), "empty-row"),
        (json.dumps({"author": "someone", "likes": 3}), "empty-row"),
        (json.dumps({"id": "w1", "text": 42}), "wrong-type"),
        (json.dumps({"id": {"nested": 1}, "text": "id is an object"}), "wrong-type"),
        (json.dumps({"id": "w3", "text": "x", "created_at": [2024]}), "wrong-type"),
        (json.dumps({"id": "w4", "text": "x", "image": 7}), "wrong-type"),
        (json.dumps({"id": "dotdot", "text": "x", "image": f"../{outside.name}"}), "outside-allowed-roots"),
        (json.dumps({"id": "absolute", "text": "x", "image": str(outside)}), "outside-allowed-roots"),
        (json.dumps({"id": "etc", "text": "x", "image": "/etc/passwd"}), "outside-allowed-roots"),
        (json.dumps({"id": "file", "text": "x", "image": "file:///etc/passwd"}), "refused-scheme"),
        (None, "line-too-long"),  # 100 MB
        (json.dumps({"id": "good2", "text": "after all the bad ones"}), None),
    ]
    expected: dict[int, str | None] = {}
    with path.open("w") as fh:
        for number, (line, reason) in enumerate(lines, start=1):
            if line is None:
                fh.write('{"id": "huge", "text": "')
                for _ in range(100):
                    fh.write("x" * MiB)
                fh.write('"}\n')
            else:
                fh.write(line + "\n")
            expected[number] = reason
    return expected


def _http_feed(server: LoopbackServer) -> dict[str, tuple[str, str | None]]:
    """Routes and feed entries: entry id -> (image URL, expected reason)."""
    png = {"Content-Type": "image/png"}
    server.route("/ok.png", Reply(body=_png(), headers=png))
    server.route(
        "/page", Reply(body=b"<html><body>a page</body></html>", headers={"Content-Type": "text/html"})
    )
    server.route("/loop1", Reply(302, headers={"Location": "/loop2"}))
    server.route("/loop2", Reply(302, headers={"Location": "/loop1"}))
    server.route("/to-file", Reply(302, headers={"Location": "file:///etc/passwd"}))
    server.route("/to-ftp", Reply(301, headers={"Location": "ftp://127.0.0.1/x.png"}))
    server.route("/slow.png", Reply(body=_png(), headers=png, delay_s=3.0))
    server.route("/drip.png", Reply(body=_png() * 40, headers=png, chunk=64, drip_s=0.05))
    port = server.base.rsplit(":", 1)[1]
    entries = {
        "ok": (server.url("/ok.png"), None),
        "html": (server.url("/page"), "not-an-image"),
        "missing": (server.url("/missing.png"), "http-404"),
        "loop": (server.url("/loop1"), "redirect-loop"),
        "to-file": (server.url("/to-file"), "bad-scheme"),
        "to-ftp": (server.url("/to-ftp"), "bad-scheme"),
        "slow": (server.url("/slow.png"), "timeout"),
        "drip": (server.url("/drip.png"), "timeout"),
        # refused before connecting: a connection would have failed with "connection" or "timeout"
        "private": ("http://10.1.2.3/x.png", "private-address"),
        "metadata": ("http://169.254.169.254/latest/meta-data/", "private-address"),
        "v6-loopback": (f"http://[::1]:{port}/ok.png", "private-address"),
        "gopher": ("gopher://127.0.0.1/x", "refused-scheme"),
    }
    feed = [{"id": key, "caption": f"entry {key}", "image": url} for key, (url, _) in entries.items()]
    server.route(
        "/feed.json", Reply(body=json.dumps(feed).encode(), headers={"Content-Type": "application/json"})
    )
    return entries


def _failures(data_dir: Path) -> dict[str, str]:
    try:
        with sqlite3.connect(f"file:{data_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=2) as db:
            return dict(db.execute("SELECT origin, reason FROM failures").fetchall())
    except sqlite3.Error:
        return {}


def _stored_ids(data_dir: Path) -> set[str]:
    remote = RemoteBackend(data_dir)
    try:
        items = remote.collection("items")
        return {p.id for batch in items.scroll(payload=False) for p in batch} if items.exists() else set()
    finally:
        remote.close()


def test_serve_records_a_reason_for_every_bad_input_and_keeps_going(tmp_path: Path, serve: Serve) -> None:
    inbox, feeds = tmp_path / "inbox", tmp_path / "feeds"
    feeds.mkdir()
    images = write_bad_corpus(inbox)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"not for the indexer")
    jsonl = feeds / "posts.jsonl"
    lines = _jsonl_feed(jsonl, outside)
    env = tiny_env(
        serve.data_dir,
        TOPICS_WATCH__SETTLE_S="0.2",
        TOPICS_WATCH__FEED_INTERVAL_S="1",
        TOPICS_FETCH__ALLOW_NETWORKS='["127.0.0.0/8"]',
        TOPICS_FETCH__TIMEOUT_S="1",
        TOPICS_FETCH__RETRIES="1",
    )
    with serving() as server:
        entries = _http_feed(server)
        feed_url = server.url("/feed.json")
        pid = serve.start(["--watch", str(inbox), "--feed", str(jsonl), "--feed", feed_url], env)

        want: dict[str, str] = {str(inbox.resolve() / n): e.reason for n, e in images.items() if e.reason}
        want |= {f"{jsonl.resolve()}:{n}": r for n, r in lines.items() if r}
        want |= {f"{feed_url}#{key}": r for key, (_, r) in entries.items() if r}
        not_fetched = {k for k, (_, r) in entries.items() if r not in (None, "refused-scheme")}
        good = {
            id_from_source("posts", "good1"),
            id_from_source("posts", "good2"),
            id_from_source(f"http:{feed_url}", "ok"),  # an HTTP feed's namespace is its name
            # a picture that could not be fetched leaves its caption stored alone (reason recorded)
            *(id_from_source(f"http:{feed_url}", key) for key in not_fetched),
            *(
                id_from_content(sha256_bytes((inbox / n).read_bytes()), None, with_caption=False)
                for n, e in images.items()
                if e.ok
            ),
        }
        wait_for(
            lambda: want.items() <= _failures(serve.data_dir).items() and good <= _stored_ids(serve.data_dir),
            120,
            "every bad input's reason and every good item",
            interval=0.5,
        )

        # still alive, still answering, still ingesting
        remote = RemoteBackend(serve.data_dir)
        try:
            status = remote.call_owner("status")
        finally:
            remote.close()
        assert status["pid"] == pid and status["failed"] + status["incomplete"] >= len(want)
        with jsonl.open("a") as fh:
            fh.write(json.dumps({"id": "good3", "text": "the service goes on"}) + "\n")
        wait_for(lambda: id_from_source("posts", "good3") in _stored_ids(serve.data_dir), 60, "a later item")

    failures = _failures(serve.data_dir)
    assert {origin: failures[origin] for origin in want} == want
    stored = _stored_ids(serve.data_dir)
    assert good | {id_from_source("posts", "good3")} == stored  # nothing bad slipped in
    assert serve.stop(pid) == 0
