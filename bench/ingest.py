"""Ingest throughput: model-bound rate vs end-to-end rate, and the no-op re-ingest rate.

    python bench/ingest.py [--n 512] [--batch 32] [--arch ViT-B-32] [--precision auto]

On N generated 640×480 JPEGs with captions, for the same model and batch size:
- model-bound rate: forward passes (image and text towers) on tensors that are already decoded;
- end-to-end rate: files on disk to flushed points in the embedded store (`topics ingest`'s path);
- their ratio (target ≥ 0.9), and the rate of a no-op re-ingest of the same folder (target ≥ 2,000/s).
Weights are random when none are available here (the speed of a forward pass does not depend on them).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.config import Precision, load_settings
from indexer.images import decode_image
from indexer.index import Index
from indexer.ingest import ingest_paths

WORDS = ("farmers tractor protest beach sunset cat football goal flood rain market food city night").split()


def make_corpus(folder: Path, n: int, seed: int = 0) -> None:
    """Photo-like JPEGs (smooth gradients and shapes, so they compress like photos) with captions."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = np.linspace(0, 255, 640, dtype=np.float32)
    for i in range(n):
        tint = np.array([rng.random(), rng.random(), rng.random()], dtype=np.float32)
        rows = (base[None, :, None] * tint[None, None, :] + rng.randrange(60)).repeat(480, axis=0)
        img = Image.fromarray(np.clip(rows, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(12):
            x, y, r = rng.randrange(640), rng.randrange(480), rng.randrange(10, 90)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
        img.filter(ImageFilter.GaussianBlur(1.5)).save(folder / f"img{i:05d}.jpg", quality=90)
        caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 20)))
        (folder / f"img{i:05d}.txt").write_text(caption, encoding="utf-8")


def model_bound_rate(index: Index, folder: Path, batch: int) -> float:
    """Items/s of the forward passes alone, on tensors decoded and preprocessed beforehand."""
    clip = index.clip
    files = sorted(folder.glob("*.jpg"))
    pixels = [
        clip.preprocess(decode_image(f, max_pixels=10**9, draft_size=clip.image_size).image) for f in files
    ]
    captions = [f.with_suffix(".txt").read_text() for f in files]
    clip.embed_pixels(np.stack(pixels[:batch]))  # warm-up
    clip.embed_texts(captions[:batch])
    started = time.perf_counter()
    for i in range(0, len(files), batch):
        clip.embed_pixels(np.stack(pixels[i : i + batch]))
        clip.embed_texts(captions[i : i + batch])
    return len(files) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--pretrained", default=os.environ.get("TOPICS_MODEL__PRETRAINED", "none"))
    parser.add_argument("--precision", default="auto", choices=get_args(Precision), help="model.precision")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        make_corpus(root / "in", opts.n)
        settings = load_settings(
            data_dir=root / "data",
            model={"arch": opts.arch, "pretrained": opts.pretrained, "precision": opts.precision},
            ingest={"batch_size": opts.batch, "views": ("image", "text")},
        )
        with Index(settings) as index:
            clip = index.clip
            where = f"{clip.device} in {clip.precision}"
            print(f"model: {clip.model_id} on {where}, batch {opts.batch}, {opts.n} files")
            print(f"torch threads: {__import__('torch').get_num_threads()}")
            warm = ingest_paths(index, [make_warmup(root)])  # loads the model, creates the collection
            assert warm.failed == 0
            model_rate = model_bound_rate(index, root / "in", opts.batch)
            first = ingest_paths(index, [root / "in"])
            e2e_rate = (first.ingested + first.updated) / first.seconds
            again = ingest_paths(index, [root / "in"])
            noop_rate = again.skipped / again.seconds
        print(f"model-bound rate: {model_rate:.1f} items/s")
        print(f"end-to-end rate: {e2e_rate:.1f} items/s")
        print(f"ratio: {e2e_rate / model_rate:.2f} (target >= 0.9)")
        print(f"no-op re-ingest rate: {noop_rate:.0f} items/s (target >= 2000)")
        print(f"failed: {first.failed + again.failed} items (target 0)")
    return 0


def make_warmup(root: Path) -> Path:
    folder = root / "warmup"
    make_corpus(folder, 4, seed=99)
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
