"""Decoding cost of a typical 640x480 photo JPEG, full scale versus drafted for a 224-px model.

Prints `name: value unit (target)` lines. Run: .venv/bin/python bench/bench_decode.py [repeats]
"""

from __future__ import annotations

import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from PIL import Image

from indexer.images import decode_image

MAX_PIXELS = 89_478_485


def photo_jpeg() -> bytes:
    """A gradient with noise: compresses like a photo, unlike a flat colour."""
    base = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    noise = Image.effect_noise((640, 480), 40).convert("RGB")
    buffer = io.BytesIO()
    Image.blend(base, noise, 0.4).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def per_image_ms(data: bytes, repeats: int, draft_size: int | None) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        decode_image(data, max_pixels=MAX_PIXELS, draft_size=draft_size)
    return (time.perf_counter() - started) / repeats * 1000


def pooled_per_second(data: bytes, repeats: int, workers: int) -> float:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: decode_image(data, max_pixels=MAX_PIXELS, draft_size=224), range(repeats)))
        return repeats / (time.perf_counter() - started)


def main(repeats: int) -> None:
    data = photo_jpeg()
    full = per_image_ms(data, repeats, None)
    drafted = per_image_ms(data, repeats, 224)
    workers = os.cpu_count() or 1
    print(f"decode_jpeg_640x480_full: {full:.2f} ms/image")
    print(f"decode_jpeg_640x480_draft224: {drafted:.2f} ms/image (target: faster than full)")
    print(f"decode_draft_speedup: {full / drafted:.1f} x (target > 1.5 x)")
    print(f"decode_pool_{workers}_threads: {pooled_per_second(data, repeats, workers):.0f} images/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
