"""Backups: a consistent copy of an embedded data dir, or server-side snapshots of a Qdrant server.

Embedded store: the copy is taken by the process that holds the store's directory locks, so nothing
writes while the files are copied. `backup` takes the locks itself; while `topics serve` owns the
data dir the backup must run inside it (`backup_held`, offered over the control socket) or wait until
it stops. The copy holds both collection directories (flushed first), the ledger (through SQLite's
backup API, consistent even while another connection writes), the online assigner's state and the
topic tiles. It is written under a temporary name, checked by opening it and counting, then renamed:
a backup either exists whole or not at all. `restore` puts one into an empty data dir and checks the
counts again.

Server: Qdrant writes a snapshot of each collection on the server (its snapshots directory); download
it from ``/collections/<name>/snapshots/<snapshot>`` to keep it elsewhere. On a cluster a collection
snapshot covers the shards of the node that answered: snapshot every node (see docs/scaling.md).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import sqlite3
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from indexer.config import Settings
from indexer.errors import InvalidInput, MissingPath
from indexer.store import EdgeBackend, QdrantBackend, open_backend
from indexer.store.base import COLLECTIONS, StoreError, StoreLocked
from indexer.store.edge import LOCK_FILE
from indexer.store.shared import OwnerUnavailable, RemoteBackend

FORMAT = "topics-backup/1"
MANIFEST = "manifest.json"
LEDGER = "ledger.sqlite"
TRAILING_HOLES = "trailing-holes.json"  # in an archive: files stored without their trailing hole
EXTRA_DIRS = ("online", "tiles")  # the online assigner's state; topic mosaics the records point to


@dataclass(frozen=True)
class Backup:
    """One backup: where it is, what it holds."""

    path: Path
    kind: Literal["embedded", "server"]
    created: str
    counts: dict[str, int]
    contents: tuple[str, ...] = ()
    snapshots: tuple[dict[str, Any], ...] = ()  # server: one per collection, kept on the server
    size_bytes: int = 0  # on disk

    def as_dict(self) -> dict[str, Any]:
        """A stable, JSON-ready shape (`topics backup --json`)."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "created": self.created,
            "counts": dict(self.counts),
            "contents": list(self.contents),
            "snapshots": [dict(s) for s in self.snapshots],
            "size_bytes": self.size_bytes,
        }


@dataclass(frozen=True)
class _Manifest:
    created: str
    counts: dict[str, int]
    contents: tuple[str, ...]
    identity: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "created": self.created,
            "counts": self.counts,
            "contents": list(self.contents),
            "identity": self.identity,
        }

    @classmethod
    def read(cls, root: Path) -> _Manifest:
        try:
            data = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise StoreError(f"{root} is not a topics backup: {MANIFEST} unreadable ({error})") from error
        if data.get("format") != FORMAT:
            raise StoreError(f"{root}: backup format {data.get('format')!r}, this version reads {FORMAT!r}")
        counts = {str(k): int(v) for k, v in data["counts"].items()}
        return cls(data["created"], counts, tuple(data["contents"]), dict(data.get("identity") or {}))


def backup(settings: Settings, dest: Path, *, archive: bool = False) -> Backup:
    """Back up the configured store into the folder `dest`: a copy of the data dir, or server snapshots."""
    kind = settings.store.kind
    if kind == "memory":
        raise InvalidInput("the in-memory store keeps nothing to back up")
    if kind == "qdrant":
        backend = open_backend(settings)
        try:
            assert isinstance(backend, QdrantBackend)
            return snapshot_server(backend)
        finally:
            backend.close()
    try:
        return backup_data_dir(settings, dest, archive=archive)
    except StoreLocked as locked:
        return _backup_through_owner(settings, dest, archive, locked)


def backup_data_dir(settings: Settings, dest: Path, *, archive: bool = False) -> Backup:
    """Take the store's directory locks (refused while another process owns them), then copy it."""
    backend = EdgeBackend(settings.data_dir / "store", min_free_mb=settings.store.min_free_mb)
    try:
        for name in COLLECTIONS:
            backend.collection(name)  # every lock before the first byte is copied
        return backup_held(backend, settings, dest, archive=archive)
    finally:
        backend.close()


