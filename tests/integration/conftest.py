"""Store fixtures: the same contract runs against every backend this machine can start.

Backends: ``edge`` (Qdrant Edge in a temp dir), ``memory`` (qdrant-client ``:memory:``), ``local``
(qdrant-client local mode on a path) and ``server`` (a real Qdrant in Docker via testcontainers, marked
``docker``; skipped with its reason when no Docker engine answers).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.store import EdgeBackend, QdrantBackend
from indexer.store.base import Backend

QDRANT_IMAGE = "qdrant/qdrant:v1.18.0"  # >= 1.18: adding a named vector to a collection
QDRANT_API_KEY = "contract-test-key"

BACKEND_KINDS = ["edge", "memory", "local", pytest.param("server", marks=pytest.mark.docker)]


@pytest.fixture(scope="session")
def qdrant_server_url() -> Iterator[str]:
    """A Qdrant server in Docker for the whole session, with an API key."""
    import docker

    try:
        docker.from_env().ping()
    except Exception as exc:
        pytest.skip(f"no Docker engine answers ({type(exc).__name__})")
    from testcontainers.community.qdrant import QdrantContainer

    with QdrantContainer(image=QDRANT_IMAGE, api_key=QDRANT_API_KEY) as container:
        yield f"http://{container.rest_host_address}"


BackendFactory = Callable[[], Backend]


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_dir(tmp_path: Path) -> Iterator[Path]:
    """A scratch dir in RAM where there is one: the contract matrix then costs no fsyncs.

    (qdrant-client's local mode commits every point to SQLite; on a real disk 2,500 points take a
    minute.) Persistence, locking and durability tests use `tmp_path` on disk instead.
    """
    shm = Path("/dev/shm")
    if not (shm.is_dir() and shm.stat().st_mode & 0o002):
        yield tmp_path / "store"
        return
    root = Path(tempfile.mkdtemp(prefix="topics-store-", dir=shm))
    try:
        yield root / "store"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_backend(
    backend_kind: str, store_dir: Path, request: pytest.FixtureRequest
) -> Iterator[BackendFactory]:
    """Opens backends of `backend_kind` over one storage location (a reopen sees the same data)."""
    opened: list[Backend] = []
    prefix = f"t{uuid.uuid4().hex[:10]}"
    url = request.getfixturevalue("qdrant_server_url") if backend_kind == "server" else None

    def factory() -> Backend:
        backend = _backend(backend_kind, store_dir, prefix, url)
        opened.append(backend)
        return backend

    yield factory
    for backend in reversed(opened):
        backend.close()


def _backend(kind: str, root: Path, prefix: str, url: str | None) -> Backend:
    if kind == "edge":
        return EdgeBackend(root)
    if kind == "memory":
        return QdrantBackend.memory(prefix=prefix)
    if kind == "local":
        return QdrantBackend.local(root, prefix=prefix)
    assert url is not None
    return QdrantBackend.server(url, QDRANT_API_KEY, prefix=prefix)


@pytest.fixture
def backend(make_backend: BackendFactory) -> Backend:
    return make_backend()
