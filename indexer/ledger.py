"""The SQLite ledger: which files were stored (and as which item), which inputs failed and why, and
where each feed left off.

The ledger is what makes rescans cheap (an unchanged file costs one primary-key lookup) and deletions
visible (mark-and-sweep per scan). It is written only after the vector store has flushed the points it
describes, so after a kill -9 it can lag behind the store but never run ahead of it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from indexer.health import quarantine
from indexer.sources import displayable
from indexer.sources.folder import SidecarStamp, sidecar_signature
from indexer.store.base import DiskFull

SCHEMA_VERSION = 2  # 2: `caption_sig` holds JSON sidecar stamps (1: "name:size:mtime_ns;…")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    root TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    caption_sig TEXT NOT NULL DEFAULT '',
    sha256 TEXT,
    item_id TEXT,
    scan_id TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_root_scan ON files (root, scan_id);
CREATE INDEX IF NOT EXISTS files_item ON files (item_id);
CREATE TABLE IF NOT EXISTS failures (
    origin TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cursors (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_FILE_COLUMNS = "path, root, size, mtime_ns, caption_sig, sha256, item_id, scan_id, updated_at"
_MAX_DETAIL = 2000  # a failure detail is a message for people, not a dump
_V1_STAMP = re.compile(r"(.+):(\d+):(\d+)", re.DOTALL)


class LedgerError(RuntimeError):
    """The ledger file cannot be used (a newer schema, or not a ledger at all: `damaged`)."""

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


_DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


@dataclass(frozen=True)
class FileRecord:
    """One stored file: what it looked like when stored (size, mtime, sidecar signature) and its item.

    `caption_sig` is `indexer.sources.folder.sidecar_signature` of the file's sidecars.
    """

    path: str
    root: str
    size: int
    mtime_ns: int
    caption_sig: str = ""
    sha256: str | None = None
    item_id: str | None = None
    scan_id: str | None = None
    updated_at: str | None = None


@dataclass(frozen=True)
class Failure:
    """An input that could not be stored; `attempts` counts the runs that tried."""

    origin: str
    reason: str
    detail: str
    attempts: int
    first_at: str
    last_at: str


def open_ledger(path: Path) -> Ledger:
    """The ledger at `path`. A file that is not SQLite, or a damaged one, is moved aside
    (`indexer.health.quarantine`) and a fresh ledger begins: the next scans refill it from the folders
    without storing anything twice (stored ids are skipped), feeds are re-read from their start, and
    failures are recorded again as they recur. A newer schema is still refused."""
    try:
        return Ledger(path)
    except LedgerError as error:
        if not error.damaged:
            raise
        outcome = "a fresh ledger was started; the next scans refill it without storing anything twice"
        quarantine(path, str(error.__cause__), outcome, companions=("-wal", "-shm"))
        return Ledger(path)


def _v1_stamps(signature: str) -> tuple[SidecarStamp, ...]:
    """Stamps of a schema-1 signature; a name that held ';' is joined up again. () when unreadable."""
    stamps: list[SidecarStamp] = []
    pending: str | None = None
    for part in signature.split(";"):
        pending = part if pending is None else f"{pending};{part}"
        if match := _V1_STAMP.fullmatch(pending):
            stamps.append(SidecarStamp(match[1], int(match[2]), int(match[3])))
            pending = None
    return tuple(stamps) if pending is None else ()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Ledger:
    """The ledger in one SQLite file (WAL mode).

    Not thread-safe: use one instance from one thread at a time (the pipeline's main loop). It may be
    created in one thread and handed to another. Other processes may read the file concurrently.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._open()
        except sqlite3.DatabaseError as error:
            self._db.close()
            damaged = getattr(error, "sqlite_errorname", "") in _DAMAGED
            raise LedgerError(f"{path}: not a usable ledger ({error})", damaged=damaged) from error

    def _open(self) -> None:
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode survives a process crash; only a power cut may lose the last commits,
        # which the next run redoes (ids are deterministic).
        self._db.execute("PRAGMA synchronous = NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: schema {version} is newer than this program's ({SCHEMA_VERSION})"
            )
        self._create_schema(version)

    def _create_schema(self, version: int) -> None:
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
            if version == 1:
                self._migrate_sidecar_signatures()
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate_sidecar_signatures(self) -> None:
        """Schema 1 -> 2: rewrite "name:size:mtime_ns;…" signatures as JSON, so unchanged files stay
        unchanged. One that cannot be read is left as is: its file is checked again once."""
        rows = self._db.execute("SELECT path, caption_sig FROM files WHERE caption_sig != ''").fetchall()
        updates = [(sidecar_signature(stamps), path) for path, old in rows if (stamps := _v1_stamps(old))]
        self._db.executemany("UPDATE files SET caption_sig = ? WHERE path = ?", updates)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing; a full disk (SQLite rolls back cleanly) becomes `DiskFull`, as for the store."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            if getattr(error, "sqlite_errorname", "") != "SQLITE_FULL":
                raise
            raise DiskFull(f"disk full: the ledger {self.path} could not be written ({error})") from error

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files ---------------------------------------------------------------------------------

    def lookup(self, path: str) -> FileRecord | None:
        """The stored record of `path`, if any."""
        row = self._db.execute(f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ?", (path,)).fetchone()
        return FileRecord(*row) if row else None

    def record_files(self, records: Iterable[FileRecord]) -> None:
        """Store records in one transaction. Call only after the store has flushed their points.

        A record without `scan_id` keeps the one the file already had; `mark_seen` sets it.
        """
        now = _now()
        rows = [
            (r.path, r.root, r.size, r.mtime_ns, r.caption_sig, r.sha256, r.item_id, r.scan_id, now)
            for r in records
        ]
        if not rows:
            return
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET root = excluded.root, size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, caption_sig = excluded.caption_sig, "
                "sha256 = excluded.sha256, item_id = excluded.item_id, "
                "scan_id = COALESCE(excluded.scan_id, files.scan_id), updated_at = excluded.updated_at",
                rows,
            )

    def mark_seen(self, paths: Iterable[str], scan_id: str) -> None:
        """Mark files present in scan `scan_id` (one transaction, however many paths)."""
        with self._transaction() as db:
            db.executemany("UPDATE files SET scan_id = ? WHERE path = ?", ((scan_id, p) for p in paths))

    def unseen(self, root: str, scan_id: str) -> list[FileRecord]:
        """Files under `root` not seen in scan `scan_id` (gone from disk); nothing is removed yet."""
        rows = self._db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE root = ? AND (scan_id IS NULL OR scan_id != ?)",
            (root, scan_id),
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def records_under(self, path: str) -> list[FileRecord]:
        """The record of file `path`, or of every file below it when it was a folder."""
        prefix = path.rstrip("/") + "/"
        rows = self._db.execute(
            f"SELECT {_FILE_COLUMNS} FROM files WHERE path = ? OR substr(path, 1, ?) = ?",
            (path, len(prefix), prefix),
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def forget(self, paths: Iterable[str]) -> None:
        """Drop files from the ledger; call after their items left the store (crash-safe order)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM files WHERE path = ?", ((p,) for p in paths))

    def sweep(self, root: str, scan_id: str) -> list[FileRecord]:
        """Forget files under `root` not seen in scan `scan_id`; return them so their items can go."""
        gone = self.unseen(root, scan_id)
        self.forget(r.path for r in gone)
        return gone

    def paths_for_item(self, item_id: str) -> list[str]:
        """Every known path holding this item (copies of one image share an item)."""
        rows = self._db.execute("SELECT path FROM files WHERE item_id = ? ORDER BY path", (item_id,))
        return [path for (path,) in rows]

    # -- failures ------------------------------------------------------------------------------

    def record_failure(self, origin: str, reason: str, detail: str) -> None:
        """Remember why `origin` failed; a repeat failure bumps `attempts` and keeps `first_at`.

        An origin or detail SQLite cannot hold as text (a file name that is not UTF-8) is kept in its
        displayable form: recording a failure must never fail itself."""
        origin, detail = displayable(origin), displayable(detail)
        now = _now()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO failures (origin, reason, detail, attempts, first_at, last_at) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (origin) DO UPDATE SET reason = excluded.reason, "
                "detail = excluded.detail, attempts = failures.attempts + 1, last_at = excluded.last_at",
                (origin, reason, detail[:_MAX_DETAIL], now, now),
            )

    def clear_failure(self, origin: str) -> None:
        """Forget a failure once its input has been stored."""
        self.clear_failures([origin])

    def clear_failures(self, origins: Iterable[str]) -> None:
        """Forget the failures of inputs now stored: one transaction for a whole batch (a transaction
        per item was 3 statements an item, ~4 % of an ingest of precomputed vectors)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM failures WHERE origin = ?", ((displayable(o),) for o in origins))

    def failures(self) -> list[Failure]:
        """All recorded failures, most recent first."""
        rows = self._db.execute(
            "SELECT origin, reason, detail, attempts, first_at, last_at FROM failures "
            "ORDER BY last_at DESC, origin"
        )
        return [Failure(*row) for row in rows]

    def failure_counts(self) -> dict[str, int]:
        """How many inputs failed, by reason."""
        rows = self._db.execute("SELECT reason, COUNT(*) FROM failures GROUP BY reason ORDER BY reason")
        return dict(rows.fetchall())

    # -- cursors -------------------------------------------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        """Where feed `name` left off, or None before its first run."""
        row = self._db.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def set_cursor(self, name: str, value: str) -> None:
        """Remember where feed `name` left off."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO cursors (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
