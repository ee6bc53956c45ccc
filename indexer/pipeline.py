"""Ingest: dedupe ▸ decode (thread pool) ▸ embed (batched) ▸ upsert, exactly once per input.

Cheap checks come before expensive ones: for folder files the ledger's (path, size, mtime, sidecars)
(`indexer.folder_sync`), then an id lookup in the store, then decoding and embedding. Decoding runs in
a thread pool ahead of the model, so the model never waits for JPEGs (Pillow and torch both release
the GIL). Two versions of one id in a run (a feed edit, a row sent twice): the last one wins.

Crash safety rests on two rules: point ids are deterministic (re-upserting is a no-op), and the ledger
records a file only after the store has flushed its point. A kill -9 anywhere therefore leaves either
a file the next run embeds again (same id, same point) or one it skips; never a lost or doubled item.
Flushing costs a fraction of a second, so the store is flushed on a timer (`ingest.flush_interval_s`)
and at the end of every run, and ledger records wait in memory for the flush that covers them.

No single input stops a run: an unexpected exception while one item is read, decoded, embedded or
written becomes a failure of that item (reason ``internal``, traceback in the log), and a batch that
fails is stored again one item at a time so only the culprit fails. What is not an item's fault (the
store or the ledger refusing, memory running out) still propagates: the daemon backs off and retries.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.embed.base import Embedder, ImageEmbedder
from indexer.fetch import FetchError, ImageFetcher
from indexer.folder_sync import FolderFile, FolderSync
from indexer.images import BadImage, decode_image
from indexer.items import ITEM_INDEXES, Item, ItemId, sha256_bytes, sha256_text, uuid5_str
from indexer.ledger import Ledger
from indexer.sources import SourceError, internal_error
from indexer.sources.folder import FolderEntry
from indexer.store.base import CollectionSchema, Filter, IdentityMismatch, Point, StoreError, VectorStore

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    """What one run did; `failures` lists (origin, reason) for each item that could not be stored."""

    ingested: int = 0
    updated: int = 0
    skipped: int = 0
    deleted: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)  # stored, with something missing
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def merge(self, other: IngestSummary) -> None:
        for name in ("ingested", "updated", "skipped", "deleted", "failed", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.notices.extend(other.notices)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "updated": self.updated,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "failures": [{"origin": o, "reason": r} for o, r in self.failures],
            "notices": [{"origin": o, "reason": r} for o, r in self.notices],
        }


@dataclass
class InFlight:
    """One item in flight through the pipeline: from its source to a stored point."""

    item: Item
    file: FolderFile | None = None  # the folder file it comes from
    item_id: ItemId | None = None
    pixels: np.ndarray | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    checked: bool = False  # the store was already asked about this id
    copies: list[InFlight] = field(default_factory=list)  # folder files with the same content
    notice: SourceError | None = None  # stored, but with a part missing: recorded once it is stored
    replaces: ItemId | None = None  # a caption-only stand-in stored when its picture could not be fetched
    _signature: str | None = None

    @property
    def signature(self) -> str:
        """`content_signature` of its item, computed once (three steps ask for it)."""
        if self._signature is None:
            self._signature = content_signature(self.item)
        return self._signature


def item_schema(clip: Embedder | None, caption: Embedder | None, views: Sequence[str]) -> CollectionSchema:
    """The `items` collection: one named vector per view, and the models that made them."""
    vectors: dict[str, int] = {}
    identity: dict[str, Any] = {}
    if clip is not None:
        vectors.update({v: clip.dim for v in ("image", "text") if v in views})
        identity["clip"] = clip.identity()
    if caption is not None and "caption" in views:
        vectors["caption"] = caption.dim
        identity["caption"] = caption.identity()
    return CollectionSchema(vectors=vectors, identity=identity, indexes=ITEM_INDEXES)


def content_signature(item: Item) -> str:
    """What, beyond the id, makes a stored item current: a changed signature means an update.

    An item named by its source (manifest/feed id) can change image and caption under the same id; an
    item named by its content changes id with its image, so only its caption (a sidecar) counts.
    """
    image = (item.image or "") if item.source_id else ""
    vec = ",".join(sorted(item.vectors))
    return sha256_text(f"{image}\x00{item.caption or ''}\x00{vec}")[:20]


def stand_in_id(item: Item) -> ItemId:
    """The id of an anonymous row's caption-only stand-in while its picture cannot be fetched: the
    row's own id needs the picture's bytes, so the stand-in is named by the URL and caption instead,
    and removed once the picture comes."""
    return uuid5_str(f"stand-in:{item.image}|txt:{sha256_text(item.caption or '')}")


class Pipeline:
    """Turns items from any source into stored points. One instance per process; not thread-safe."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        ledger: Ledger,
        clip: ImageEmbedder | None,
        caption: Embedder | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.clip = clip
        self.caption = caption
        self.views = tuple(settings.ingest.views)
        self._progress = progress or (lambda n: None)
        workers = settings.ingest.decode_workers or min(8, os.cpu_count() or 2)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self._window = max(2 * settings.ingest.batch_size, 4 * workers)
        self.folders = FolderSync(store, ledger, max_caption_bytes=settings.ingest.max_caption_bytes)
        self._in_flight: dict[ItemId, str] = {}  # id -> signature of its latest version not yet stored
        self._last_flush = time.monotonic()
        self._fetcher = ImageFetcher.from_settings(settings.fetch)
        self._schema: CollectionSchema | None = item_schema(clip, caption, self.views)
        try:
            self.ensure_schema()
        except IdentityMismatch:
            raise
        except StoreError as error:  # a server not up yet: each entry point (and serve) tries again
            log.debug("the store does not answer yet: %s", error)

    def ensure_schema(self) -> None:
        """Create the `items` collection, or check that its model is ours (once; every entry point calls
        it first, so a store that did not answer when the pipeline was made fails the run that needs it).
        """
        if self._schema is not None:
            self.store.ensure(self._schema)
            self._schema = None

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._fetcher.close()

    # -- entry points -------------------------------------------------------------------------

    def ingest_folder(self, root: Path, summary: IngestSummary | None = None) -> IngestSummary:
        """Scan a folder recursively; new and changed files are stored, deleted ones removed.

        Counts go into `summary` as they happen (each entry point takes one), so a caller that retries
        after a store error knows what the failed attempt stored.
        """
        started = time.perf_counter()
        summary = self._begin(summary)
        scan_id = f"{time.time_ns()}"
        root = root.resolve()
        seen: list[str] = []
        self._run(self._file_work(self.folders.scan(root), root, summary, seen, scan_id), summary)
        self.flush()  # this scan's records must be in the ledger before the sweep reads it
        summary.deleted += self.folders.finish_scan(root, seen, scan_id)
        summary.seconds = time.perf_counter() - started
        return summary

    def ingest_folder_changes(
        self,
        root: Path,
        changed: Sequence[Path],
        deleted: Sequence[Path],
        summary: IngestSummary | None = None,
    ) -> IngestSummary:
        """What a watcher saw: rescan the folders it named (cheap checks skip what did not change) and
        remove the items of files that are gone. A full `ingest_folder` catches anything missed."""
        started = time.perf_counter()
        summary = self._begin(summary)
        root = Path(os.path.abspath(root))
        scan_id = f"{time.time_ns()}"
        entries = self.folders.rescan(root, changed, deleted)
        self._run(self._file_work(entries, root, summary, [], scan_id), summary)
        self.flush()
        summary.deleted += self.folders.remove_deleted(deleted)
        summary.seconds = time.perf_counter() - started
        return summary

    def ingest_items(
        self, items: Iterable[Item | SourceError], summary: IngestSummary | None = None
    ) -> IngestSummary:
        """Store items from a manifest or feed; rows already stored unchanged are skipped."""
        started = time.perf_counter()
        summary = self._begin(summary)
        self._in_flight = {}  # what an earlier run left here was stored, or failed with it
        self._run(self._item_work(items, summary), summary)
        self.flush()
        summary.seconds = time.perf_counter() - started
        return summary

    def retry_pictures(self, summary: IngestSummary | None = None, *, limit: int = 256) -> IngestSummary:
        """Fetch again the pictures of up to `limit` rows stored caption-only because their picture
        could not be fetched (a feed line is read once: this is its later pass). A picture that comes
        replaces the caption-only item; one that fails again stays owed and is skipped, not embedded
        again (its stored signature is unchanged)."""
        started = time.perf_counter()
        summary = self._begin(summary)
        owed = next(iter(self.store.scroll(Filter(must={"picture_retry": 1}), batch=limit)), [])
        self._in_flight = {}
        self._run(iter([_owed_work(p.id, p.payload) for p in owed]), summary)
        self.flush()
        summary.seconds = time.perf_counter() - started
        return summary

    def _begin(self, summary: IngestSummary | None) -> IngestSummary:
        """Where every entry point starts: the collection exists, and counts go into `summary`."""
        self.ensure_schema()
        return IngestSummary() if summary is None else summary

    # -- cheap checks -------------------------------------------------------------------------

    def _file_work(
        self,
        entries: Iterable[FolderEntry | SourceError],
        root: Path,
        summary: IngestSummary,
        seen: list[str],
        scan_id: str,
    ) -> Iterator[InFlight]:
        for found in self.folders.changed(entries, root, scan_id, seen, lambda: self._skip(summary, 1)):
            if isinstance(found, SourceError):
                self._fail(summary, found.origin, found.reason, found.detail)
            else:
                yield InFlight(found.entry.item, file=found)

    def _item_work(self, items: Iterable[Item | SourceError], summary: IngestSummary) -> Iterator[InFlight]:
        for chunk in _chunks(items, 256):
            works = []
            for item in chunk:
                if isinstance(item, SourceError):
                    self._fail(summary, item.origin, item.reason, item.detail)
                else:
                    known = item.known_id  # a uuid5: computed once per row
                    works.append(InFlight(item, item_id=known, checked=known is not None))
            yield from self._drop_stored(works, summary)

    def _drop_stored(self, works: list[InFlight], summary: IngestSummary) -> Iterator[InFlight]:
        """Skip rows whose id is stored with the same content signature (a re-sent row).

        Only the last version of an id counts; one sent on but not stored yet stands for the store.
        """
        works = _last_of_each_id(works, summary)
        ask = [w.item_id for w in works if w.item_id and w.item_id not in self._in_flight]
        stored = {p.id: p.payload.get("sig") for p in self.store.retrieve(ask)} if ask else {}
        for work in works:
            signature = work.signature
            if work.item_id is not None:
                if self._in_flight.get(work.item_id, stored.get(work.item_id)) == signature:
                    self._skip(summary, 1)
                    continue
                self._in_flight[work.item_id] = signature
            yield work

    def _landed(self, works: Iterable[InFlight]) -> None:
        """These versions are stored (or failed): the store speaks for their ids again."""
        for work in works:
            if work.item_id is not None and self._in_flight.get(work.item_id) == work.signature:
                del self._in_flight[work.item_id]

    # -- decode, embed, upsert ----------------------------------------------------------------

    def _run(self, works: Iterator[InFlight], summary: IngestSummary) -> None:
        pending: list[InFlight] = []
        for work, error in self._decoded(works):
            if isinstance(error, PictureNotFetched) and work.item.caption:
                self._without_picture(work, error)
            elif error is not None:
                self._fail_work(summary, work, error)
                continue
            pending.append(work)
            if len(pending) >= self.settings.ingest.batch_size:
                self._store_batch(pending, summary)
                pending = []
        if pending:
            self._store_batch(pending, summary)

    def _decoded(self, works: Iterator[InFlight]) -> Iterator[tuple[InFlight, BadImage | None]]:
        """Decode in the pool, at most `_window` ahead of the consumer, in input order."""
        window: list[tuple[InFlight, Future]] = []
        for work in works:
            window.append(
                (work, self._pool.submit(self._decode, work) if work.item.image else _done(self, work))
            )
            if len(window) >= self._window:
                yield _result(*window.pop(0))
        while window:
            yield _result(*window.pop(0))

    def _decode(self, work: InFlight) -> None:
        item = work.item
        payload = work.payload
        image_sha = None
        if item.image and "image" in self.views and "image" not in item.vectors and self.clip is not None:
            size = self.clip.image_size
            decoded = decode_image(
                self._image_source(item.image),
                max_pixels=self.settings.ingest.max_image_pixels,
                draft_size=size,
            )
            work.pixels = self.clip.preprocess(decoded.image)
            image_sha = decoded.sha256
            payload.update(width=decoded.width, height=decoded.height, sha256=image_sha)
        elif item.image and item.source_id is None:
            image_sha = _sha256_of(self._image_source(item.image))
            payload["sha256"] = image_sha
        if work.item_id is None:
            work.item_id = item.item_id(image_sha)
        if item.image and _is_url(item.image) and item.source_id is None:
            work.replaces = stand_in_id(item)  # stored while the picture could not be fetched, if ever

    def _image_source(self, image: str) -> Path | bytes:
        """A local path as is; a URL fetched through the guarded fetcher (its errors become BadImage)."""
        if not _is_url(image):
            return Path(image)
        try:
            return self._fetcher.fetch(image)
        except FetchError as error:
            raise PictureNotFetched(error.reason, error.detail) from None

    def _without_picture(self, work: InFlight, error: BadImage) -> None:
        """A row whose picture could not be fetched keeps its caption, stored as a caption-only item
        with the reason recorded. Its signature leaves the picture out, so the next pass over the row
        (a manifest ingested again, a feed polled again) tries the picture again."""
        item = work.item
        work.pixels = None
        work.payload.update(picture_error=error.reason, picture_retry=1)
        work._signature = content_signature(replace(item, image=None))
        if work.item_id is None:
            work.item_id = stand_in_id(item)
        detail = f"{error.detail}; the caption is stored alone and the picture tried again on the next pass"
        work.notice = SourceError(item.origin, error.reason, detail)

    def _store_batch(self, works: list[InFlight], summary: IngestSummary) -> None:
        works = self._skip_known_content(_last_of_each_id(works, summary), summary)
        if works:
            try:
                self._upsert(works)
            except Exception as error:
                if is_infrastructure(error):
                    raise
                log.warning("a batch of %d failed (%s): storing it one item at a time", len(works), error)
                works = self._one_by_one(works, summary)
        self._count_stored(works, summary)
        if time.monotonic() - self._last_flush >= self.settings.ingest.flush_interval_s:
            self.flush()

    def _upsert(self, works: list[InFlight]) -> None:
        vectors = self._embed(works)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        points = [
            self._point(w, {k: v[i] for k, v in vectors.items() if v[i] is not None}, now)
            for i, w in enumerate(works)
        ]
        self.store.upsert(points)
        stand_ins = [w.replaces for w in works if w.replaces is not None]  # set only once a picture came
        if stand_ins:
            self.store.delete(stand_ins)  # the picture came: its caption-only stand-in goes (if any)

    def _one_by_one(self, works: list[InFlight], summary: IngestSummary) -> list[InFlight]:
        """Store each item of a failed batch alone; those that fail again are `internal` failures."""
        stored = []
        for work in works:
            try:
                self._upsert([work])
            except Exception as error:
                if is_infrastructure(error):
                    raise
                self._fail_work(summary, work, internal_error(work.item.origin, error))
            else:
                stored.append(work)
        return stored

    def flush(self) -> None:
        """Make stored points durable, then record their files in the ledger."""
        self.store.flush()
        self._last_flush = time.monotonic()
        self.folders.flushed()

    def _skip_known_content(self, works: list[InFlight], summary: IngestSummary) -> list[InFlight]:
        """Items identified by content that is already stored (a rename, a copy, a re-run after a
        crash) need no embedding; a folder file only gets its ledger record (and its old item goes)."""
        ids = [w.item_id for w in works if not w.checked]
        stored = {p.id: p.payload.get("sig") for p in self.store.retrieve(ids)} if ids else {}
        keep, known = [], []
        for work in works:
            if not work.checked and stored.get(work.item_id, "") == work.signature:
                known.append(work)
            else:
                keep.append(work)
        if known:
            self.folders.known(known)
            self._skip(summary, len(known))
        return keep

    def _embed(self, works: list[InFlight]) -> dict[str, list[np.ndarray | None]]:
        n = len(works)
        out: dict[str, list[np.ndarray | None]] = {v: [None] * n for v in ("image", "text", "caption")}
        for view in out:
            for i, w in enumerate(works):
                if view in w.item.vectors:
                    out[view][i] = np.asarray(w.item.vectors[view], dtype=np.float32)
        with_pixels = [i for i, w in enumerate(works) if w.pixels is not None]
        if with_pixels:
            emb = self.clip.embed_pixels(np.stack([works[i].pixels for i in with_pixels]))
            for row, i in enumerate(with_pixels):
                out["image"][i] = emb[row]
        self._embed_texts(works, out, "text", self.clip)
        self._embed_texts(works, out, "caption", self.caption)
        return out

    def _embed_texts(
        self, works: list[InFlight], out: dict[str, list], view: str, embedder: Embedder | None
    ) -> None:
        if embedder is None or view not in self.views:
            return
        todo = [i for i, w in enumerate(works) if w.item.caption and out[view][i] is None]
        if todo:
            emb = embedder.embed_texts([works[i].item.caption for i in todo])
            for row, i in enumerate(todo):
                out[view][i] = emb[row]

    def _point(self, work: InFlight, vectors: dict[str, np.ndarray], ingested_at: str) -> Point:
        item = work.item
        payload: dict[str, Any] = {
            "source": item.source,
            "origin": item.origin,
            "caption": item.caption,
            "created_at": item.created_at,
            "ingested_at": ingested_at,
            "model": self.clip.model_id if self.clip else None,
            "sig": work.signature,
            "pending": 1,
            **work.payload,
        }
        if item.image:
            key = "url" if _is_url(item.image) else "path"
            payload[key] = item.image
        if item.source_id:
            payload["source_id"] = item.source_id
        if item.metadata:
            payload["meta"] = dict(item.metadata)
        return Point(id=work.item_id, vectors=vectors, payload=payload)

    def _count_stored(self, works: list[InFlight], summary: IngestSummary) -> None:
        """Count what was stored; the folder files' bookkeeping follows it."""
        self._landed(works)
        self.folders.stored(works)
        for work in works:
            if work.file is not None and work.file.previous_id is not None:
                summary.updated += 1
            else:
                summary.ingested += 1
        self.ledger.clear_failures(work.item.origin for work in works)
        for work in works:
            notice = work.notice or self._truncation(work.item)
            if notice is not None:  # recorded after the clear: stored, with this part missing
                log.warning("%s: %s (%s)", notice.origin, notice.reason, notice.detail)
                self.ledger.record_failure(notice.origin, notice.reason, notice.detail)
                summary.notices.append((notice.origin, notice.reason))
        self._progress(len(works))

    def _truncation(self, item: Item) -> SourceError | None:
        if not item.metadata.get("caption_truncated"):
            return None
        limit = self.settings.ingest.max_caption_bytes
        detail = f"caption cut to its first {limit:,} bytes (ingest.max_caption_bytes)"
        return SourceError(item.origin, "caption-truncated", detail)

    def _skip(self, summary: IngestSummary, n: int) -> None:
        summary.skipped += n
        self._progress(n)

    def _fail_work(self, summary: IngestSummary, work: InFlight, error: BadImage | SourceError) -> None:
        """An item in flight that cannot be stored: recorded; its file's previous version is kept."""
        self._fail(summary, work.item.origin, error.reason, error.detail)
        self._landed([work])
        if work.file is not None:
            self.folders.failed(work.file)

    def _fail(self, summary: IngestSummary, origin: str, reason: str, detail: str) -> None:
        log.warning("%s: %s (%s)", origin, reason, detail)
        self.ledger.record_failure(origin, reason, detail)
        summary.failed += 1
        summary.failures.append((origin, reason))
        self._progress(1)


