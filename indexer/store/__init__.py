"""Vector stores: the `VectorStore` protocol and the backends that implement it.

`open_backend(settings)` picks one from ``settings.store``: the embedded Qdrant Edge shards under the data
dir (default), a Qdrant server (``TOPICS_STORE__URL``), or qdrant-client's in-memory mode.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.config import MIN_FREE_MB, CollectionTuning, Settings, VectorDatatype
from indexer.errors import InvalidInput
from indexer.store.base import (
    Backend,
    CollectionSchema,
    Filter,
    IdentityMismatch,
    IndexType,
    Point,
    PointId,
    ScoredPoint,
    StoreDamaged,
    StoreError,
    StoreLocked,
    VectorStore,
)

if TYPE_CHECKING:
    from indexer.store.edge import EdgeStore
    from indexer.store.qdrant import QdrantBackend, QdrantStore

_LAZY = {
    "EdgeStore": "indexer.store.edge",
    "QdrantBackend": "indexer.store.qdrant",
    "QdrantStore": "indexer.store.qdrant",
}


def __getattr__(name: str) -> Any:
    """Engines load on first use: a command that talks to `topics serve` never imports qdrant-client."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Backend",
    "CollectionSchema",
    "EdgeBackend",
    "EdgeStore",
    "Filter",
    "IdentityMismatch",
    "IndexType",
    "Point",
    "PointId",
    "QdrantBackend",
    "QdrantStore",
    "ScoredPoint",
    "StoreDamaged",
    "StoreError",
    "StoreLocked",
    "VectorStore",
    "open_backend",
]

_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def _checked_name(name: str) -> str:
    if not _COLLECTION_NAME.match(name):
        raise InvalidInput(f"collection name must be letters, digits, '_' or '-' (at most 64), got {name!r}")
    return name


class EdgeBackend:
    """Embedded collections, one Qdrant Edge shard directory each under `root` (``items/``, ``topics/``)."""

    def __init__(
        self, root: Path, *, min_free_mb: int = MIN_FREE_MB, datatype: VectorDatatype = "float16"
    ) -> None:
        self.root = Path(root)
        self.min_free_mb = min_free_mb  # writes refused below this much free space (indexer.diskspace)
        self.datatype = datatype  # element type of the collections this backend creates
        self._stores: dict[str, EdgeStore] = {}

    def __repr__(self) -> str:
        return f"EdgeBackend(root={str(self.root)!r})"

    def collection(self, name: str) -> EdgeStore:
        """The store for `name`, opened (and its directory locked) on first use, then reused."""
        from indexer.store.edge import EdgeStore

        if name not in self._stores:
            path = self.root / _checked_name(name)
            self._stores[name] = EdgeStore(path, name, min_free_mb=self.min_free_mb, datatype=self.datatype)
        return self._stores[name]

    def close(self) -> None:
        stores, self._stores = list(self._stores.values()), {}
        for store in stores:
            store.close()


def open_backend(settings: Settings) -> Backend:
    """The backend `settings.store` names; a server needs ``store.url``."""
    store = settings.store
    if store.kind == "edge":
        return EdgeBackend(
            settings.data_dir / "store", min_free_mb=store.min_free_mb, datatype=store.vector_datatype
        )
    from indexer.store.qdrant import QdrantBackend

    if store.kind == "memory":
        return QdrantBackend.memory(prefix=store.prefix)
    if store.url is None:
        raise InvalidInput("store backend 'qdrant' needs a server URL: set TOPICS_STORE__URL")
    tuning = CollectionTuning(**store.model_dump(include=set(CollectionTuning.model_fields)))
    return QdrantBackend.server(
        store.url,
        store.api_key,
        prefix=store.prefix,
        timeout_s=store.timeout_s,
        tuning=tuning,
        ca_cert=store.ca_cert,
    )
