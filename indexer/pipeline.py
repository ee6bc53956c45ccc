"""Ingest: dedupe ▸ decode (thread pool) ▸ embed (batched) ▸ upsert, exactly once per input.

Cheap checks come before expensive ones: the ledger's (path, size, mtime, sidecar) first, then an id
lookup in the store, then decoding and embedding. Decoding runs in a thread pool ahead of the model, so
the model never waits for JPEGs (Pillow and torch both release the GIL).

Crash safety rests on two rules: point ids are deterministic (re-upserting is a no-op), and the ledger
records a file only after the store has flushed its point. A kill -9 anywhere therefore leaves either
a file the next run embeds again (same id, same point) or one it skips; never a lost or doubled item.
Flushing costs a fraction of a second, so the store is flushed on a timer (`ingest.flush_interval_s`)
and at the end of every run, and ledger records wait in memory for the flush that covers them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import Settings
from indexer.embed.base import Embedder, ImageEmbedder
from indexer.fetch import FetchError, ImageFetcher
from indexer.images import BadImage, decode_image
from indexer.items import ITEM_INDEXES, Item, ItemId, sha256_bytes, sha256_text
from indexer.ledger import FileRecord, Ledger
from indexer.sources import SourceError
from indexer.sources.folder import FolderEntry, scan_directory, scan_folder
from indexer.store.base import CollectionSchema, Point, VectorStore

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
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def merge(self, other: IngestSummary) -> None:
        for name in ("ingested", "updated", "skipped", "deleted", "failed", "seconds"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingested": self.ingested,
            "updated": self.updated,
            "skipped": self.skipped,
            "deleted": self.deleted,
            "failed": self.failed,
            "seconds": round(self.seconds, 3),
            "failures": [{"origin": o, "reason": r} for o, r in self.failures],
        }


@dataclass
class _Work:
    """One item on its way through the pipeline."""

    item: Item
    entry: FolderEntry | None = None
    item_id: ItemId | None = None
    pixels: np.ndarray | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    previous_id: ItemId | None = None
    root: str = ""
    scan_id: str | None = None
    checked: bool = False  # the store was already asked about this id
    copies: list[_Work] = field(default_factory=list)  # folder files with the same content


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
        self._unflushed: list[FileRecord] = []
        self._last_flush = time.monotonic()
        self._fetcher = ImageFetcher.from_settings(settings.fetch)
        store.ensure(item_schema(clip, caption, self.views))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._fetcher.close()

    # -- entry points -------------------------------------------------------------------------

    def ingest_folder(self, root: Path) -> IngestSummary:
        """Scan a folder recursively; new and changed files are stored, deleted ones removed."""
        started = time.perf_counter()
        summary = IngestSummary()
        scan_id = f"{time.time_ns()}"
        root = root.resolve()
        seen: list[str] = []
        self._run(self._folder_work(root, summary, seen, scan_id), summary)
        self.flush()  # this scan's records must be in the ledger before the sweep reads it
        self.ledger.mark_seen(seen, scan_id)
        summary.deleted += self._sweep(root, scan_id)
        summary.seconds = time.perf_counter() - started
        return summary

    def ingest_folder_changes(
        self, root: Path, changed: Sequence[Path], deleted: Sequence[Path]
    ) -> IngestSummary:
        """What a watcher saw: rescan the folders it named (cheap checks skip what did not change) and
        remove the items of files that are gone. A full `ingest_folder` catches anything missed."""
        started = time.perf_counter()
        summary = IngestSummary()
        root = Path(os.path.abspath(root))
        folders = sorted(
            {Path(os.path.abspath(p)).parent for p in (*changed, *deleted)}
            | {Path(os.path.abspath(p)) for p in changed if Path(p).is_dir()}
        )
        scan_id = f"{time.time_ns()}"
        max_bytes = self.settings.ingest.max_caption_bytes
        entries = (e for folder in folders for e in scan_directory(root, folder, max_caption_bytes=max_bytes))
        self._run(self._entry_work(entries, root, summary, [], scan_id), summary)
        self.flush()
        gone = [r for p in deleted for r in self.ledger.records_under(str(Path(os.path.abspath(p))))]
        summary.deleted += self._remove_records([r for r in gone if not Path(r.path).exists()])
        summary.seconds = time.perf_counter() - started
        return summary

    def ingest_items(self, items: Iterable[Item | SourceError]) -> IngestSummary:
        """Store items from a manifest or feed; rows already stored unchanged are skipped."""
        started = time.perf_counter()
        summary = IngestSummary()
        self._run(self._item_work(items, summary), summary)
        self.flush()
        summary.seconds = time.perf_counter() - started
        return summary

    # -- cheap checks -------------------------------------------------------------------------

    def _folder_work(
        self, root: Path, summary: IngestSummary, seen: list[str], scan_id: str
    ) -> Iterator[_Work]:
        entries = scan_folder(root, max_caption_bytes=self.settings.ingest.max_caption_bytes)
        return self._entry_work(entries, root, summary, seen, scan_id)

    def _entry_work(
        self,
        entries: Iterable[FolderEntry | SourceError],
        root: Path,
        summary: IngestSummary,
        seen: list[str],
        scan_id: str,
    ) -> Iterator[_Work]:
        for entry in entries:
            if isinstance(entry, SourceError):
                self._fail(summary, entry.origin, entry.reason, entry.detail)
                continue
            record = self.ledger.lookup(str(entry.path))
            if record is not None and _unchanged(record, entry):
                seen.append(str(entry.path))
                if len(seen) >= 4096:
                    self.ledger.mark_seen(seen, scan_id)
                    seen.clear()
                summary.skipped += 1
                self._progress(1)
                continue
            previous = record.item_id if record else None
            yield _Work(entry.item, entry=entry, previous_id=previous, root=str(root), scan_id=scan_id)

    def _item_work(self, items: Iterable[Item | SourceError], summary: IngestSummary) -> Iterator[_Work]:
        for chunk in _chunks(items, 256):
            works = []
            for item in chunk:
                if isinstance(item, SourceError):
                    self._fail(summary, item.origin, item.reason, item.detail)
                else:
                    works.append(_Work(item, item_id=item.known_id, checked=item.known_id is not None))
            yield from self._drop_stored(works, summary)

    def _drop_stored(self, works: list[_Work], summary: IngestSummary) -> Iterator[_Work]:
        """Skip rows whose id is stored with the same content signature (a re-sent row)."""
        known = [w.item_id for w in works if w.item_id]
        stored = {p.id: p.payload.get("sig") for p in self.store.retrieve(known)} if known else {}
        for work in works:
            if work.item_id in stored and stored[work.item_id] == content_signature(work.item):
                summary.skipped += 1
                self._progress(1)
                continue
            yield work

    # -- decode, embed, upsert ----------------------------------------------------------------

    def _run(self, works: Iterator[_Work], summary: IngestSummary) -> None:
        pending: list[_Work] = []
        for work, error in self._decoded(works):
            if error is not None:
                self._fail(summary, work.item.origin, error.reason, error.detail)
                if work.entry is not None:  # still there: its previous version is kept, not swept
                    self.ledger.mark_seen([str(work.entry.path)], work.scan_id)
                continue
            pending.append(work)
            if len(pending) >= self.settings.ingest.batch_size:
                self._store_batch(pending, summary)
                pending = []
        if pending:
            self._store_batch(pending, summary)

    def _decoded(self, works: Iterator[_Work]) -> Iterator[tuple[_Work, BadImage | None]]:
        """Decode in the pool, at most `_window` ahead of the consumer, in input order."""
        window: list[tuple[_Work, Future]] = []
        for work in works:
            window.append((work, self._pool.submit(self._decode, work)))
            if len(window) >= self._window:
                yield _result(*window.pop(0))
        while window:
            yield _result(*window.pop(0))

    def _decode(self, work: _Work) -> None:
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

    def _image_source(self, image: str) -> Path | bytes:
        """A local path as is; a URL fetched through the guarded fetcher (its errors become BadImage)."""
        if not image.startswith(("http://", "https://")):
            return Path(image)
        try:
            return self._fetcher.fetch(image)
        except FetchError as error:
            raise BadImage(error.reason, error.detail) from None

    def _store_batch(self, works: list[_Work], summary: IngestSummary) -> None:
        works = self._skip_known_content(_first_of_each_id(works, summary), summary)
        if works:
            vectors = self._embed(works)
            points = [
                self._point(w, {k: v[i] for k, v in vectors.items() if v[i] is not None})
                for i, w in enumerate(works)
            ]
            self.store.upsert(points)
        self._settle(works, summary)
        if time.monotonic() - self._last_flush >= self.settings.ingest.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Make stored points durable, then record their files in the ledger."""
        self.store.flush()
        self._last_flush = time.monotonic()
        self.ledger.record_files(self._unflushed)  # on failure the records stay for the next flush
        self._unflushed = []

    def _skip_known_content(self, works: list[_Work], summary: IngestSummary) -> list[_Work]:
        """Items identified by content that is already stored (a rename, a copy, a re-run after a
        crash) need no embedding; a folder file is only recorded in the ledger."""
        ids = [w.item_id for w in works if not w.checked]
        stored = {p.id: p.payload.get("sig") for p in self.store.retrieve(ids)} if ids else {}
        keep, known = [], []
        for work in works:
            if not work.checked and stored.get(work.item_id, "") == content_signature(work.item):
                known.append(work)
            else:
                keep.append(work)
        if known:
            self.ledger.record_files(
                [_file_record(c) for w in known for c in (w, *w.copies) if c.entry is not None]
            )
            summary.skipped += len(known)
            self._progress(len(known))
        return keep

    def _embed(self, works: list[_Work]) -> dict[str, list[np.ndarray | None]]:
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
        self, works: list[_Work], out: dict[str, list], view: str, embedder: Embedder | None
    ) -> None:
        if embedder is None or view not in self.views:
            return
        todo = [i for i, w in enumerate(works) if w.item.caption and out[view][i] is None]
        if todo:
            emb = embedder.embed_texts([works[i].item.caption for i in todo])
            for row, i in enumerate(todo):
                out[view][i] = emb[row]

    def _point(self, work: _Work, vectors: dict[str, np.ndarray]) -> Point:
        item = work.item
        payload: dict[str, Any] = {
            "source": item.source,
            "origin": item.origin,
            "caption": item.caption,
            "created_at": item.created_at,
            "ingested_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "model": self.clip.model_id if self.clip else None,
            "sig": content_signature(item),
            "pending": 1,
            **work.payload,
        }
        if item.image:
            key = "url" if item.image.startswith(("http://", "https://")) else "path"
            payload[key] = item.image
        if item.source_id:
            payload["source_id"] = item.source_id
        if item.metadata:
            payload["meta"] = dict(item.metadata)
        return Point(id=work.item_id, vectors=vectors, payload=payload)

    def _settle(self, works: list[_Work], summary: IngestSummary) -> None:
        """Drop orphaned old versions now; the files' ledger records wait for the next flush."""
        orphans = [w.previous_id for w in works if w.previous_id and w.previous_id != w.item_id]
        records = [_file_record(c) for w in works for c in (w, *w.copies) if c.entry is not None]
        self._unflushed.extend(records)
        self._delete_orphans(orphans)
        self._absorb_sidecars([w.entry for w in works if w.entry is not None and w.entry.caption_sig])
        for work in works:
            if work.previous_id is not None:
                summary.updated += 1
            else:
                summary.ingested += 1
            self.ledger.clear_failure(work.item.origin)
        self._progress(len(works))

    def _absorb_sidecars(self, entries: list[FolderEntry]) -> None:
        """A caption stored alone (its image came later) is now the image's sidecar: its own item goes."""
        alone = []
        for entry in entries:
            for part in entry.caption_sig.split(";"):
                record = self.ledger.lookup(str(entry.path.parent / part.rsplit(":", 2)[0]))
                if record is not None and record.path != str(entry.path):
                    alone.append(record)
        if alone:
            self._remove_records(alone)

    def _delete_orphans(self, item_ids: list[ItemId]) -> int:
        """Old versions no file holds any more (neither in the ledger nor waiting for the next flush)."""
        if not item_ids:
            return 0
        moving = {r.path for r in self._unflushed}
        held = {r.item_id for r in self._unflushed}
        gone = [i for i in set(item_ids) if i not in held and not set(self.ledger.paths_for_item(i)) - moving]
        if gone:
            self.store.delete(gone)
        return len(gone)

    def _sweep(self, root: Path, scan_id: str) -> int:
        """Files gone since the last scan: their items go too, unless another path still has them.

        The store changes first and the ledger after, so a crash in between only repeats the sweep.
        """
        return self._remove_records(self.ledger.unseen(str(root), scan_id))

    def _remove_records(self, gone: list[FileRecord]) -> int:
        """Forget files that are gone; their items go too unless another path still holds them."""
        if not gone:
            return 0
        gone_paths = {r.path for r in gone}
        deleted: set[str] = set()
        for record in gone:
            if record.item_id is None or record.item_id in deleted:
                continue
            remaining = [p for p in self.ledger.paths_for_item(record.item_id) if p not in gone_paths]
            if remaining:
                self.store.set_payload([record.item_id], {"path": remaining[0], "origin": remaining[0]})
            else:
                deleted.add(record.item_id)
        if deleted:
            self.store.delete(sorted(deleted))
        self.flush()
        self.ledger.forget(gone_paths)
        return len(deleted)

    def _fail(self, summary: IngestSummary, origin: str, reason: str, detail: str) -> None:
        log.warning("%s: %s (%s)", origin, reason, detail)
        self.ledger.record_failure(origin, reason, detail)
        summary.failed += 1
        summary.failures.append((origin, reason))
        self._progress(1)


