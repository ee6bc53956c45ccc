"""`topics migrate`: copy the index to another store with the payload indexes topics rely on."""

from __future__ import annotations

from indexer.index import Index
from indexer.items import ITEM_INDEXES
from indexer.migrate import MigrateReport, migrate, open_target
from indexer.store.base import ITEMS, TOPICS
from topics import catalog
from topics.online.pending import ONLINE_INDEXES

# Every payload index of a store, by collection: ingest's, the topic slots', the online assigner's.
STORE_INDEXES = {
    ITEMS: {**ITEM_INDEXES, **catalog.ASSIGNMENT_INDEXES, **ONLINE_INDEXES},
    TOPICS: catalog.TOPIC_INDEXES,
}


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
            indexes=STORE_INDEXES,
            last={"topics": ("kind", "pointer")},
            prune=prune,
        )
    finally:
        dst.close()
        if source:
            src.close()
