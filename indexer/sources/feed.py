"""Feeds: records that keep arriving. A JSONL file followed as it grows, stdin, and HTTP(S) feeds.

Every record goes through :func:`indexer.sources.feed_items.parse_record`, so a JSONL line, a JSON Feed
item and an RSS item become `Item`s the same way, and a record that cannot be used becomes a
`SourceError` while the feed goes on. Feed-level reasons: ``line-too-long`` (a line over the limit,
skipped without being held whole), ``bad-feed`` (a document that is no feed), and the fetcher's codes.

Exactly once: a tail or feed remembers where it stopped in a cursor store (the ledger), but only when
the caller says the records it returned are stored (`commit()`). A crash between the two replays the
uncommitted records, which the pipeline's deterministic ids turn into no-ops.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

from indexer.fetch import FetchError, ImageFetcher
from indexer.items import Item
from indexer.sources import SourceError
from indexer.sources.feed_items import (
    ID_KEYS,
    CursorStore,
    RecordContext,
    first_field,
    parse_line,
    parse_record,
)
from indexer.sources.syndication import FeedFormatError, parse_document

__all__ = ["CursorStore", "HttpFeed", "JsonlTail", "RecordContext", "parse_record", "read_stream"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024


# -- stdin ----------------------------------------------------------------------------------------


def read_stream(
    stream: IO[bytes] | IO[str],
    name: str = "stdin",
    *,
    context: RecordContext | None = None,
    max_line_bytes: int = 10 * MiB,
) -> Iterator[Item | SourceError]:
    """Records from a stream (``--feed -``), line by line, never holding more than one bounded line."""
    raw: IO[bytes] = getattr(stream, "buffer", stream)  # type: ignore[assignment]
    context = context or RecordContext(namespace=name)
    number = 0
    while True:
        line = raw.readline(max_line_bytes + 1)
        if not line:
            return
        number += 1
        origin = f"{name}:{number}"
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            _discard_rest_of_line(raw)
            yield SourceError(origin, "line-too-long", f"over {max_line_bytes} bytes")
        elif line.strip():
            yield parse_line(line, origin, context)


def _discard_rest_of_line(raw: IO[bytes]) -> None:
    while True:
        chunk = raw.readline(MiB)
        if not chunk or chunk.endswith(b"\n"):
            return


# -- a JSONL file followed as it grows ------------------------------------------------------------


@dataclass(frozen=True)
class TailPosition:
    """Where a tail stands: the file's identity, the byte after the last whole line, its number."""

    dev: int
    inode: int
    offset: int
    line: int
    head: str = ""  # a digest of the file's first bytes: tells a replaced file from the same one

    def dumps(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def loads(cls, text: str | None) -> TailPosition | None:
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            log.warning("unreadable tail cursor %r: starting from the beginning", text[:200])
            return None


HEAD_BYTES = 1024
READ_CHUNK = MiB


class JsonlTail:
    """Follow a JSONL file like ``tail -F``: appends, a partial last line, truncation, rotation.

    `poll()` returns the records completed since the last call; `commit()` records that everything
    returned so far is stored, so a restart resumes after it. A line longer than `max_line_bytes` is
    skipped while it streams past (reason ``line-too-long``); memory stays within one line's bound.
    On rotation (the path now names another file) the old file is read to its end first.
    """

    def __init__(
        self,
        path: Path,
        *,
        cursor_store: CursorStore | None,
        name: str | None = None,
        max_line_bytes: int = 10 * MiB,
        max_batch: int = 1000,
        context: RecordContext | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or f"jsonl:{self.path.resolve()}"
        self.max_line_bytes = max_line_bytes
        self.max_batch = max_batch
        self.context = context or RecordContext(namespace=self.path.stem, roots=(self.path.resolve().parent,))
        self._store = cursor_store
        self._file: IO[bytes] | None = None
        self._position: TailPosition | None = None  # after the last line returned
        self._committed: TailPosition | None = None
        self._buffer = b""
        self._skipping = False
        self._skipped = 0  # bytes of the over-long line passed so far

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- public ---------------------------------------------------------------------------------

    def poll(self) -> list[Item | SourceError]:
        """Records whose lines are complete now (at most `max_batch`); [] while there is nothing new."""
        if self._file is None and not self._open():
            return []
        self._check_truncated()
        records = self._read_lines()
        if not records and self._rotated():
            records = self._finish_rotated()
        return records

    def commit(self) -> None:
        """Remember that every record returned so far is stored: a restart resumes after them."""
        position = self._position
        if position is None or position == self._committed or self._store is None:
            return
        self._store.set_cursor(self.name, replace(position, head=self._head_digest(position.offset)).dumps())
        self._committed = position

    def follow(self, stop: threading.Event, interval_s: float = 1.0) -> Iterator[list[Item | SourceError]]:
        """Batches of new records until `stop` is set; call `commit()` after storing each batch."""
        while not stop.is_set():
            records = self.poll()
            if records:
                yield records
            else:
                stop.wait(interval_s)

    # -- opening and resuming -------------------------------------------------------------------

    def _open(self) -> bool:
        try:
            handle = self.path.open("rb", buffering=0)
        except FileNotFoundError:
            return False
        self._file = handle
        stat = os.fstat(handle.fileno())
        saved = TailPosition.loads(self._store.get_cursor(self.name)) if self._store else None
        start = TailPosition(stat.st_dev, stat.st_ino, 0, 0)
        if saved is not None and self._resumable(saved, stat.st_dev, stat.st_ino, stat.st_size):
            start = saved
        handle.seek(start.offset)
        self._position = self._committed = start
        self._buffer, self._skipping = b"", False
        return True

    def _resumable(self, saved: TailPosition, dev: int, inode: int, size: int) -> bool:
        """The saved position belongs to this very file, and the file still reaches it."""
        if (saved.dev, saved.inode) != (dev, inode) or size < saved.offset:
            return False
        return not saved.head or saved.head == self._head_digest(saved.offset)

    def _head_digest(self, offset: int) -> str:
        assert self._file is not None
        head = os.pread(self._file.fileno(), min(offset, HEAD_BYTES), 0)
        return hashlib.sha256(head).hexdigest()[:16]

    # -- reading --------------------------------------------------------------------------------

    def _check_truncated(self) -> None:
        """A file shorter than what was read was truncated (``copytruncate``): start over from 0."""
        assert self._file is not None and self._position is not None
        read_to = self._file.tell()
        if os.fstat(self._file.fileno()).st_size < read_to:
            log.info("%s: truncated, reading from the start", self.path)
            self._file.seek(0)
            self._position = replace(self._position, offset=0, line=0)
            self._buffer, self._skipping = b"", False

    def _read_lines(self) -> list[Item | SourceError]:
        """Whole lines first from what is buffered, then from the file, until `max_batch` or its end."""
        assert self._file is not None
        records: list[Item | SourceError] = []
        while True:
            self._split_buffer(records)
            if len(records) >= self.max_batch:
                return records
            chunk = self._file.read(READ_CHUNK)
            if not chunk:
                return records
            self._take(chunk, records)

    def _take(self, chunk: bytes, records: list[Item | SourceError]) -> None:
        """Add a chunk to the buffer, or, inside an over-long line, pass over it up to its newline."""
        if not self._skipping:
            self._buffer += chunk
            return
        end = chunk.find(b"\n")
        if end < 0:
            self._skipped += len(chunk)
            return
        records.append(self._line_too_long(self._skipped + end + 1))
        self._buffer = chunk[end + 1 :]

    def _split_buffer(self, records: list[Item | SourceError]) -> None:
        """Parse the buffer's complete lines (up to the batch cap); keep the unfinished rest.

        An unfinished rest longer than the limit turns into skipping, so it is never held whole.
        """
        data, base = self._buffer, 0
        while len(records) < self.max_batch and (end := data.find(b"\n", base)) >= 0:
            if end - base > self.max_line_bytes:
                records.append(self._line_too_long(end + 1 - base))
            elif (record := self._complete_line(data[base:end])) is not None:
                records.append(record)
            base = end + 1
        self._buffer = data[base:] if base else data
        if len(self._buffer) > self.max_line_bytes and b"\n" not in self._buffer:
            self._skipping, self._skipped = True, len(self._buffer)
            self._buffer = b""

    def _complete_line(self, line: bytes) -> Item | SourceError | None:
        assert self._position is not None
        number = self._position.line + 1
        self._position = replace(self._position, offset=self._position.offset + len(line) + 1, line=number)
        if not line.strip():
            return None
        return parse_line(line, f"{self.path}:{number}", self.context)

    def _line_too_long(self, length: int) -> SourceError:
        """Close an over-long line of `length` bytes (with its newline) that was never held whole."""
        assert self._position is not None
        number = self._position.line + 1
        self._position = replace(self._position, offset=self._position.offset + length, line=number)
        self._skipping, self._skipped = False, 0
        detail = f"{length - 1} bytes, over the {self.max_line_bytes}-byte limit"
        return SourceError(f"{self.path}:{number}", "line-too-long", detail)

    # -- rotation -------------------------------------------------------------------------------

    def _rotated(self) -> bool:
        """The path names another file now (or names none yet: keep reading the old one meanwhile)."""
        assert self._file is not None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self._file.fileno())
        return (current.st_dev, current.st_ino) != (mine.st_dev, mine.st_ino)

    def _finish_rotated(self) -> list[Item | SourceError]:
        """The old file is read to its end; a last line without newline counts; then the new file."""
        records: list[Item | SourceError] = []
        if self._buffer.strip() and not self._skipping:
            last = self._complete_line(self._buffer)
            records.extend([last] if last is not None else [])
        log.info("%s: rotated, following the new file", self.path)
        self.close()
        if self._open_new():
            records.extend(self._read_lines())
        return records

    def _open_new(self) -> bool:
        """Open the file now at the path from its start (its cursor, if any, is for the old file)."""
        try:
            handle = self.path.open("rb", buffering=0)
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        self._file = handle
        self._position = TailPosition(stat.st_dev, stat.st_ino, 0, 0)
        self._buffer, self._skipping = b"", False
        return True


# -- HTTP(S) feeds --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedState:
    """What an HTTP feed remembers: validators for a conditional GET and the entries already yielded."""

    etag: str | None = None
    last_modified: str | None = None
    seen: tuple[str, ...] = ()

    def dumps(self) -> str:
        return json.dumps({"etag": self.etag, "last_modified": self.last_modified, "seen": list(self.seen)})

    @classmethod
    def loads(cls, text: str | None) -> FeedState:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(data.get("etag"), data.get("last_modified"), tuple(data.get("seen", ())))
        except (ValueError, TypeError, AttributeError):
            return cls()


class HttpFeed:
    """An HTTP(S) feed polled on an interval: JSON array, JSON Feed, RSS or Atom.

    A poll is a conditional GET (ETag / Last-Modified); a 304 costs no parsing. Entries already
    yielded are remembered (the most recent `seen_limit`) and not yielded again. A failed fetch or an
    unreadable document is one `SourceError` naming the feed; the next poll tries again.
    """

    def __init__(
        self,
        url: str,
        *,
        fetcher: ImageFetcher,
        name: str | None = None,
        cursor_store: CursorStore | None = None,
        interval_s: float = 300.0,
        max_caption_bytes: int = 1_000_000,
        seen_limit: int = 10_000,
    ) -> None:
        self.url = url
        self.name = name or f"http:{url}"
        self.interval_s = interval_s
        self.seen_limit = seen_limit
        self.context = RecordContext(namespace=name or url, max_caption_bytes=max_caption_bytes, base_url=url)
        self._fetcher = fetcher
        self._store = cursor_store
        self._state = FeedState.loads(cursor_store.get_cursor(self.name) if cursor_store else None)
        self._pending: FeedState | None = None

    def poll(self) -> list[Item | SourceError]:
        """The entries not yielded before (by committed state), or one error naming the feed."""
        state = self._state
        try:
            document = self._fetcher.fetch_document(
                self.url, etag=state.etag, last_modified=state.last_modified
            )
        except FetchError as error:
            return [SourceError(self.url, error.reason, error.detail)]
        if document.not_modified:
            return []
        try:
            entries = parse_document(document.body, document.content_type)
        except FeedFormatError as error:
            return [SourceError(self.url, "bad-feed", str(error))]
        records, keys = self._new_records(entries, replace(self.context, base_url=document.url))
        seen = (*state.seen, *keys)[-self.seen_limit :]
        self._pending = FeedState(document.etag, document.last_modified, seen)
        return records

    def _new_records(
        self, entries: list[Any], context: RecordContext
    ) -> tuple[list[Item | SourceError], list[str]]:
        known = set(self._state.seen)
        records: list[Item | SourceError] = []
        keys: list[str] = []
        for index, entry in enumerate(entries):
            key = _entry_key(entry)
            if key in known:
                continue
            known.add(key)
            keys.append(key)
            label = entry.get("id") if isinstance(entry, dict) else None
            origin = f"{self.url}#{label if isinstance(label, str | int) else index}"
            records.append(parse_record(entry, origin, context))
        return records, keys

    def commit(self) -> None:
        """Remember the last poll's entries as stored, and its validators for the next conditional GET."""
        if self._pending is None:
            return
        self._state, self._pending = self._pending, None
        if self._store is not None:
            self._store.set_cursor(self.name, self._state.dumps())

    def follow(self, stop: threading.Event) -> Iterator[list[Item | SourceError]]:
        """Batches of new entries every `interval_s` until `stop` is set; `commit()` after each."""
        while not stop.is_set():
            records = self.poll()
            if records:
                yield records
            stop.wait(self.interval_s)


def _entry_key(entry: Any) -> str:
    """An entry's identity for `seen`: its id where it has one, else a digest of its content."""
    if isinstance(entry, dict):
        found = first_field(entry, ID_KEYS)
        if found is not None and isinstance(found[1], str | int):
            return f"id:{found[1]}"[:200]
    text = json.dumps(entry, sort_keys=True, default=str)
    return "sha:" + hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:20]