def _owed_work(item_id: ItemId, payload: dict[str, Any]) -> InFlight:
    """A stored caption-only row whose picture is owed, rebuilt as the row it came from."""
    item = Item(
        source=payload.get("source") or "feed",
        origin=payload.get("origin") or item_id,
        image=payload.get("url"),
        caption=payload.get("caption"),
        source_id=payload.get("source_id"),
        created_at=payload.get("created_at"),
        metadata=payload.get("meta") or {},
    )
    # An anonymous row's id needs the picture: its point is a stand-in. Not `checked`: a picture that
    # fails again leaves the stored signature equal, so the row is skipped, not embedded again.
    return InFlight(item, item_id=item_id if item.source_id is not None else None)


def _last_of_each_id(works: list[InFlight], summary: IngestSummary) -> list[InFlight]:
    """Two inputs with one id (identical files, a row sent twice, a feed edit) are one item: the last
    version is stored, in the first one's place; an earlier folder copy is only recorded in the ledger,
    so deleting one copy keeps the item. Works whose id needs decoding pass as they are."""
    lasts: dict[ItemId | int, InFlight] = {}
    for position, work in enumerate(works):
        key = work.item_id if work.item_id is not None else position
        earlier = lasts.get(key)
        if earlier is not None:
            summary.skipped += 1
            work.copies += [earlier, *earlier.copies] if earlier.file is not None else earlier.copies
        lasts[key] = work
    return list(lasts.values())


