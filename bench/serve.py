"""`topics serve` latency and sustained throughput on a watched folder.

    python bench/serve.py [--n 256] [--burst 32] [--arch ViT-B-32]

1. Batch baseline: `topics ingest` (the library call) over N files → items/s.
2. A real `topics serve --watch` subprocess on a fresh data dir; files are dropped in bursts (written
   to a hidden temp name, then renamed in, so each file is complete at a known instant). The bench polls
   the store through the service's socket and records when each item becomes searchable.
Prints the p50 and p95 from a file landing to its item being searchable (this includes the watcher's
settle time, `watch.settle_s`, printed beside it), and sustained throughput as a ratio of the batch rate
(target ≥ 0.9). The ratio means something when the bursts offer more than the model can take (the
default: 32 files a second on a CPU); latency means something below capacity (e.g. --burst 4).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import make_corpus  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.index import Index  # noqa: E402
from indexer.ingest import ingest_paths  # noqa: E402
from indexer.items import id_from_content, sha256_bytes  # noqa: E402
from indexer.store.shared import CONTROL_FILE, OwnerUnavailable, RemoteBackend  # noqa: E402


def batch_rate(corpus: Path, data_dir: Path, model: dict, batch: int) -> float:
    settings = load_settings(data_dir=data_dir, model=model, ingest={"batch_size": batch})
    with Index(settings) as index:
        index.clip  # noqa: B018 - load the model outside the timing, as serve has it loaded
        summary = ingest_paths(index, [corpus])
    return summary.ingested / summary.seconds


def start_serve(inbox: Path, data_dir: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--watch", str(inbox)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if json.loads((data_dir / CONTROL_FILE).read_text())["pid"] == proc.pid:
                return proc
        except (FileNotFoundError, ValueError):
            pass
        if proc.poll() is not None:
            raise SystemExit("serve exited during start-up")
        time.sleep(0.1)
    raise SystemExit("serve did not start within 300 s")


def wait_ready(data_dir: Path) -> RemoteBackend:
    """Serve loads its model lazily on the first batch; one warm-up file makes it load it."""
    while True:
        try:
            return RemoteBackend(data_dir)
        except OwnerUnavailable:
            time.sleep(0.1)


def drop_bursts(files: list[Path], inbox: Path, burst: int, gap_s: float, landed: dict[str, float]) -> None:
    """Move files into the inbox in bursts, noting in `landed` when each item's file landed."""
    for start in range(0, len(files), burst):
        for src in files[start : start + burst]:
            for part in (src.with_suffix(".txt"), src):  # the caption first, so the image finds it
                tmp = inbox / f".{part.name}.part"
                shutil.copyfile(part, tmp)
                os.replace(tmp, inbox / part.name)
            landed[id_from_content(sha256_bytes(src.read_bytes()), None, with_caption=False)] = time.time()
        time.sleep(gap_s)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--burst", type=int, default=32)
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between bursts")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--pretrained", default=os.environ.get("TOPICS_MODEL__PRETRAINED", "none"))
    parser.add_argument("--settle", type=float, default=0.5)
    opts = parser.parse_args()
    model = {"arch": opts.arch, "pretrained": opts.pretrained}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp)
        make_corpus(root / "corpus", opts.n)
        files = sorted((root / "corpus").glob("*.jpg"))
        rate = batch_rate(root / "corpus", root / "batch-data", model, opts.batch)
        print(f"batch ingest rate: {rate:.1f} items/s")

        inbox, data_dir = root / "inbox", root / "serve-data"
        inbox.mkdir()
        make_corpus(root / "warm", 1, seed=123)
        shutil.copy(next((root / "warm").glob("*.jpg")), inbox / "warmup.jpg")
        env = {
            **os.environ,
            "TOPICS_DATA_DIR": str(data_dir),
            "TOPICS_MODEL__ARCH": opts.arch,
            "TOPICS_MODEL__PRETRAINED": opts.pretrained,
            "TOPICS_INGEST__BATCH_SIZE": str(opts.batch),
            "TOPICS_WATCH__SETTLE_S": str(opts.settle),
            "TOPICS_WATCH__SIDECAR_GRACE_S": str(opts.settle),
            "HF_HUB_OFFLINE": "1",
        }
        proc = start_serve(inbox, data_dir, env)
        try:
            remote = wait_ready(data_dir)
            items = remote.collection("items")
            while not (items.exists() and items.count() >= 1):
                time.sleep(0.2)
            started = time.time()
            landed: dict[str, float] = {}
            dropper = threading.Thread(target=drop_bursts, args=(files, inbox, opts.burst, opts.gap, landed))
            dropper.start()  # poll while files land, so each item is timed when it appears
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 30 + 5 * opts.n / max(rate, 0.1)
            while (dropper.is_alive() or len(seen) < len(landed)) and time.monotonic() < deadline:
                now = time.time()
                for item_id in items.existing([i for i in list(landed) if i not in seen]):
                    seen[item_id] = now
                time.sleep(0.05)
            remote.close()
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    latencies = np.array([seen[i] - landed[i] for i in seen])
    elapsed = max(seen.values()) - started if seen else float("inf")
    sustained = len(seen) / elapsed
    print(f"stored: {len(seen)} of {len(landed)} items (target all)")
    print(f"settle time: {opts.settle} s (part of the latency by design)")
    print(f"latency p50: {np.percentile(latencies, 50) * 1000:.0f} ms")
    print(f"latency p95: {np.percentile(latencies, 95) * 1000:.0f} ms")
    print(f"sustained rate: {sustained:.1f} items/s (offered {opts.burst / opts.gap:.1f} items/s in bursts)")
    print(f"ratio: {sustained / rate:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
