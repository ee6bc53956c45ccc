"""Feeds: record parsing, stdin, a JSONL file followed through appends/truncation/rotation/restarts,
and HTTP feeds (JSON, JSON Feed, RSS, Atom) from a real loopback server."""

from __future__ import annotations

import io
import json
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import LoopbackServer, Reply

from indexer.fetch import ImageFetcher
from indexer.items import Item, id_from_source
from indexer.ledger import Ledger
from indexer.sources import SourceError
from indexer.sources.feed import HttpFeed, JsonlTail, RecordContext, parse_record, read_stream

MiB = 1024 * 1024
CTX = RecordContext(namespace="posts")


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened


def reasons(records: list) -> list[str]:
    return [r.reason if isinstance(r, SourceError) else "item" for r in records]


def line(**fields) -> str:
    return json.dumps(fields) + "\n"


# -- parse_record ---------------------------------------------------------------------------------


def test_record_with_everything() -> None:
    record = {
        "id": 7,
        "caption": " tractors ",
        "image_url": "https://cdn.example/a.jpg",
        "timestamp": 1700000000,
        "author": "ann",
        "likes": 3,
        "tags": ["x"],
    }
    item = parse_record(record, "feed:1", CTX)
    assert isinstance(item, Item)
    assert (item.source, item.source_id, item.namespace) == ("feed", "7", "posts")
    assert (item.caption, item.image) == ("tractors", "https://cdn.example/a.jpg")
    assert item.created_at == "2023-11-14T22:13:20+00:00"
    assert dict(item.metadata) == {"author": "ann", "likes": 3}
    assert item.known_id == id_from_source("posts", "7")


def test_json_feed_item_with_attachments() -> None:
    record = {
        "id": "https://blog.example/p/1",
        "content_html": "<p>Farmers <b>protest</b> &amp; march</p><script>x()</script>",
        "attachments": [
            {"url": "https://blog.example/a.mp3", "mime_type": "audio/mpeg"},
            {"url": "https://blog.example/a.png", "mime_type": "image/png"},
        ],
        "date_published": "2024-05-01T10:00:00Z",
    }
    item = parse_record(record, "f#1", CTX)
    assert isinstance(item, Item)
    assert item.caption == "Farmers protest & march"
    assert item.image == "https://blog.example/a.png"
    assert item.created_at == "2024-05-01T10:00:00+00:00"


@pytest.mark.parametrize(
    ("date", "expected"),
    [
        ("Wed, 01 May 2024 10:00:00 +0200", "2024-05-01T10:00:00+02:00"),
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
        (1714557600000, "2024-05-01T10:00:00+00:00"),  # milliseconds
        ("next tuesday", None),  # unreadable: the record stays, the date goes
    ],
)
def test_dates(date, expected) -> None:
    item = parse_record({"text": "x", "date": date}, "o", CTX)
    assert isinstance(item, Item) and item.created_at == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": 1}, "empty-row"),
        ({"caption": "", "image": ""}, "empty-row"),
        ({"caption": {"text": "nested"}}, "wrong-type"),
        ({"caption": ["a", "b"]}, "wrong-type"),
        ({"id": [1], "caption": "a"}, "wrong-type"),
        ({"id": True, "caption": "a"}, "wrong-type"),
        ({"caption": "a", "image": 42}, "wrong-type"),
        ({"caption": "a", "timestamp": {"t": 1}}, "wrong-type"),
        ({"caption": "a", "image": "file:///etc/passwd"}, "refused-scheme"),
        ({"caption": "a", "image": "javascript:alert(1)"}, "refused-scheme"),
        ({"caption": "a", "image": "/etc/passwd"}, "outside-allowed-roots"),
    ],
)
def test_bad_records(record: dict, reason: str) -> None:
    error = parse_record(record, "feed:3", CTX)
    assert isinstance(error, SourceError)
    assert (error.origin, error.reason) == ("feed:3", reason)


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None])
def test_non_objects_are_bad_json(value) -> None:
    error = parse_record(value, "feed:1", CTX)
    assert isinstance(error, SourceError) and error.reason == "bad-json"


