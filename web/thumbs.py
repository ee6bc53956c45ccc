"""Thumbnails of stored items, made from the picture recorded at ingest and cached under the data dir.

The picture is the item's own payload `path` or `url`, read from the store, never anything the request
names. Files are decoded by `indexer.images` (bomb limits; SVG through the safe renderer) and URLs are
fetched through the guarded `indexer.fetch.ImageFetcher`; only re-encoded pixels (a JPEG) reach the
browser. The cache keeps the newest files up to `web.thumb_cache_mb`, evicting the oldest.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from pathlib import Path
from typing import Any

from indexer.config import Settings
from indexer.fetch import FetchError, ImageFetcher
from indexer.images import BadImage, decode_image

log = logging.getLogger(__name__)

THUMBS_DIR = "thumbs"


class NoPicture(LookupError):
    """The item has no picture (a caption-only item): the page shows its caption instead."""


class Thumbnails:
    """Make, cache and evict thumbnails; thread-safe (pages ask from a thread pool)."""

    def __init__(self, settings: Settings) -> None:
        self.root = settings.data_dir / THUMBS_DIR
        self.side = settings.web.thumb_side
        self.limit = int(settings.web.thumb_cache_mb * 1024 * 1024)
        self.max_pixels = settings.ingest.max_image_pixels
        self.max_bytes = settings.fetch.max_bytes
        self._fetch_settings = settings.fetch
        self._fetcher: ImageFetcher | None = None
        self._lock = threading.Lock()
        self._total: int | None = None

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()

    def get(self, item_id: str, payload: dict[str, Any]) -> bytes | None:
        """The JPEG thumbnail of a stored item (None: its picture cannot be read or decoded)."""
        path, url = payload.get("path"), payload.get("url")
        if not path and not url:
            raise NoPicture(f"item {item_id} has no picture")
        version = payload.get("sha256") or payload.get("sig") or ""
        key = hashlib.sha256(f"{item_id}|{version}|{self.side}".encode()).hexdigest()[:40]
        cached = self.root / key[:2] / f"{key}.jpg"
        try:
            data = cached.read_bytes()
            os.utime(cached)  # recently used: evicted last
            return data
        except OSError:
            pass
        original = self._original(str(path) if path else None, str(url) if url else None)
        if original is None:
            return None
        data = self._encode(original)
        if data is not None:
            self._store(cached, data)
        return data

    def original(self, payload: dict[str, Any]) -> bytes | None:
        """The stored picture's bytes (its recorded path, or its URL through the guarded fetcher)."""
        path, url = payload.get("path"), payload.get("url")
        return self._original(str(path) if path else None, str(url) if url else None)

    def tile(self, path: str | None, root: Path) -> bytes | None:
        """A topic's tile, re-encoded; only a file inside `root` (the data dir) counts."""
        if not path:
            return None
        try:
            source = Path(path).resolve(strict=True)
            if not source.is_relative_to(root.resolve()) or not source.is_file():
                return None
            stat = source.stat()
        except OSError:
            return None
        key = hashlib.sha256(f"tile|{source}|{stat.st_mtime_ns}|{self.side}".encode()).hexdigest()[:40]
        cached = self.root / key[:2] / f"{key}.jpg"
        try:
            return cached.read_bytes()
        except OSError:
            pass
        original = self._original(str(source), None)
        data = None if original is None else self._encode(original)
        if data is not None:
            self._store(cached, data)
        return data

    def _original(self, path: str | None, url: str | None) -> bytes | None:
        if path:
            try:
                source = Path(path)
                if not source.is_file() or source.stat().st_size > self.max_bytes:
                    return None
                return source.read_bytes()
            except OSError:
                return None
        assert url is not None
        try:
            return self._guarded_fetcher().fetch(url)
        except FetchError as error:
            log.info("thumbnail of %s not fetched: %s", url[:200], error)
            return None

    def _guarded_fetcher(self) -> ImageFetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = ImageFetcher.from_settings(self._fetch_settings)
            return self._fetcher

    def _encode(self, original: bytes) -> bytes | None:
        try:
            picture = decode_image(original, max_pixels=self.max_pixels, draft_size=self.side).image
        except BadImage:
            return None
        picture.thumbnail((self.side, self.side))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=80)
        return buffer.getvalue()

    def _store(self, target: Path, data: bytes) -> None:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_suffix(f".{threading.get_ident()}.part")
            part.write_bytes(data)
            part.replace(target)
        except OSError as error:  # a full disk loses the cache entry, not the page
            log.warning("thumbnail cache: %s", error)
            return
        with self._lock:
            if self._total is None:
                self._total = sum(size for _, size, _ in self._files())
            else:
                self._total += len(data)
            if self._total > self.limit:
                self._evict()

    def _files(self) -> list[tuple[float, int, Path]]:
        found = []
        for file in self.root.glob("*/*.jpg"):
            try:
                stat = file.stat()
            except OSError:
                continue
            found.append((stat.st_mtime, stat.st_size, file))
        return found

    def _evict(self) -> None:
        """Delete the least recently used files until the cache holds at most 90 % of its limit."""
        files = sorted(self._files())
        total = sum(size for _, size, _ in files)
        for _, size, file in files:
            if total <= self.limit * 0.9:
                break
            try:
                file.unlink()
                total -= size
            except OSError:
                continue
        self._total = total

    def size(self) -> int:
        """Bytes the cache holds now."""
        return sum(size for _, size, _ in self._files())