def backup_held(
    backend: EdgeBackend,
    settings: Settings,
    dest: Path,
    *,
    archive: bool = False,
    now: datetime | None = None,
) -> Backup:
    """Copy the data dir from the process that holds `backend`; the caller lets nothing write meanwhile.

    Returns the backup: ``dest/topics-backup-<UTC time>`` (a folder), or that name ``.tar.gz``.
    """
    created = (now or datetime.now(UTC)).astimezone(UTC)
    name = f"topics-backup-{created:%Y%m%dT%H%M%S}Z"
    final = dest / (f"{name}.tar.gz" if archive else name)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = _copy_data_dir(backend, settings, staging, created)
        _check_counts(staging, manifest)
        _publish(staging, final, archive)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Backup(final, "embedded", manifest.created, manifest.counts, manifest.contents, (), _size(final))


def _copy_data_dir(backend: EdgeBackend, settings: Settings, staging: Path, created: datetime) -> _Manifest:
    counts: dict[str, int] = {}
    contents: list[str] = []
    identity: dict[str, Any] = {}
    for name in COLLECTIONS:
        store = backend.collection(name)
        if not store.exists():
            continue
        store.flush()
        counts[name] = store.count()
        identity[name] = store.identity() or {}
        shutil.copytree(
            store.path,
            staging / "store" / name,
            ignore=shutil.ignore_patterns(LOCK_FILE),
            copy_function=copy_sparse,
        )
        contents.append(f"store/{name}")
    if settings.ledger_path.exists():
        copy_sqlite(settings.ledger_path, staging / LEDGER)
        contents.append(LEDGER)
    for extra in EXTRA_DIRS:
        if (settings.data_dir / extra).is_dir():
            shutil.copytree(settings.data_dir / extra, staging / extra)
            contents.append(extra)
    manifest = _Manifest(created.isoformat(timespec="seconds"), counts, tuple(contents), identity)
    (staging / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1, sort_keys=True), "utf-8")
    return manifest


