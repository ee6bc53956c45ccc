"""One process owns an embedded store; other processes reach it through a local socket.

The embedded engines lock their directory, so while `topics serve` owns the data dir a second process
could not open it. Instead the owner listens on a Unix socket in the data dir and other processes get a
`RemoteBackend` whose collections forward every `VectorStore` call to the owner.

Security: the socket and its key file are user-only (0600); every connection must prove the key
(HMAC challenge of `multiprocessing.connection`) and come from the same uid (SO_PEERCRED). Messages are
pickled, which is safe only because of those two checks.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import secrets
import socket
import struct
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import AuthenticationError, Client, Connection, Listener
from pathlib import Path
from typing import Any

from indexer.atomic import write_bytes_atomic
from indexer.config import Settings
from indexer.store import open_backend
from indexer.store.base import (
    COLLECTIONS,
    Backend,
    CollectionSchema,
    Filter,
    IdentityMismatch,
    Point,
    PointId,
    ScoredPoint,
    StoreDamaged,
    StoreError,
    StoreLocked,
    VectorStore,
)

log = logging.getLogger(__name__)

CONTROL_FILE = "control.json"
KEY_FILE = "control.key"
_ERRORS: dict[str, type[Exception]] = {
    "IdentityMismatch": IdentityMismatch,
    "StoreLocked": StoreLocked,
    "StoreDamaged": StoreDamaged,
    "StoreError": StoreError,
    "ValueError": ValueError,
    "KeyError": KeyError,
}


class OwnerUnavailable(StoreError):
    """No live owner answers on the data dir's control socket."""


def _socket_path(data_dir: Path) -> Path:
    """Unix socket paths are limited to ~100 bytes; long data dirs get a short path in the temp dir."""
    wanted = data_dir / "control.sock"
    if len(str(wanted)) < 100:
        return wanted
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"topics-{os.getuid()}-{digest}.sock"


def _peer_uid(conn: Connection) -> int:
    sock = socket.socket(fileno=os.dup(conn.fileno()))
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    finally:
        sock.close()
    return struct.unpack("3i", creds)[1]


class StoreServer:
    """Serves a backend to other processes of the same user until `close()`.

    `extra` maps command names to callables the owner offers besides the store (e.g. `status`).
    """

    def __init__(self, backend: Backend, data_dir: Path, extra: Mapping[str, Any] | None = None) -> None:
        self.backend = backend
        self.data_dir = data_dir
        self.extra = dict(extra or {})
        self._key = secrets.token_bytes(32)
        self._path = _socket_path(data_dir)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        old_umask = os.umask(0o177)  # the socket is created user-only, with no window
        try:
            self._listener = Listener(str(self._path), family="AF_UNIX", authkey=self._key)
        finally:
            os.umask(old_umask)
        write_bytes_atomic(data_dir / KEY_FILE, self._key.hex().encode(), mode=0o600)
        info = {"socket": str(self._path), "pid": os.getpid()}
        write_bytes_atomic(data_dir / CONTROL_FILE, json.dumps(info).encode(), mode=0o600)
        self._closed = threading.Event()
        self._scrolls: dict[int, Iterator[list[Point]]] = {}
        self._ids = itertools.count(1)
        self._thread = threading.Thread(target=self._accept_loop, name="store-server", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn = self._listener.accept()
            except AuthenticationError:
                log.warning("control socket: refused a connection with a wrong key")
                continue
            except OSError:
                return  # listener closed
            if _peer_uid(conn) != os.getuid():
                log.warning("control socket: refused a connection from another user")
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="store-conn").start()

    def _serve(self, conn: Connection) -> None:
        with conn:
            while True:
                try:
                    request = conn.recv()
                except (EOFError, OSError):
                    return
                conn.send(self._answer(request))

    def _answer(self, request: tuple) -> tuple:
        try:
            return ("ok", self._dispatch(*request))
        except Exception as error:  # the caller gets the error; the owner keeps serving
            return ("err", type(error).__name__, str(error))

    def _dispatch(self, target: str, method: str, args: tuple, kwargs: dict) -> Any:
        if target == "":
            return self.extra[method](*args, **kwargs)
        store = self.backend.collection(target)
        if method == "scroll_open":
            handle = next(self._ids)
            self._scrolls[handle] = store.scroll(*args, **kwargs)
            return handle
        if method == "scroll_next":
            batch = next(self._scrolls[args[0]], None)
            if batch is None:
                self._scrolls.pop(args[0], None)
            return batch
        if method == "scroll_close":
            self._scrolls.pop(args[0], None)
            return None
        if method in {"close"}:
            return None  # clients never close the owner's store
        return getattr(store, method)(*args, **kwargs)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for name in (CONTROL_FILE, KEY_FILE):
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / name).unlink()
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()


