"""First-run cost: the first `topics recluster` of a fresh store against the second, as a new user runs them.

The first run used to embed every corpus term with the CLIP text tower for keywords (267 s against
11 s for 1,906 items); now a run embeds at most `represent.vocabulary_budget` new terms and later runs
reuse them. Two corpora, each ingested into a fresh data dir, then `topics recluster` run twice as
separate processes (each loads the model, as a user's commands do):

- ``demo``: `make demo`'s corpus (folders and a 4CAT-style manifest), its settings (random CLIP
  weights when no hub is reachable, as here);
- ``captions``: `--n` items (2,000) with captions drawn from a 20-topic, ~6,000-word vocabulary and
  CLIP-sized image/text vectors given in the manifest (so ingest is quick), random ViT-B-32 weights.

Prints `first_recluster_<corpus>`, `second_recluster_<corpus>` (s) and their ratio (target ≤ 3).

Run: .venv/bin/python bench/first_run.py [--n 2000] [--only demo|captions]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from demo.dataset import make_demo_set  # noqa: E402

TARGET = 3.0
DIM = 512  # ViT-B-32's embedding size


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPICS_")}
    env.update(
        TOPICS_DATA_DIR=str(data_dir),
        TOPICS_CONFIG=str(data_dir / "none.toml"),
        TOPICS_MODEL__ARCH="ViT-B-32",
        TOPICS_MODEL__PRETRAINED="none",
        TOPICS_DEVICE=os.environ.get("TOPICS_DEVICE", "cpu"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def _topics(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cli", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"topics {' '.join(args)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def first_and_second(name: str, sources: list[Path], env: dict[str, str]) -> None:
    _topics(["ingest", *map(str, sources)], env)
    first = _topics(["recluster", "--json"], env)
    second = _topics(["recluster", "--json"], env)
    print(f"first_recluster_{name}: {first:.1f} s")
    print(f"second_recluster_{name}: {second:.1f} s")
    print(f"first_run_ratio_{name}: {first / second:.2f} (target ≤ {TARGET:.0f})")


# ---- the caption corpus ----


def _word(rng: random.Random) -> str:
    syllables = rng.randint(2, 4)
    return "".join(rng.choice("bcdfghklmnprstvz") + rng.choice("aeiou") for _ in range(syllables))


def write_caption_corpus(path: Path, n: int, seed: int = 0) -> None:
    """`n` rows: id, body (20 topics' words mixed with common words, Zipf-like), two vectors."""
    rng = random.Random(seed)
    common = [_word(rng) for _ in range(3000)]
    own = [[_word(rng) for _ in range(150)] for _ in range(20)]
    np_rng = np.random.default_rng(seed)
    centres = np_rng.standard_normal((20, DIM))
    weights = [1 / (r + 1) for r in range(3000)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body", "vector_image", "vector_text"])
        for i in range(n):
            topic = i % 20
            words = rng.choices(common, weights, k=rng.randint(8, 16))
            words += rng.choices(own[topic], k=rng.randint(6, 12))
            rng.shuffle(words)
            image = centres[topic] + 0.8 * np_rng.standard_normal(DIM)
            text = centres[topic] + 0.8 * np_rng.standard_normal(DIM)
            writer.writerow([f"p{i}", " ".join(words), _vector(image), _vector(text)])


def _vector(v: np.ndarray) -> str:
    return json.dumps([round(float(x), 5) for x in v / np.linalg.norm(v)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--only", choices=("demo", "captions"))
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-first-run-") as tmp:
        root = Path(tmp)
        if opts.only in (None, "demo"):
            demo = make_demo_set(root / "demo")
            env = _env(
                root / "demo" / "data",
                TOPICS_INGEST__VIEWS='["image","text","caption"]',
                TOPICS_CLUSTER__VIEW="caption",
            )
            first_and_second("demo", [demo / "inbox", demo / "posts.csv"], env)
        if opts.only in (None, "captions"):
            (root / "captions").mkdir()
            manifest = root / "captions" / "posts.csv"
            write_caption_corpus(manifest, opts.n)
            first_and_second("captions", [manifest], _env(root / "captions" / "data"))


if __name__ == "__main__":
    main()