def test_local_paths_only_inside_roots(tmp_path: Path) -> None:
    context = RecordContext(namespace="n", roots=(tmp_path,))
    inside = parse_record({"image": "img/a.jpg"}, "o", context)
    assert isinstance(inside, Item) and inside.image == str(tmp_path / "img" / "a.jpg")
    outside = parse_record({"image": "../../etc/passwd"}, "o", context)
    assert isinstance(outside, SourceError) and outside.reason == "outside-allowed-roots"


def test_relative_urls_join_the_feed_url() -> None:
    context = RecordContext(namespace="n", base_url="https://news.example/feed/rss.xml")
    item = parse_record({"image": "../img/a.jpg", "title": "t"}, "o", context)
    assert isinstance(item, Item) and item.image == "https://news.example/img/a.jpg"


def test_long_caption_is_truncated_and_flagged() -> None:
    item = parse_record({"caption": "é" * 100}, "o", RecordContext(namespace="n", max_caption_bytes=21))
    assert isinstance(item, Item)
    assert item.caption == "é" * 10 and item.metadata["caption_truncated"] is True


# -- stdin ----------------------------------------------------------------------------------------


def test_read_stream_goes_on_after_bad_lines() -> None:
    data = (
        line(id=1, caption="one")
        + "{not json\n"
        + "\n"
        + line(id=2)
        + '{"caption": "'
        + "x" * 300
        + '"}\n'
        + line(id=3, caption=5)
        + line(id=4, caption="four")
    ).encode()
    records = list(read_stream(io.BytesIO(data), "stdin", max_line_bytes=200))
    assert reasons(records) == ["item", "bad-json", "empty-row", "line-too-long", "wrong-type", "item"]
    assert [r.origin for r in records] == [f"stdin:{n}" for n in (1, 2, 4, 5, 6, 7)]


def test_read_stream_accepts_text_streams_and_bad_encoding() -> None:
    raw = io.BytesIO(b'{"caption": "caf\xe9"}\n')  # cp1252, not UTF-8
    records = list(read_stream(io.TextIOWrapper(raw, encoding="utf-8"), "stdin"))
    assert isinstance(records[0], Item) and records[0].caption == "café"


def test_read_stream_skips_a_100_mb_line_in_bounded_memory(tmp_path: Path) -> None:
    path = sparse_long_line(tmp_path / "big.jsonl", 100 * MiB)
    tracemalloc.start()
    with path.open("rb") as stream:
        records = list(read_stream(stream, "stdin", max_line_bytes=1 * MiB))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reasons(records) == ["line-too-long", "item"]
    assert peak < 16 * MiB


def sparse_long_line(path: Path, size: int) -> Path:
    """A JSONL file whose first line is `size` bytes (mostly a sparse hole), then one good line."""
    with path.open("wb") as handle:
        handle.write(b'{"caption": "')
        handle.seek(size)
        handle.write(b'"}\n' + line(id="after", caption="still here").encode())
    return path


# -- JSONL tail -----------------------------------------------------------------------------------


def append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


def captions(records: list) -> list[str]:
    return [r.caption for r in records if isinstance(r, Item)]