class _Channel:
    """One authenticated connection to the owner; calls are serialised."""

    def __init__(self, data_dir: Path, timeout_s: float = 5.0) -> None:
        try:
            info = json.loads((data_dir / CONTROL_FILE).read_text())
            key = bytes.fromhex((data_dir / KEY_FILE).read_text().strip())
        except (FileNotFoundError, ValueError) as error:
            raise OwnerUnavailable(f"no store owner for {data_dir}") from error
        self.owner_pid = int(info["pid"])
        try:
            self._conn = Client(info["socket"], family="AF_UNIX", authkey=key)
        except (OSError, AuthenticationError) as error:
            raise OwnerUnavailable(
                f"the store owner (pid {self.owner_pid}) does not answer: {error}"
            ) from error
        self._lock = threading.Lock()

    def call(self, target: str, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            try:
                self._conn.send((target, method, args, kwargs))
                answer = self._conn.recv()
            except (EOFError, OSError) as error:
                raise StoreError(f"lost the connection to the store owner (pid {self.owner_pid})") from error
        if answer[0] == "ok":
            return answer[1]
        raise _ERRORS.get(answer[1], StoreError)(answer[2])

    def close(self) -> None:
        self._conn.close()


class RemoteStore(VectorStore):
    """A collection of the owner's store, used through the control socket."""

    def __init__(self, channel: _Channel, name: str) -> None:
        self.name = name
        self._channel = channel

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.call(self.name, method, *args, **kwargs)

    def ensure(self, schema: CollectionSchema) -> None:
        self._call("ensure", schema)

    def identity(self) -> dict[str, Any] | None:
        return self._call("identity")

    def exists(self) -> bool:
        return self._call("exists")

    def upsert(self, points: Sequence[Point]) -> None:
        self._call("upsert", list(points))

    def set_payload(self, ids: Sequence[PointId], payload: Mapping[str, Any]) -> None:
        self._call("set_payload", list(ids), dict(payload))

    def set_payloads(self, updates: Mapping[PointId, Mapping[str, Any]]) -> None:
        self._call("set_payloads", {k: dict(v) for k, v in updates.items()})

    def delete(self, ids: Sequence[PointId]) -> None:
        self._call("delete", list(ids))

    def delete_where(self, where: Filter) -> None:
        self._call("delete_where", where)

    def retrieve(
        self,
        ids: Sequence[PointId],
        *,
        vectors: bool | Sequence[str] = False,
        payload: bool | Sequence[str] = True,
    ):
        return self._call("retrieve", list(ids), vectors=vectors, payload=payload)

    def existing(self, ids: Sequence[PointId]) -> set[PointId]:
        return self._call("existing", list(ids))

    def scroll(self, where: Filter | None = None, *, vectors=False, payload=True, batch=1024):
        handle = self._call("scroll_open", where, vectors=vectors, payload=payload, batch=batch)
        try:
            while (page := self._call("scroll_next", handle)) is not None:
                yield page
        finally:
            with contextlib.suppress(StoreError):
                self._call("scroll_close", handle)

    def search(self, vector_name, vector, *, limit=10, where=None, vectors=False, score_threshold=None):
        return self._call(
            "search",
            vector_name,
            vector,
            limit=limit,
            where=where,
            vectors=vectors,
            score_threshold=score_threshold,
        )

    def count(self, where: Filter | None = None) -> int:
        return self._call("count", where)

    def flush(self) -> None:
        self._call("flush")

    def optimize(self) -> None:
        self._call("optimize")

    def close(self) -> None:
        """The owner keeps its store open."""


class RemoteBackend(Backend):
    """The owner's backend, seen from another process."""

    def __init__(self, data_dir: Path) -> None:
        self._channel = _Channel(data_dir)
        self.owner_pid = self._channel.owner_pid
        self._stores: dict[str, RemoteStore] = {}

    def collection(self, name: str) -> VectorStore:
        if name not in self._stores:
            self._stores[name] = RemoteStore(self._channel, name)
        return self._stores[name]

    def call_owner(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """Run one of the owner's extra commands (e.g. its status)."""
        return self._channel.call("", command, *args, **kwargs)

    def close(self) -> None:
        self._channel.close()


class OwnerBackend(Backend):
    """The owner's backend as seen by a command the owner runs on another process's behalf.

    It behaves like a `RemoteBackend` (the owner's extra commands answer `call_owner`) without the
    socket round trips, and closing it leaves the owner's store open.
    """

    def __init__(self, server: StoreServer) -> None:
        self._server = server
        self.owner_pid = os.getpid()

    def collection(self, name: str) -> VectorStore:
        return self._server.backend.collection(name)

    def call_owner(self, command: str, *args: Any, **kwargs: Any) -> Any:
        return self._server.extra[command](*args, **kwargs)

    def close(self) -> None:
        pass  # the owner's store stays open


def open_backend_or_owner(settings: Settings, *, damaged_ok: bool = False) -> Backend:
    """The configured backend; when another process owns the embedded store, a `RemoteBackend` to it.

    A server backend is always opened directly (every process may connect to a server). A damaged
    collection raises `StoreDamaged`, unless `damaged_ok` (for `topics status`): then it stays unopened
    and raises again when it is used.
    """
    backend = open_backend(settings)
    if settings.store.kind != "edge":
        return backend
    try:
        for name in COLLECTIONS:
            try:
                backend.collection(name)  # takes the directory locks now, not halfway through a command
            except StoreDamaged:
                if not damaged_ok:
                    backend.close()
                    raise
    except StoreLocked as locked:
        backend.close()
        try:
            return RemoteBackend(settings.data_dir)
        except OwnerUnavailable:
            raise locked from None
    return backend


__all__ = [
    "OwnerBackend",
    "OwnerUnavailable",
    "RemoteBackend",
    "RemoteStore",
    "ScoredPoint",
    "StoreServer",
    "open_backend_or_owner",
]