def _done(pipeline: Pipeline, work: InFlight) -> Future:
    """`_decode` run here: without an image there is nothing to read, and a thread hop per row (queue,
    wake-up, GIL hand-over) cost more than the row itself (precomputed vectors: 1M rows)."""
    future: Future = Future()
    try:
        pipeline._decode(work)
    except Exception as error:  # reported by `_result`, as from the pool
        future.set_exception(error)
    else:
        future.set_result(None)
    return future


def _result(work: InFlight, future: Future) -> tuple[InFlight, BadImage | None]:
    try:
        future.result()
    except BadImage as error:
        return work, error
    except OSError as error:
        return work, BadImage("unreadable", str(error))
    except Exception as error:  # one bad input never stops the run; the ledger keeps the reason
        if is_infrastructure(error):
            raise
        failure = internal_error(work.item.origin, error)
        return work, BadImage(failure.reason, failure.detail)
    return work, None


class PictureNotFetched(BadImage):
    """A picture URL that could not be fetched (refused, unreachable, not found): unlike a picture
    that was read and is broken, the row's caption is still worth storing."""


def _is_url(image: str) -> bool:
    return image.startswith(("http://", "https://"))


def is_infrastructure(error: BaseException) -> bool:
    """A failure of what every item needs (the store, the ledger, memory), not of one item: it
    propagates, so the daemon backs off and retries the same work."""
    return isinstance(error, StoreError | sqlite3.Error | MemoryError)


def _sha256_of(source: Path | bytes) -> str:
    if isinstance(source, bytes):
        return sha256_bytes(source)
    digest = hashlib.sha256()
    with source.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
