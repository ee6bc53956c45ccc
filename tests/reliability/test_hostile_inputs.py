"""Inputs a hostile user found that stopped the service: a file name that is not UTF-8, a bug met on
one item. Each must cost that one input (a reasoned failure in the ledger) and nothing else."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.daemon import FeedSpec, IngestDaemon
from indexer.index import Index
from indexer.ingest import ingest_paths
from indexer.items import id_from_content, id_from_source, sha256_bytes
from indexer.pipeline import Pipeline
from indexer.sources import manifest
from indexer.sources.folder import scan_folder
from tests.helpers import draw_image, run_cli, tiny_env, use_tiny_clip
from tests.loopback import LoopbackServer, Reply, serving
from tests.reliability.conftest import Serve, wait_for

BAD = b"bad\xff\xfename"  # Latin-1 bytes: not UTF-8


def _bad_path(folder: Path, suffix: bytes) -> bytes:
    return os.fsencode(folder) + b"/" + BAD + suffix


def _write_bad_names(folder: Path) -> list[str]:
    """An image, a caption-only note and a folder (with an image inside) whose names are not UTF-8;
    returns how each is shown in the ledger."""
    folder.mkdir(parents=True, exist_ok=True)
    draw_image(Path(os.fsdecode(_bad_path(folder, b".png"))), seed=90, fmt="PNG")
    Path(os.fsdecode(_bad_path(folder, b".txt"))).write_text("a note under a Latin-1 name")
    sub = Path(os.fsdecode(_bad_path(folder, b"-dir")))
    sub.mkdir()
    draw_image(sub / "inside.jpg", seed=91)
    shown = str(folder.resolve()) + "/bad\\xff\\xfename"
    return [shown + ".png", shown + ".txt", shown + "-dir"]


def _failures(data_dir: Path) -> dict[str, str]:
    with sqlite3.connect(data_dir / "ledger.sqlite") as db:
        return dict(db.execute("SELECT origin, reason FROM failures"))


def _image_id(path: Path) -> str:
    return id_from_content(sha256_bytes(path.read_bytes()), None, with_caption=False)


def test_a_scan_reports_names_that_are_not_utf8_and_reads_the_rest(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    shown = _write_bad_names(folder)
    draw_image(folder / "good.jpg", seed=1)
    (folder / "good.txt").write_text("a good caption")
    found = list(scan_folder(folder, max_caption_bytes=1000))
    errors = {e.origin: e.reason for e in found if not hasattr(e, "item")}
    assert errors == dict.fromkeys(shown, "bad-file-name")
    entries = [e for e in found if hasattr(e, "item")]
    assert [e.item.caption for e in entries] == ["a good caption"]
    for origin in errors:
        origin.encode("utf-8")  # storable as it is


def test_ingest_stores_every_other_file_beside_a_name_that_is_not_utf8(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_tiny_clip(monkeypatch)
    folder = tmp_path / "in"
    shown = _write_bad_names(folder)
    good = draw_image(folder / "good.jpg", seed=1)
    with Index(load_settings()) as index:
        summary = ingest_paths(index, [folder])
        assert (summary.ingested, summary.failed) == (1, 3)
        assert sorted(summary.failures) == sorted((s, "bad-file-name") for s in shown)
        assert index.items.count() == 1
        assert [p.id for b in index.items.scroll() for p in b] == [_image_id(good)]
        assert index.ledger.failure_counts() == {"bad-file-name": 3}
        again = ingest_paths(index, [folder])  # a rescan reports them again, stores nothing twice
        assert (again.ingested, again.skipped, again.failed) == (0, 1, 3)
        with pytest.raises(ValueError, match=r"not valid UTF-8"):  # named on the command line
            ingest_paths(index, [Path(os.fsdecode(_bad_path(tmp_path, b"-folder")))])


@pytest.mark.slow
def test_serve_keeps_watching_after_a_name_that_is_not_utf8(tmp_path: Path, serve: Serve) -> None:
    inbox = tmp_path / "inbox"
    shown = _write_bad_names(inbox)
    env = tiny_env(serve.data_dir, TOPICS_WATCH__SETTLE_S="0.2", TOPICS_WATCH__SIDECAR_GRACE_S="0.2")
    pid = serve.start(["--watch", str(inbox)], env)
    first = draw_image(inbox / "first.jpg", seed=2)
    wait_for(lambda: set(shown) <= _failures(serve.data_dir).keys(), 60, "the bad names' failures")
    # one more bad name while it runs, then a picture copied in after it
    draw_image(Path(os.fsdecode(_bad_path(inbox, b"2.jpg"))), seed=3)
    later = draw_image(inbox / "later.jpg", seed=4)
    wait_for(lambda: serve.forkserver.wait(pid, 0) is not None or _stored(serve, {first, later}), 60, "later")
    assert serve.forkserver.wait(pid, 0) is None, serve.log.read_text()[-3000:]
    assert serve.stop(pid) == 0
    status = run_cli(["status", "--json"], env)
    assert status.returncode == 0, status.stderr
    failures = json.loads(status.stdout)["failures"]
    assert failures.get("bad-file-name") == 4, failures
    pid = serve.start(["--watch", str(inbox)], env)  # a restart with the files still there runs too
    assert serve.stop(pid) == 0


def _stored(serve: Serve, paths: set[Path]) -> bool:
    from indexer.store.shared import RemoteBackend

    remote = RemoteBackend(serve.data_dir)
    try:
        ids = [_image_id(p) for p in paths]
        items = remote.collection("items")
        return items.exists() and len(items.retrieve(ids)) == len(ids)
    finally:
        remote.close()


def test_a_bug_met_on_one_item_fails_that_item_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_tiny_clip(monkeypatch)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": f"r{i}", "text": f"row {i}"}) + "\n" for i in range(5))
        + json.dumps({"id": "poison", "text": "the embedder trips on this one"})
        + "\n"
        + json.dumps({"id": "trap", "text": "the reader trips on this one"})
        + "\n"
    )
    real_row = manifest._row_item_of

    def row_item(row, roles, context, origin):  # type: ignore[no-untyped-def]
        if row.get("id") == "trap":
            raise KeyError("a reader bug")
        return real_row(row, roles, context, origin)

    monkeypatch.setattr(manifest, "_row_item_of", row_item)
    with Index(load_settings()) as index:
        real_embed = index.clip.embed_texts

        def embed_texts(texts):  # type: ignore[no-untyped-def]
            if any("trips" in t for t in texts):
                raise ZeroDivisionError("an embedder bug")
            return real_embed(texts)

        monkeypatch.setattr(index.clip, "embed_texts", embed_texts)
        summary = ingest_paths(index, [rows])
        assert summary.ingested == 5
        assert sorted(summary.failures) == [(f"{rows}:6", "internal"), (f"{rows}:7", "internal")]
        stored = {p.id for b in index.items.scroll() for p in b}
        assert stored == {id_from_source("manifest", f"r{i}") for i in range(5)}
        details = {f.origin: f.detail for f in index.ledger.failures()}
        assert "ZeroDivisionError: an embedder bug" in details[f"{rows}:6"]
        assert "KeyError" in details[f"{rows}:7"]


def test_the_daemon_goes_on_after_a_bug_in_one_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    use_tiny_clip(monkeypatch)
    feed = tmp_path / "posts.jsonl"
    feed.write_text(json.dumps({"id": "r0", "text": "the first batch"}) + "\n")
    real = Pipeline.ingest_items
    calls = {"n": 0}

    def ingest_items(self, items, summary=None):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise AttributeError("a bug no per-item guard catches")
        return real(self, items, summary)

    monkeypatch.setattr(Pipeline, "ingest_items", ingest_items)
    with Index(load_settings()) as index:
        pipeline = Pipeline(index.settings, index.items, index.ledger, clip=index.clip)
        daemon = IngestDaemon(index.settings, pipeline, [], [FeedSpec.parse(str(feed))])
        stop = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                daemon.run(stop)
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: daemon.stats.failed == 1, 30, "the failed batch")
            with feed.open("a") as fh:
                fh.write(json.dumps({"id": "r1", "text": "a later batch"}) + "\n")
            wait_for(lambda: index.items.count() == 1, 30, "the later batch")
        finally:
            stop.set()
            thread.join(timeout=30)
            pipeline.close()
        assert not errors
        assert index.ledger.failure_counts() == {"internal": 1}
        assert [f.origin for f in index.ledger.failures()] == [f"jsonl:{feed.resolve()}"]
        assert [p.id for b in index.items.scroll() for p in b] == [id_from_source("posts", "r1")]


def _png_bytes(seed: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 12), (seed * 40 % 256, 90, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@contextlib.contextmanager
def _loopback_pictures(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LoopbackServer, Index]]:
    """A loopback server the fetcher may reach (no retries), and the index of a tiny model."""
    use_tiny_clip(monkeypatch)
    monkeypatch.setenv("TOPICS_FETCH__ALLOW_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("TOPICS_FETCH__RETRIES", "0")
    with serving() as server, Index(load_settings()) as index:
        yield server, index


def test_a_picture_that_cannot_be_fetched_keeps_its_caption_and_comes_on_the_next_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rows = tmp_path / "posts.jsonl"
    with _loopback_pictures(monkeypatch) as (server, index):
        png = {"Content-Type": "image/png"}
        server.route("/a.png", Reply(404))
        server.route("/anon.png", Reply(503))
        rows.write_text(
            json.dumps({"id": "a", "body": "a post whose picture is gone", "image_url": server.url("/a.png")})
            + "\n"
            + json.dumps({"id": "b", "body": "a picture refused", "image_url": "http://10.1.2.3/x.png"})
            + "\n"
            + json.dumps({"body": "an anonymous post", "image_url": server.url("/anon.png")})
            + "\n"
        )
        first = ingest_paths(index, [rows])
        assert (first.ingested, first.failed) == (3, 0)
        assert sorted(first.notices) == [
            (f"{rows}:1", "http-404"),
            (f"{rows}:2", "private-address"),
            (f"{rows}:3", "http-status"),
        ]
        stored = {p.payload["caption"]: p for b in index.items.scroll(vectors=True) for p in b}
        assert sorted(stored) == ["a picture refused", "a post whose picture is gone", "an anonymous post"]
        assert all(set(p.vectors) == {"text"} for p in stored.values())
        assert stored["a post whose picture is gone"].payload["picture_error"] == "http-404"
        assert stored["a post whose picture is gone"].payload["url"] == server.url("/a.png")
        assert index.ledger.failure_counts() == {"http-404": 1, "private-address": 1, "http-status": 1}

        server.route("/a.png", Reply(body=_png_bytes(1), headers=png))  # the pictures come back
        server.route("/anon.png", Reply(body=_png_bytes(2), headers=png))
        second = ingest_paths(index, [rows])
        assert sorted(second.notices) == [(f"{rows}:2", "private-address")]
        assert index.items.count() == 3  # the anonymous row's stand-in gave way to the row itself
        stored = {p.payload["caption"]: p for b in index.items.scroll(vectors=True) for p in b}
        assert set(stored["a post whose picture is gone"].vectors) == {"image", "text"}
        assert "picture_error" not in stored["a post whose picture is gone"].payload
        assert set(stored["an anonymous post"].vectors) == {"image", "text"}
        assert index.ledger.failure_counts() == {"private-address": 1}
        third = ingest_paths(index, [rows])  # nothing changed: only the refused picture is tried again
        assert (third.ingested, third.skipped) == (1, 2)


def test_an_overlong_caption_is_stored_cut_and_counted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    use_tiny_clip(monkeypatch)
    monkeypatch.setenv("TOPICS_INGEST__MAX_CAPTION_BYTES", "1000")
    rows = tmp_path / "posts.jsonl"
    rows.write_text(json.dumps({"id": "long", "body": "word " * 1_000_000}) + "\n")  # 5 MB
    with Index(load_settings()) as index:
        summary = ingest_paths(index, [rows])
        assert (summary.ingested, summary.failed, summary.notices) == (
            1,
            0,
            [(f"{rows}:1", "caption-truncated")],
        )
        (point,) = [p for b in index.items.scroll() for p in b]
        assert len(point.payload["caption"].encode()) <= 1000
        assert index.ledger.failure_counts() == {"caption-truncated": 1}
        assert "1,000 bytes (ingest.max_caption_bytes)" in index.ledger.failures()[0].detail


def test_export_refuses_a_bad_date_before_writing_and_exports_items_before_any_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import io

    from topics.query.export import export

    use_tiny_clip(monkeypatch)
    rows = tmp_path / "posts.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "body": f"post {i}"}) + "\n" for i in range(3)))
    with Index(load_settings()) as index:
        ingest_paths(index, [rows])
        out = io.StringIO()
        with pytest.raises(ValueError, match=r"^--since 'notadate': not a date"):
            export(index, None, since="notadate", stdout=out)
        assert out.getvalue() == ""  # not even the header
        with pytest.raises(LookupError, match="no topics yet"):
            export(index, None, topics_table=True, stdout=out)
        assert out.getvalue() == ""
        summary = export(index, None, fmt="jsonl", stdout=out)  # no recluster yet: items all the same
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        assert summary.rows == 3 and len(lines) == 3
        assert {(r["source_id"], r["topic"], r["assigned"]) for r in lines} == {
            (f"r{i}", None, "none") for i in range(3)
        }


def test_pictures_owed_by_rows_read_once_are_fetched_by_the_retry_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from indexer.ingest import open_pipeline
    from indexer.sources.feed import RecordContext, read_stream

    with _loopback_pictures(monkeypatch) as (server, index):
        server.route("/a.png", Reply(404))
        server.route("/anon.png", Reply(404))
        lines = [
            {"id": "a", "text": "a feed line read once", "image": server.url("/a.png")},
            {"text": "an anonymous feed line", "image": server.url("/anon.png")},
        ]
        stream = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
        context = RecordContext(namespace="stdin", max_caption_bytes=10_000, roots=())
        pipeline = open_pipeline(index)
        try:
            first = pipeline.ingest_items(list(read_stream(stream, "stdin", context=context)))
            assert (first.ingested, len(first.notices)) == (2, 2)
            nothing_yet = pipeline.retry_pictures()  # still 404: both stay owed, nothing re-embedded
            assert (nothing_yet.ingested, nothing_yet.skipped) == (0, 2)
            png = {"Content-Type": "image/png"}
            server.route("/a.png", Reply(body=_png_bytes(3), headers=png))
            server.route("/anon.png", Reply(body=_png_bytes(4), headers=png))
            retried = pipeline.retry_pictures()
            assert (retried.ingested, retried.notices) == (2, [])
            assert pipeline.retry_pictures().ingested == 0  # nothing owed any more
        finally:
            pipeline.close()
        stored = {p.payload["caption"]: p for b in index.items.scroll(vectors=True) for p in b}
        assert sorted(stored) == ["a feed line read once", "an anonymous feed line"]
        assert all(set(p.vectors) == {"image", "text"} for p in stored.values())
        assert all("picture_retry" not in p.payload for p in stored.values())
        assert stored["a feed line read once"].id == id_from_source("stdin", "a")
        assert index.ledger.failure_counts() == {}