def _first_of_each_id(works: list[_Work], summary: IngestSummary) -> list[_Work]:
    """Two inputs with one id in a batch (identical files, a row sent twice) are one item: the first is
    stored; a later folder copy is only recorded in the ledger, so deleting one copy keeps the item."""
    firsts: dict[str, _Work] = {}
    for work in works:
        if work.item_id in firsts:
            summary.skipped += 1
            if work.entry is not None:
                firsts[work.item_id].copies.append(work)
        else:
            firsts[work.item_id] = work
    return list(firsts.values())


def _unchanged(record: FileRecord, entry: FolderEntry) -> bool:
    return (record.size, record.mtime_ns, record.caption_sig) == (
        entry.size,
        entry.mtime_ns,
        entry.caption_sig,
    )


def _file_record(work: _Work) -> FileRecord:
    entry = work.entry
    return FileRecord(
        path=str(entry.path),
        root=work.root,
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        caption_sig=entry.caption_sig,
        sha256=work.payload.get("sha256"),
        item_id=work.item_id,
        scan_id=work.scan_id,
    )


def _result(work: _Work, future: Future) -> tuple[_Work, BadImage | None]:
    try:
        future.result()
    except BadImage as error:
        return work, error
    except OSError as error:
        return work, BadImage("unreadable", str(error))
    except Exception as error:  # one bad input never stops the run; the ledger keeps the reason
        log.exception("%s: unexpected error while decoding", work.item.origin)
        return work, BadImage("error", f"{type(error).__name__}: {error}")
    return work, None


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