def copy_sparse(source: str | Path, target: str | Path) -> str:
    """Copy a file keeping its holes: the engine preallocates 32 MiB WAL segments that are mostly holes."""
    with open(source, "rb") as fin, open(target, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        position = 0
        while position < size:
            try:
                start = os.lseek(fin.fileno(), position, os.SEEK_DATA)
            except OSError as error:
                if error.errno == errno.ENXIO:
                    break  # only a hole is left
                raise
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            _copy_range(fin, fout, end - start)
            position = end
        fout.truncate(size)
    shutil.copystat(source, target)
    return str(target)


def _copy_range(fin: Any, fout: Any, length: int, chunk: int = 1 << 20) -> None:
    while length > 0:
        data = fin.read(min(chunk, length))
        if not data:
            return
        fout.write(data)
        length -= len(data)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, even while another connection writes to it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _check_counts(root: Path, manifest: _Manifest) -> None:
    """Open the copied store and count: a copy that does not load is no backup."""
    if not manifest.counts:
        return
    backend = EdgeBackend(root / "store")
    try:
        found = {name: backend.collection(name).count() for name in manifest.counts}
    finally:
        backend.close()
    if found != manifest.counts:
        raise StoreError(f"the copy in {root} holds {found} points, the store held {manifest.counts}")


def _publish(staging: Path, final: Path, archive: bool) -> None:
    """Rename into place; an archive is packed under a temporary name first."""
    for lock in staging.glob(f"store/*/{LOCK_FILE}"):
        lock.unlink()  # left by the count check
    if not archive:
        staging.rename(final)
        return
    packing = final.with_name(f".{final.name}.partial")
    sizes: dict[str, int] = {}
    with tarfile.open(packing, "w:gz", compresslevel=6) as tar:
        for path in sorted(staging.rglob("*")):
            name = path.relative_to(staging).as_posix()
            info = tar.gettarinfo(path, arcname=name)
            if not path.is_file():
                tar.addfile(info)
                continue
            info.size = _data_end(path)  # a trailing hole is not stored, only its length
            if info.size < path.stat().st_size:
                sizes[name] = path.stat().st_size
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
        _add_json(tar, TRAILING_HOLES, sizes)
    packing.rename(final)


def _data_end(path: Path) -> int:
    """Where a file's data ends: its size, less a trailing hole (preallocated WAL space)."""
    size = path.stat().st_size
    end = 0
    with open(path, "rb") as fh:
        try:
            while end < size:
                start = os.lseek(fh.fileno(), end, os.SEEK_DATA)
                end = os.lseek(fh.fileno(), start, os.SEEK_HOLE)
        except OSError as error:
            if error.errno != errno.ENXIO:
                return size  # no hole support here: store it whole
    return min(end, size)


def _add_json(tar: tarfile.TarFile, name: str, data: Any) -> None:
    raw = json.dumps(data, sort_keys=True).encode()
    info = tarfile.TarInfo(name)
    info.size = len(raw)
    tar.addfile(info, io.BytesIO(raw))


def _size(path: Path) -> int:
    """Bytes on disk (holes in preallocated files take none)."""
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return sum(f.stat().st_blocks * 512 for f in files)


def restore(source: Path, data_dir: Path) -> Backup:
    """Put an embedded backup (folder or .tar.gz) into `data_dir`, which must hold no store or ledger."""
    _refuse_occupied(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = data_dir / ".restore.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _unpack(source, staging)
        manifest = _Manifest.read(staging)
        _check_counts(staging, manifest)
        for lock in staging.glob(f"store/*/{LOCK_FILE}"):
            lock.unlink()
        for top in dict.fromkeys(entry.split("/")[0] for entry in manifest.contents):
            if (data_dir / top).is_dir():
                (data_dir / top).rmdir()  # empty, as checked above
            (staging / top).rename(data_dir / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Backup(data_dir, "embedded", manifest.created, manifest.counts, manifest.contents)


def _refuse_occupied(data_dir: Path) -> None:
    places = [data_dir / top for top in ("store", LEDGER, *EXTRA_DIRS)]
    taken = [p for p in places if p.exists() and _holds_data(p)]
    if taken:
        raise FileExistsError(
            f"{data_dir} already holds {', '.join(p.name for p in taken)}; restore into an empty data dir "
            "(set TOPICS_DATA_DIR) or move it aside first"
        )


def _holds_data(path: Path) -> bool:
    return path.is_file() or any(path.iterdir())


def _unpack(source: Path, staging: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, staging, copy_function=copy_sparse)
        return
    if not source.is_file() or not tarfile.is_tarfile(source):
        raise MissingPath(f"{source} is neither a backup folder nor a .tar.gz backup")
    try:
        with tarfile.open(source, "r:*") as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths, '..', devices, outside links
    except tarfile.TarError as error:
        raise InvalidInput(f"{source}: refused archive member: {error}") from error
    holes = staging / TRAILING_HOLES
    if holes.is_file():
        for name, size in json.loads(holes.read_text(encoding="utf-8")).items():
            target = (staging / name).resolve()
            if staging.resolve() not in target.parents:
                raise InvalidInput(f"{source}: {TRAILING_HOLES} names a path outside the backup: {name!r}")
            os.truncate(target, int(size))
        holes.unlink()


def snapshot_server(backend: QdrantBackend, collections: Iterable[str] = COLLECTIONS) -> Backup:
    """Have the server snapshot each existing collection; the snapshots stay on the server."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    snapshots: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for name in collections:
        store = backend.collection(name)
        if not store.exists():
            continue
        counts[name] = store.count()
        snapshots.append({"collection": store.collection_name, **store.snapshot()})
    return Backup(Path(backend.where), "server", created, counts, (), tuple(snapshots))


def _backup_through_owner(settings: Settings, dest: Path, archive: bool, locked: StoreLocked) -> Backup:
    """While `topics serve` owns the store, the copy has to be taken inside it."""
    try:
        owner = RemoteBackend(settings.data_dir)
    except OwnerUnavailable:
        raise locked from None
    try:
        with contextlib.suppress(KeyError):
            done = owner.call_owner("backup", str(dest), archive)
            return _from_dict(done)
        raise StoreLocked(
            f"topics serve (pid {owner.owner_pid}) owns {settings.data_dir} and takes no backups; stop it "
            "(it flushes on exit) and run topics backup again"
        )
    finally:
        owner.close()


def _from_dict(data: dict[str, Any]) -> Backup:
    return Backup(
        Path(data["path"]),
        data["kind"],
        data["created"],
        dict(data["counts"]),
        tuple(data["contents"]),
        tuple(data["snapshots"]),
        int(data["size_bytes"]),
    )
