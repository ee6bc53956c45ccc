"""Small builders shared by tests: corpora on disk and a tiny CLIP configured through the environment."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
TINY_CLIP_CONFIG = ROOT / "tests" / "models" / "tiny-clip.json"

# Captions of three unmistakable stories: real sentence embeddings must give three topics.
STORIES = {
    "tractor": [
        "farmers drive tractors into the city to protest fuel taxes",
        "a convoy of tractors blocks the motorway as farmers protest",
        "angry farmers protest with their tractors outside parliament",
        "tractors fill the square during the farmers demonstration",
    ],
    "cat": [
        "my cat fell asleep on the warm laptop keyboard",
        "the kitten chases a red laser dot around the kitchen",
        "our fluffy cat sleeps in a cardboard box all day",
        "a grumpy cat stares at the dog from the sofa",
    ],
    "flood": [
        "heavy rain floods the streets and cars are stuck in water",
        "the river burst its banks and flooded the town centre",
        "rescue boats evacuate families from flooded houses",
        "the storm brought record rainfall and flooded the subway",
    ],
}


def use_tiny_clip(monkeypatch: pytest.MonkeyPatch, views: str = '["image","text"]') -> None:
    """Configure a tiny randomly initialised CLIP for code that builds models from Settings."""
    monkeypatch.setenv("TOPICS_MODEL__CONFIG_FILE", str(TINY_CLIP_CONFIG))
    monkeypatch.setenv("TOPICS_MODEL__ARCH", "tiny-clip")
    monkeypatch.setenv("TOPICS_MODEL__PRETRAINED", "none")
    monkeypatch.setenv("TOPICS_INGEST__VIEWS", views)
    monkeypatch.setenv("TOPICS_INGEST__BATCH_SIZE", "8")


def tiny_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `topics` subprocess using the tiny model and `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOPICS_")}
    env.update(
        TOPICS_DATA_DIR=str(data_dir),
        TOPICS_CONFIG=str(data_dir.parent / "none.toml"),
        TOPICS_MODEL__CONFIG_FILE=str(TINY_CLIP_CONFIG),
        TOPICS_MODEL__ARCH="tiny-clip",
        TOPICS_MODEL__PRETRAINED="none",
        TOPICS_INGEST__BATCH_SIZE="8",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(ROOT),
        TOPICS_WEB__ENABLED="false",  # tests/e2e/test_web.py turns it on, on a free port
    )
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def start_serve(env: dict[str, str], args: list[str] = ()) -> subprocess.Popen:
    """`topics serve ARGS` as a subprocess with this environment, once it owns the data dir."""
    data_dir = Path(env["TOPICS_DATA_DIR"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", *args],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: owner_pid(data_dir) == proc.pid or proc.poll() is not None, 120, "serve to start")
    assert proc.poll() is None, proc.stderr.read()
    return proc


def owner_pid(data_dir: Path) -> int | None:
    """The pid in the control file (a kill -9 leaves a stale one behind until the next serve starts)."""
    try:
        return json.loads((data_dir / "control.json").read_text())["pid"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def closed_port() -> int:
    """A port nothing listens on: bind one, then close it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def draw_image(path: Path, seed: int, size: tuple[int, int] = (96, 64), fmt: str = "JPEG") -> Path:
    """A distinct picture per seed (so content ids differ)."""
    rng = random.Random(seed)
    img = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle(
            (x, y, x + 20, y + 15), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256))
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt)
    return path


def make_folder(root: Path, n_pairs: int = 6, n_image_only: int = 2, n_caption_only: int = 2) -> Path:
    """Pairs (some nested), image-only and caption-only items."""
    for i in range(n_pairs):
        sub = root / ("nested" if i % 2 else "")
        draw_image(sub / f"pair{i}.jpg", seed=i)
        (sub / f"pair{i}.txt").write_text(f"caption number {i} about tractors", encoding="utf-8")
    for i in range(n_image_only):
        draw_image(root / f"alone{i}.png", seed=100 + i, fmt="PNG")
    for i in range(n_caption_only):
        (root / f"words{i}.txt").write_text(f"only words here, story {i}", encoding="utf-8")
    return root


def tiny_edge_settings(data_dir: Path, **sections: object):
    """Settings of an embedded store with the tiny CLIP (image and text views) and small clusters;
    `sections` add or replace whole sections (``fetch={...}``, ``web={...}``)."""
    from indexer.config import load_settings

    base: dict[str, object] = {
        "store": {"backend": "edge"},
        "model": {"config_file": TINY_CLIP_CONFIG, "arch": "tiny-clip", "pretrained": "none"},
        "ingest": {"views": ["image", "text"], "batch_size": 8},
        "cluster": {"view": "image", "min_cluster_size": 3},
    }
    return load_settings(data_dir=data_dir, **{**base, **sections})