def test_tail_follows_appends_and_waits_for_a_whole_line(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    tail = JsonlTail(path, cursor_store=ledger)
    assert tail.poll() == []  # no file yet
    append(path, line(id=1, caption="a") + line(id=2, caption="b"))
    assert captions(tail.poll()) == ["a", "b"]
    append(path, '{"id": 3, "capt')
    assert tail.poll() == []
    append(path, 'ion": "c"}\n')
    records = tail.poll()
    assert captions(records) == ["c"] and records[0].origin == f"{path}:3"
    assert tail.poll() == []


def test_tail_reports_bad_lines_and_goes_on(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(
        path, '{"id": 1,\n' + line(id=2) + line(caption=["x"]) + "[1, 2]\n" + b"\xff\xfe\n".decode("latin-1")
    )
    append(path, line(id=6, caption="ok"))
    records = JsonlTail(path, cursor_store=ledger).poll()
    assert reasons(records) == ["bad-json", "empty-row", "wrong-type", "bad-json", "bad-json", "item"]
    assert [r.origin.rsplit(":", 1)[1] for r in records] == ["1", "2", "3", "4", "5", "6"]


def test_tail_skips_a_100_mb_line_in_bounded_memory(tmp_path: Path, ledger: Ledger) -> None:
    path = sparse_long_line(tmp_path / "big.jsonl", 100 * MiB)
    tail = JsonlTail(path, cursor_store=ledger, max_line_bytes=2 * MiB)
    tracemalloc.start()
    records = tail.poll()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reasons(records) == ["line-too-long", "item"]
    assert records[0].origin == f"{path}:1" and "104857" in records[0].detail
    assert records[1].origin == f"{path}:2"
    assert peak < 16 * MiB
    tail.commit()
    append(path, line(caption="next"))
    assert captions(JsonlTail(path, cursor_store=ledger).poll()) == ["next"]


def test_tail_long_line_arriving_in_pieces(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    tail = JsonlTail(path, cursor_store=ledger, max_line_bytes=1000)
    append(path, '{"caption": "' + "x" * 1500)
    assert tail.poll() == []
    append(path, "y" * 1500)
    assert tail.poll() == []
    append(path, '"}\n' + line(caption="ok"))
    records = tail.poll()
    assert reasons(records) == ["line-too-long", "item"]
    tail.commit()
    append(path, line(caption="later"))
    resumed = JsonlTail(path, cursor_store=ledger, max_line_bytes=1000).poll()
    assert captions(resumed) == ["later"] and resumed[0].origin == f"{path}:3"


def test_tail_restart_resumes_after_the_last_commit(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, line(id=1, caption="a") + line(id=2, caption="b"))
    first = JsonlTail(path, cursor_store=ledger)
    assert captions(first.poll()) == ["a", "b"]
    first.commit()
    append(path, line(id=3, caption="c"))
    assert captions(first.poll()) == ["c"]  # returned but never committed: the crash case
    first.close()
    second = JsonlTail(path, cursor_store=ledger)
    assert captions(second.poll()) == ["c"]  # replayed, and the pipeline's ids make it a no-op
    second.commit()
    assert JsonlTail(path, cursor_store=ledger).poll() == []


def test_tail_truncation_starts_over(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, line(caption="a") + line(caption="b") + line(caption="c"))
    tail = JsonlTail(path, cursor_store=ledger)
    assert len(tail.poll()) == 3
    tail.commit()
    with path.open("r+b") as handle:  # copytruncate, then the writer goes on
        handle.truncate(0)
    append(path, line(caption="fresh"))
    records = tail.poll()
    assert captions(records) == ["fresh"] and records[0].origin == f"{path}:1"


def test_tail_truncated_while_stopped(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, line(caption="a" * 50) + line(caption="b" * 50))
    tail = JsonlTail(path, cursor_store=ledger)
    tail.poll()
    tail.commit()
    tail.close()
    path.write_text(line(caption="new"))  # same inode, shorter
    assert captions(JsonlTail(path, cursor_store=ledger).poll()) == ["new"]


def test_tail_file_rewritten_in_place_while_stopped(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, line(caption="old"))
    tail = JsonlTail(path, cursor_store=ledger)
    tail.poll()
    tail.commit()
    tail.close()
    with path.open("r+b") as handle:  # same inode, longer than the cursor, other first bytes
        handle.write((line(caption="new") + line(caption="two")).encode())
    assert captions(JsonlTail(path, cursor_store=ledger).poll()) == ["new", "two"]


def test_tail_rotation_finishes_the_old_file_first(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, line(caption="a"))
    tail = JsonlTail(path, cursor_store=ledger)
    assert captions(tail.poll()) == ["a"]
    append(path, line(caption="b") + '{"caption": "last, no newline"}')
    os.rename(path, tmp_path / "posts.jsonl.1")
    assert captions(tail.poll()) == ["b"]  # read from the renamed file
    append(path, line(caption="new-1") + line(caption="new-2"))
    seen = captions(tail.poll())
    assert seen == ["last, no newline", "new-1", "new-2"]
    tail.commit()
    append(path, line(caption="new-3"))
    restarted = JsonlTail(path, cursor_store=ledger).poll()
    assert captions(restarted) == ["new-3"] and restarted[0].origin == f"{path}:3"


def test_tail_batches_are_bounded(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    append(path, "".join(line(id=n, caption=f"c{n}") for n in range(2500)))
    tail = JsonlTail(path, cursor_store=ledger, max_batch=1000)
    sizes = []
    while batch := tail.poll():
        sizes.append(len(batch))
        tail.commit()
    assert sizes == [1000, 1000, 500]


def test_tail_follow_yields_until_stopped(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "posts.jsonl"
    stop = threading.Event()
    tail = JsonlTail(path, cursor_store=ledger)
    threading.Timer(0.1, append, (path, line(caption="late"))).start()
    threading.Timer(0.5, stop.set).start()
    batches = list(tail.follow(stop, interval_s=0.02))
    assert [captions(b) for b in batches] == [["late"]]


# -- HTTP feeds -----------------------------------------------------------------------------------


@pytest.fixture
def fetcher() -> Iterator[ImageFetcher]:
    with ImageFetcher(allow_private=True, timeout_s=2.0, retries=0) as local:
        yield local


def etag_route(server: LoopbackServer, path: str, body: bytes, content_type: str, etag: str = '"v1"') -> None:
    def answer(request) -> Reply:
        if request.headers.get("If-None-Match") == etag:
            return Reply(304, headers={"ETag": etag})
        return Reply(body=body, headers={"Content-Type": content_type, "ETag": etag})

    server.route(path, answer)


def test_json_array_feed_with_etag(server: LoopbackServer, fetcher: ImageFetcher, ledger: Ledger) -> None:
    body = json.dumps(
        [{"id": "p1", "text": "one", "image": "/img/1.jpg"}, {"id": "p2", "text": "two"}]
    ).encode()
    etag_route(server, "/feed.json", body, "application/json")
    feed = HttpFeed(server.url("/feed.json"), fetcher=fetcher, name="posts", cursor_store=ledger)
    items = feed.poll()
    assert captions(items) == ["one", "two"]
    assert items[0].image == server.url("/img/1.jpg") and items[0].namespace == "posts"
    feed.commit()
    assert feed.poll() == []
    assert server.requests[-1][1]["If-None-Match"] == '"v1"'
    restarted = HttpFeed(server.url("/feed.json"), fetcher=fetcher, name="posts", cursor_store=ledger)
    assert restarted.poll() == []  # the stored ETag answers 304 after a restart too
    assert server.requests[-1][1]["If-None-Match"] == '"v1"'


def test_feed_yields_only_new_entries(server: LoopbackServer, fetcher: ImageFetcher, ledger: Ledger) -> None:
    version = {"body": [{"id": 1, "text": "a"}, {"id": 2, "text": "b"}], "tag": '"1"'}

    def answer(_request) -> Reply:
        return Reply(body=json.dumps(version["body"]).encode(), headers={"ETag": version["tag"]})

    server.route("/f", answer)
    feed = HttpFeed(server.url("/f"), fetcher=fetcher, name="f", cursor_store=ledger)
    assert captions(feed.poll()) == ["a", "b"]
    assert captions(feed.poll()) == ["a", "b"]  # not committed: offered again
    feed.commit()
    version.update(body=[{"id": 3, "text": "c"}, *version["body"]], tag='"2"')
    assert captions(feed.poll()) == ["c"]


JSON_FEED = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Photos",
    "items": [
        {
            "id": "1",
            "content_text": "barn at dusk",
            "image": "https://img.example/barn.jpg",
            "date_published": "2024-02-03T04:05:06+01:00",
        },
        {"id": "2", "title": "only title", "attachments": [{"url": "a.webp", "mime_type": "image/webp"}]},
    ],
}


def test_json_feed(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route(
        "/feed", Reply(body=json.dumps(JSON_FEED).encode(), headers={"Content-Type": "application/feed+json"})
    )
    items = HttpFeed(server.url("/feed"), fetcher=fetcher, name="photos").poll()
    assert [(i.source_id, i.caption, i.image) for i in items] == [
        ("1", "barn at dusk", "https://img.example/barn.jpg"),
        ("2", "only title", server.url("/a.webp")),
    ]
    assert items[0].created_at == "2024-02-03T04:05:06+01:00"


RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
<channel><title>News</title>
<item><guid>urn:1</guid><title>Tractors</title>
  <description>&lt;p&gt;Farmers &amp;amp; tractors&lt;/p&gt;</description>
  <enclosure url="https://img.example/t.jpg" type="image/jpeg" length="1000"/>
  <pubDate>Tue, 02 Jan 2024 03:04:05 GMT</pubDate></item>
<item><link>https://news.example/2</link><title>Media only</title>
  <enclosure url="https://img.example/a.mp3" type="audio/mpeg" length="1"/>
  <media:group><media:content url="https://img.example/m.png" medium="image"/></media:group></item>
<item><guid>urn:3</guid><title>No image</title></item>
</channel></rss>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:media="http://search.yahoo.com/mrss/">
<title>A</title><id>urn:feed</id><updated>2024-01-01T00:00:00Z</updated>
<entry><id>urn:a1</id><title>Atom one</title><link href="https://atom.example/1"/>
  <link rel="enclosure" type="image/png" href="/pics/1.png"/>
  <summary type="html">&lt;b&gt;bold&lt;/b&gt; words</summary>
  <published>2024-03-01T12:00:00Z</published></entry>
<entry><id>urn:a2</id><title>Atom two</title><media:thumbnail url="https://atom.example/t.jpg"/>
  <updated>2024-03-02T12:00:00Z</updated></entry>
</feed>"""


def test_rss_with_enclosures(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/rss", Reply(body=RSS, headers={"Content-Type": "application/rss+xml"}))
    items = HttpFeed(server.url("/rss"), fetcher=fetcher, name="news").poll()
    assert [(i.source_id, i.caption, i.image) for i in items] == [
        ("urn:1", "Farmers & tractors", "https://img.example/t.jpg"),
        ("https://news.example/2", "Media only", "https://img.example/m.png"),
        ("urn:3", "No image", None),
    ]
    assert items[0].created_at == "2024-01-02T03:04:05+00:00"
    assert items[1].metadata["link"] == "https://news.example/2"


def test_atom_with_enclosure_links(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/atom", Reply(body=ATOM, headers={"Content-Type": "application/atom+xml"}))
    items = HttpFeed(server.url("/atom"), fetcher=fetcher, name="atom").poll()
    assert [(i.source_id, i.caption, i.image) for i in items] == [
        ("urn:a1", "bold words", server.url("/pics/1.png")),
        ("urn:a2", "Atom two", "https://atom.example/t.jpg"),
    ]
    assert items[1].created_at == "2024-03-02T12:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<html><body>maintenance</body></html>", "text/html", "bad-feed"),
        (b"{broken", "application/json", "bad-feed"),
        (b'{"title": "no items"}', "application/json", "bad-feed"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;'
            b'&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><rss><channel><item><title>&c;&c;&c;'
            b"</title></item></channel></rss>",
            "application/xml",
            None,
        ),
    ],
)
def test_unusable_documents(
    server: LoopbackServer, fetcher: ImageFetcher, body, content_type, reason
) -> None:
    server.route("/x", Reply(body=body, headers={"Content-Type": content_type}))
    records = HttpFeed(server.url("/x"), fetcher=fetcher, name="x").poll()
    if reason is None:  # small internal entities are legal XML and stay small; no bomb gets through
        assert reasons(records) == ["item"] and len(records[0].caption) == 3000
    else:
        assert reasons(records) == [reason] and records[0].origin == server.url("/x")


def test_feed_fetch_failures_name_the_feed(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    records = HttpFeed(server.url("/gone"), fetcher=fetcher, name="gone").poll()
    assert reasons(records) == ["http-404"]


def test_loopback_feed_refused_by_default(server: LoopbackServer) -> None:
    server.route("/feed.json", Reply(body=b"[]"))
    with ImageFetcher() as default:
        records = HttpFeed(server.url("/feed.json"), fetcher=default, name="local").poll()
    assert reasons(records) == ["private-address"]
    assert server.connections == 0


def test_http_feed_follow_polls_on_the_interval(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/f", Reply(body=b'[{"id": 1, "text": "x"}]'))
    feed = HttpFeed(server.url("/f"), fetcher=fetcher, name="f", interval_s=0.05)
    stop = threading.Event()
    threading.Timer(0.4, stop.set).start()
    batches = []
    for batch in feed.follow(stop):
        batches.append(batch)
        feed.commit()
    assert [captions(b) for b in batches] == [["x"]]
    assert server.hits["/f"] >= 3
