"""Folder synchronisation: which files of a folder changed since they were stored, and the ledger
bookkeeping that keeps files and stored items in step.

The cheap check is the ledger's (path, size, mtime, sidecars): an unchanged file costs one lookup and
is only marked seen in this scan. What a scan did not see is gone: its item leaves the store unless
another path still holds it (mark and sweep). A file's ledger record waits in memory until the store
has flushed its point, and the store always changes before the ledger, so a crash in between only
repeats work. An item that no file holds any more (a file edited into new content, a caption that
became an image's sidecar) leaves the store as soon as its successor is stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.items import ItemId
from indexer.ledger import FileRecord, Ledger
from indexer.sources import SourceError, internal_error, is_storable_name
from indexer.sources.folder import FolderEntry, scan_directory, scan_folder, sidecar_signature
from indexer.store.base import VectorStore

if TYPE_CHECKING:
    from indexer.pipeline import InFlight

SEEN_BATCH = 4096  # unchanged paths marked seen in one ledger transaction


@dataclass(frozen=True)
class FolderFile:
    """A new or changed folder file on its way to the store, and what the ledger had for its path."""

    entry: FolderEntry
    root: str
    scan_id: str | None
    previous_id: ItemId | None  # the item stored for this path before, if any


class FolderSync:
    """The ledger's side of folder ingest: cheap checks before, records and removals after storing."""

    def __init__(self, store: VectorStore, ledger: Ledger, *, max_caption_bytes: int) -> None:
        self.store = store
        self.ledger = ledger
        self.max_caption_bytes = max_caption_bytes
        self._unflushed: list[FileRecord] = []

    # -- before storing -----------------------------------------------------------------------

    def scan(self, root: Path) -> Iterator[FolderEntry | SourceError]:
        """Every item under `root` (a full scan; `finish_scan` then sweeps what it did not see)."""
        return scan_folder(root, max_caption_bytes=self.max_caption_bytes)

    def rescan(
        self, root: Path, changed: Sequence[Path], deleted: Sequence[Path]
    ) -> Iterator[FolderEntry | SourceError]:
        """The items of the folders a watcher named (the cheap checks skip what did not change)."""
        folders = sorted(
            {Path(os.path.abspath(p)).parent for p in (*changed, *deleted)}
            | {Path(os.path.abspath(p)) for p in changed if Path(p).is_dir()}
        )
        for folder in folders:
            yield from scan_directory(root, folder, max_caption_bytes=self.max_caption_bytes)

    def changed(
        self,
        entries: Iterable[FolderEntry | SourceError],
        root: Path,
        scan_id: str,
        seen: list[str],
        unchanged: Callable[[], None],
    ) -> Iterator[FolderFile | SourceError]:
        """The entries whose file is new or changed; an unchanged one is added to `seen` instead."""
        for entry in entries:
            if isinstance(entry, SourceError):
                yield entry
                continue
            try:
                record = self.ledger.lookup(str(entry.path))
            except ValueError as error:  # text SQLite cannot take; the scan refuses such names first
                yield internal_error(str(entry.path), error)
                continue
            if record is not None and _unchanged(record, entry):
                seen.append(str(entry.path))
                if len(seen) >= SEEN_BATCH:
                    self.ledger.mark_seen(seen, scan_id)
                    seen.clear()
                unchanged()
                continue
            previous = record.item_id if record else None
            yield FolderFile(entry, str(root), scan_id, previous)

    def failed(self, file: FolderFile) -> None:
        """A file that could not be stored is still there: its previous version is kept, not swept."""
        self.ledger.mark_seen([str(file.entry.path)], file.scan_id)

    # -- after storing ------------------------------------------------------------------------

    def known(self, works: Sequence[InFlight]) -> None:
        """Files whose content the store already holds (a rename, a copy, a file overwritten with another
        stored file's content): only their records change, and their old items may go."""
        self._unflushed.extend(_records(works))
        self._delete_orphans(_previous_ids(works))

    def stored(self, works: Sequence[InFlight]) -> None:
        """Items just upserted: drop their orphaned old versions now; the records wait for the flush."""
        self._unflushed.extend(_records(works))
        self._delete_orphans(_previous_ids(works))
        self._absorb_sidecars([w.file.entry for w in works if w.file is not None and w.file.entry.sidecars])

    def flushed(self) -> None:
        """The store made every point so far durable: record their files (kept for the next flush if
        the ledger refuses)."""
        self.ledger.record_files(self._unflushed)
        self._unflushed = []

    def finish_scan(self, root: Path, seen: list[str], scan_id: str) -> int:
        """After a full scan, flushed: mark the unchanged files seen, then remove what the scan missed."""
        self.ledger.mark_seen(seen, scan_id)
        return self.remove(self.ledger.unseen(str(root), scan_id))

    def remove_deleted(self, deleted: Sequence[Path]) -> int:
        """Files (or folders) a watcher saw go: their records, and items no other path holds."""
        paths = [os.path.abspath(p) for p in deleted]
        gone = [r for p in paths if is_storable_name(p) for r in self.ledger.records_under(p)]  # else: none
        return self.remove([r for r in gone if not Path(r.path).exists()])

    def remove(self, gone: list[FileRecord]) -> int:
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
        self.store.flush()
        self.flushed()
        self.ledger.forget(gone_paths)
        return len(deleted)

    def _absorb_sidecars(self, entries: list[FolderEntry]) -> None:
        """A caption stored alone (its image came later) is now the image's sidecar: its own item goes."""
        alone = []
        for entry in entries:
            for stamp in entry.sidecars:
                record = self.ledger.lookup(str(entry.path.parent / stamp.name))
                if record is not None and record.path != str(entry.path):
                    alone.append(record)
        if alone:
            self.remove(alone)

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


def _unchanged(record: FileRecord, entry: FolderEntry) -> bool:
    return (record.size, record.mtime_ns, record.caption_sig) == (
        entry.size,
        entry.mtime_ns,
        sidecar_signature(entry.sidecars),
    )


def _with_copies(works: Sequence[InFlight]) -> Iterator[InFlight]:
    """Each work and the folder copies of its content that it stands for."""
    for work in works:
        yield work
        yield from work.copies


def _records(works: Sequence[InFlight]) -> list[FileRecord]:
    return [_file_record(w, w.file) for w in _with_copies(works) if w.file is not None]


def _previous_ids(works: Sequence[InFlight]) -> list[ItemId]:
    """Items these files held before, where they now hold another one."""
    return [
        w.file.previous_id
        for w in _with_copies(works)
        if w.file is not None and w.file.previous_id and w.file.previous_id != w.item_id
    ]


def _file_record(work: InFlight, file: FolderFile) -> FileRecord:
    entry = file.entry
    return FileRecord(
        path=str(entry.path),
        root=file.root,
        size=entry.size,
        mtime_ns=entry.mtime_ns,
        caption_sig=sidecar_signature(entry.sidecars),
        sha256=work.payload.get("sha256"),
        item_id=work.item_id,
        scan_id=file.scan_id,
    )
