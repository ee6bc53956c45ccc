"""`topics migrate`: copy the index to another store with the payload indexes topics rely on."""

from __future__ import annotations

from indexer.index import Index
from indexer.migrate import MigrateReport, migrate, open_target
from topics import catalog


def migrate_store(
    index: Index, to: str, *, source: str | None = None, api_key: str | None = None, prune: bool = False
) -> MigrateReport:
    """Copy items and topics from the configured store (or `source`) to `to`, then verify counts.

    The topics run pointer is copied last, so the destination never names a run it does not hold.
    """
    prefix = index.settings.store.prefix
    src = open_target(source, api_key=api_key, prefix=prefix) if source else index.backend
    dst = open_target(to, api_key=api_key, prefix=prefix)
    try:
        return migrate(
            src,
            dst,
            indexes={"items": catalog.ITEM_INDEXES, "topics": catalog.TOPIC_INDEXES},
            last={"topics": ("kind", "pointer")},
            prune=prune,
        )
    finally:
        dst.close()
        if source:
            src.close()
