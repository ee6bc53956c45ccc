"""Soak: `topics serve` ingesting a steady stream while other processes search through it.

    python bench/soak.py [--minutes 30] [--rate 20] [--model tiny|env]

Starts `topics serve --watch INBOX` as a subprocess on a fresh data dir. A writer drops image files
with sidecar captions into the inbox at `--rate` files/s (write to a hidden name, then rename); a
searcher runs concept searches through the store's owner (`search_anywhere` over the control socket)
and asks for its status, back to back. The serve process's RSS is sampled from /proc every 5 s.

Prints `name: value unit (target)` lines: throughput, searches, errors (failed searches, failed items,
errors the service reports, items lost, an unclean stop), and RSS growth from the end of the warm-up
(the first fifth of the run) to the end. Targets over 30 minutes: no errors, RSS growth at most 10%.
`--model tiny` (default) uses the tiny random CLIP of the tests; `env` uses the TOPICS_MODEL__* settings.
Exits non-zero only if it could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from indexer.config import load_settings  # noqa: E402
from indexer.index import Index  # noqa: E402
from indexer.store.shared import CONTROL_FILE, RemoteBackend  # noqa: E402
from tests.helpers import draw_image, tiny_env  # noqa: E402
from topics.query.search import search_anywhere  # noqa: E402

WORDS = "farmers tractor protest beach sunset cat football goal flood rain market food city night".split()


class Writer(threading.Thread):
    """Drops `rate` image+caption pairs per second into the inbox until stopped."""

    def __init__(self, inbox: Path, rate: float, stop: threading.Event) -> None:
        super().__init__(name="writer", daemon=True)
        self.inbox, self.rate, self.stop = inbox, rate, stop
        self.written = 0

    def run(self) -> None:
        rng = random.Random(0)
        started = time.monotonic()
        while not self.stop.is_set():
            due = started + self.written / self.rate
            self.stop.wait(max(0.0, due - time.monotonic()))
            name = f"{self.written // 1000:03d}/post{self.written:07d}"
            tmp = self.inbox / f".{self.written}.tmp.jpg"
            draw_image(tmp, seed=self.written, size=(64, 48))
            caption = self.inbox / f"{name}.txt"
            caption.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, self.inbox / f"{name}.jpg")
            caption.write_text(" ".join(rng.choices(WORDS, k=6)))
            self.written += 1


class Searcher(threading.Thread):
    """Searches and asks for status through the owner, back to back; counts errors."""

    def __init__(self, data_dir: Path, stop: threading.Event) -> None:
        super().__init__(name="searcher", daemon=True)
        self.data_dir, self.stop = data_dir, stop
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.status: dict = {}

    def run(self) -> None:
        rng = random.Random(1)
        settings = load_settings(data_dir=self.data_dir)
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                with Index(settings, backend=RemoteBackend(self.data_dir)) as index:
                    search_anywhere(index, " ".join(rng.choices(WORDS, k=2)), limit=10)
                    self.status = index.backend.call_owner("status")
            except Exception as error:  # counted and reported: the soak's whole point
                self.errors.append(f"{type(error).__name__}: {error}")
            self.latencies.append(time.perf_counter() - started)
            self.stop.wait(0.2)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_serve(data_dir: Path, inbox: Path, model: str) -> subprocess.Popen:
    fast = {"TOPICS_WATCH__SETTLE_S": "0.5", "TOPICS_WATCH__SIDECAR_GRACE_S": "1"}
    if model == "tiny":
        env = tiny_env(data_dir, **fast)
    else:
        env = {**os.environ, "TOPICS_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), **fast}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "serve", "--watch", str(inbox)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(data_dir.parent / "serve.log", "w"),  # noqa: SIM115 - lives as long as serve
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads((data_dir / CONTROL_FILE).read_text())["pid"] == proc.pid:
                return proc
        except (FileNotFoundError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"serve did not start: {(data_dir.parent / 'serve.log').read_text()[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0, help="files per second")
    parser.add_argument("--model", choices=("tiny", "env"), default="tiny")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="topics-soak-"))
    data_dir, inbox = work / "data", work / "inbox"
    inbox.mkdir(parents=True)
    proc = start_serve(data_dir, inbox, args.model)
    stop = threading.Event()
    writer, searcher = Writer(inbox, args.rate, stop), Searcher(data_dir, stop)
    writer.start()
    searcher.start()
    started = time.monotonic()
    duration = args.minutes * 60
    samples: list[tuple[float, int]] = []
    while time.monotonic() - started < duration and proc.poll() is None:
        samples.append((time.monotonic() - started, rss_kib(proc.pid)))
        time.sleep(5)
    stop.set()
    writer.join()
    searcher.join()
    elapsed = time.monotonic() - started
    report(proc, data_dir, writer, searcher, samples, elapsed)


def images_recorded(data_dir: Path) -> int:
    """Image files the ledger says are stored (it is written only after the store flushed them)."""
    try:
        with sqlite3.connect(f"file:{data_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM files WHERE path LIKE '%.jpg'").fetchone()[0]
    except sqlite3.Error:
        return 0


def drained(data_dir: Path, written: int, timeout: float = 120.0) -> dict:
    """The owner's status once every written file is recorded as stored (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    status: dict = {}
    while time.monotonic() < deadline:
        backend = RemoteBackend(data_dir)
        try:
            status = backend.call_owner("status")
        finally:
            backend.close()
        if images_recorded(data_dir) >= written:
            break
        time.sleep(1)
    return status


def report(
    proc: subprocess.Popen,
    data_dir: Path,
    writer: Writer,
    searcher: Searcher,
    samples: list[tuple[float, int]],
    elapsed: float,
) -> None:
    alive = proc.poll() is None
    status = drained(data_dir, writer.written) if alive else {}
    backend = RemoteBackend(data_dir) if alive else None
    stored = backend.collection("items").count() if backend else 0
    if backend:
        backend.close()
    proc.send_signal(signal.SIGTERM)
    clean = proc.wait(timeout=120) == 0
    warm = [kib for t, kib in samples if t >= elapsed / 5] or [kib for _, kib in samples]
    growth = 100.0 * (warm[-1] - warm[0]) / warm[0] if warm and warm[0] else float("nan")
    recorded = images_recorded(data_dir)
    lost, extra = writer.written - recorded, stored - recorded  # one item per written pair
    errors = len(searcher.errors) + status.get("failed", 0) + lost + extra + (not clean)
    errors += 1 if status.get("last_error") else 0
    p50 = statistics.median(searcher.latencies) * 1000 if searcher.latencies else float("nan")
    print(f"duration: {elapsed / 60:.1f} min")
    print(f"written: {writer.written} files")
    print(f"stored: {stored} items ({lost} lost, {extra} extra; target 0 and 0)")
    print(f"throughput: {stored / elapsed:.1f} items/s (offered {args_rate(writer, elapsed):.1f}/s)")
    print(f"searches: {len(searcher.latencies)} (p50 {p50:.0f} ms, search+status per round trip)")
    print(f"errors: {errors} (target 0)")
    print(
        f"rss: {warm[0] / 1024 if warm else 0:.0f} -> {warm[-1] / 1024 if warm else 0:.0f} MiB after warm-up"
    )
    print(f"rss growth: {growth:.1f}% (target <= 10%)")
    for message in [*searcher.errors[:5], status.get("last_error")]:
        if message:
            print(f"  error: {message}")
    if not clean:
        print("  error: serve did not stop cleanly; see", data_dir.parent / "serve.log")


def args_rate(writer: Writer, elapsed: float) -> float:
    return writer.written / elapsed if elapsed else 0.0


if __name__ == "__main__":
    main()
