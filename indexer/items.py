"""Items (one image/caption pair) and their deterministic ids."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.store.base import IndexType

ITEM_INDEXES: dict[str, IndexType] = {  # payload indexes of every item, made at ingest
    "source": "keyword",
    "pending": "integer",  # 0/1: qdrant-edge-py 0.9.0 turns MatchValue(True) into 1, so no bools
    "sha256": "keyword",
    "created_at": "datetime",
    "picture_retry": "integer",  # 1: stored caption-only while its picture URL could not be fetched
}

ItemId = str

# A fixed namespace: ids must never change between releases, or re-ingest would duplicate.
NAMESPACE = uuid.UUID("6f1c2a52-3f8e-5d2b-9a57-2f0c7b9e4d10")
_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_str(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))`` without the `UUID` object (2 instead of 12 µs: a row's
    id is computed once per ingested row)."""
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = raw.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def id_from_source(namespace: str, source_id: str) -> ItemId:
    """The id of an item whose source names it (a manifest or feed `id`)."""
    return uuid5_str(f"src:{namespace}:{source_id}")


def id_from_content(image_sha256: str | None, caption: str | None, *, with_caption: bool) -> ItemId:
    """The id of an item known only by its content.

    Folder items are identified by their image alone (the sidecar caption is an editable attribute);
    anonymous manifest/feed rows by image and caption together; caption-only items by their text.
    """
    if image_sha256 is None and not caption:
        raise ValueError("an item needs an image or a caption")
    parts = []
    if image_sha256 is not None:
        parts.append(f"img:{image_sha256}")
    if caption and (with_caption or image_sha256 is None):
        parts.append(f"txt:{sha256_text(caption)}")
    return uuid5_str("|".join(parts))


@dataclass(frozen=True)
class Item:
    """One image/caption pair as a source yields it, before embedding.

    `image` is a local path or an http(s) URL; either `image` or `caption` may be missing.
    `origin` says where it came from for errors and the ledger (a path, or `manifest.csv:17`).
    `vectors` holds precomputed vectors by view name, when the source carries them.
    """

    source: str
    origin: str
    image: str | None = None
    caption: str | None = None
    source_id: str | None = None
    namespace: str = "default"
    created_at: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    with_caption_in_id: bool = True

    def __post_init__(self) -> None:
        if not self.image and not self.caption and not self.vectors:
            raise ValueError(f"{self.origin}: neither image nor caption")

    def item_id(self, image_sha256: str | None) -> ItemId:
        if self.source_id:
            return id_from_source(self.namespace, self.source_id)
        return id_from_content(image_sha256, self.caption, with_caption=self.with_caption_in_id)

    @property
    def known_id(self) -> ItemId | None:
        """The id when it does not depend on reading the image (cheap lookup before decoding)."""
        if self.source_id:
            return id_from_source(self.namespace, self.source_id)
        if not self.image:
            return self.item_id(None)
        return None
