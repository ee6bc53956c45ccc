"""Free space before writes: refuse with a clear error while a reserve is left, never fault mid-write.

The embedded engine writes through memory-mapped files that it sizes ahead of use and leaves sparse
(32 MiB WAL segments, vector chunks, payload pages); once the disk is full, touching a page that
cannot be backed kills the process with SIGBUS instead of returning an error. So every write to the
engine first checks that the disk can back the write, every page the engine has mapped but not yet
backed, and `store.min_free_mb` more, and refuses with `DiskFull` (a `StoreError`: `serve` backs off
and retries, a command prints one line) while nothing has been written yet.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from indexer.config import Settings
from indexer.store.base import DiskFull

MIB = 2**20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer can still use on the filesystem holding `path` (or its nearest
    existing parent: a data dir not made yet lives where it will be made)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def disk_use(folder: Path) -> tuple[int, int]:
    """(allocated, unbacked) bytes of the files under `folder`. The engine sizes its mapped files
    (WAL segments, vector chunks, payload pages) ahead of use and leaves them sparse: `unbacked` is
    what it may still write into them without asking, so the disk must keep that much free."""
    allocated = unbacked = 0
    for directory, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(OSError):
                info = os.stat(os.path.join(directory, name))
                allocated += info.st_blocks * 512
                unbacked += max(0, info.st_size - info.st_blocks * 512)
    return allocated, unbacked


def store_commitment(settings: Settings) -> int:
    """Bytes the embedded store has mapped but not backed yet (0 for a server or memory store)."""
    store = settings.data_dir / "store"
    return disk_use(store)[1] if settings.store.kind == "edge" and store.is_dir() else 0


def ensure_free(path: Path, reserve_mb: int, *, needed: int = 0, what: str = "write") -> None:
    """Raise `DiskFull` unless `needed` bytes fit on `path`'s filesystem with `reserve_mb` MiB to spare."""
    if reserve_mb <= 0 and needed <= 0:
        return
    free = free_bytes(path)
    if free - needed >= reserve_mb * MIB:
        return
    raise DiskFull(
        f"disk full: {what} refused: {free / MIB:.0f} MiB free on {path}, {needed / MIB:.0f} MiB needed "
        f"(the write and what the store has mapped already) plus {reserve_mb} MiB to keep free "
        "(store.min_free_mb); free some space and it resumes by itself"
    )


def low_space_note(path: Path, reserve_mb: int, *, committed: int = 0) -> str | None:
    """A status line when less than twice the reserve is left beyond `committed` bytes (the store's
    mapped but unbacked pages), else None."""
    if reserve_mb <= 0:
        return None
    free = free_bytes(path)
    spare = free - committed
    if spare >= 2 * reserve_mb * MIB:
        return None
    refused = "store writes are refused now" if spare < reserve_mb * MIB else "store writes stop soon"
    return (
        f"low disk space: {free / MIB:.0f} MiB free on {path}, {committed / MIB:.0f} MiB of it held for "
        f"the store's mapped files; {refused} ({reserve_mb} MiB must stay free, store.min_free_mb)"
    )
