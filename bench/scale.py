"""One store of N items on one machine, end to end through the commands a user runs.

    python bench/scale.py [--n 1000000] [--day 20000] [--queries 30] [--work bench/out/scale]

1. A synthetic corpus (`evaluation.scale_corpus`: ~300 fine topics in 60 groups, sizes 100× apart,
   siblings at cosine 0.95–0.97, 3 % noise, two 512-d views and a caption per item), written as a
   JSONL manifest with ``.npy`` side files, plus a second "day" of `--day` items.
2. ``topics ingest`` of the manifest (precomputed vectors), then ``topics recluster``; ARI of the
   run against the known fine topics (outliers count as one more cluster), and the store's size.
3. ``topics serve``: ``topics search`` and ``topics list`` through the thin client (the whole
   command, a new process each time) and the library call over the socket.
4. The nightly day: the day's items through ``topics ingest`` (answered by serve), assigned online
   by serve (from the ingest's end until nothing is pending, polled), then ``topics recluster`` in
   serve while searches keep running (``nightly_waited_for_searches``: the part of its wall time it
   spent waiting while they ran).

Each phase runs in a child process; its wall time, CPU time and peak RSS (`wait4`) are printed as
``name: value unit (target ...)`` lines. CLIP has random weights (no hub here): the vectors are
given, and only query embedding uses the model, and keyword vocabularies (`--max-vocabulary`: each
term costs a CLIP text forward, ~0.2 s on 2 loaded cores, once per term per data dir).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.quality import adjusted_rand  # noqa: E402
from evaluation.scale_corpus import two_level_mixture, write_corpus  # noqa: E402
from indexer.config import load_settings  # noqa: E402
from indexer.index import Index  # noqa: E402
from indexer.store.shared import CONTROL_FILE, RemoteBackend  # noqa: E402
from topics import catalog  # noqa: E402
from topics.ids import OUTLIER  # noqa: E402
from topics.query.search import search_anywhere  # noqa: E402

ASSIGN_ONLINE = (  # what `topics serve` runs every cluster.online_interval_s, timed by the job itself
    "from indexer.config import load_settings; from indexer.index import Index; "
    "from topics.service.jobs import assign_online; index = Index(load_settings()); "
    "report = assign_online(index); index.close(); print(report['assigned'], report['seconds'])"
)
QUERIES = ["tractor protest", "beach sunset", "cat on a sofa", "flooded street", "night market food"]
GB = 1024**3


@dataclass(frozen=True)
class Child:
    wall_s: float
    cpu_s: float
    peak_rss_gb: float
    output: str
    peak_anon_gb: float = float("nan")  # the process's own memory; the rest of RSS is mapped files


class AnonPeak:
    """Samples a child's RssAnon (its own memory, not the page cache its mapped files use) twice a second."""

    def __init__(self, pid: int) -> None:
        self.peak_kb = 0
        self._pid = pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            try:
                status = Path(f"/proc/{self._pid}/status").read_text()
            except OSError:
                return
            found = re.search(r"RssAnon:\s+(\d+) kB", status)
            if found:
                self.peak_kb = max(self.peak_kb, int(found.group(1)))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb * 1024 / GB


def line(name: str, value: float | str, unit: str = "", target: str = "") -> None:
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    print(f"{name}: {shown}{' ' + unit if unit else ''}{f' (target {target})' if target else ''}", flush=True)


def topics_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def finish(proc: subprocess.Popen, started: float, log: Path, anon: AnonPeak | None = None) -> Child:
    """Wait for `proc` with wait4: its own peak RSS and CPU time, not the largest child's so far."""
    _, status, usage = os.wait4(proc.pid, 0)
    peak_anon = anon.stop() if anon is not None else float("nan")
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    output = log.read_text(errors="replace")
    if proc.returncode not in (0, -15):
        raise SystemExit(f"{proc.args[3:]} failed ({proc.returncode}):\n{output[-2000:]}")
    return Child(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024 / GB, output, peak_anon)


def run(args: list[str], env: dict[str, str], log: Path) -> Child:
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return finish(proc, started, log, AnonPeak(proc.pid))


def du_gb(path: Path) -> float:
    """Blocks in use, as `du` counts them (the engine preallocates sparse files)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / GB


def phase_lines(prefix: str, output: str) -> None:
    """The recluster's phase durations from its log (``topics -v``)."""
    for name, seconds in re.findall(r"recluster: (\w+) \(([\d.]+) s\)", output):
        line(f"{prefix}_phase_{name}", float(seconds), "s")
    for seconds, waits in re.findall(r"recluster: waited ([\d.]+) s for searches at (\d+) yield", output):
        line(f"{prefix}_waited_for_searches", float(seconds), f"s (at {waits} yield points)")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# ---- phases ----


def make_corpus(work: Path, n: int, day: int, arch: str) -> dict[str, Path]:
    mixture = two_level_mixture()
    model_id = f"open_clip:{arch}/none"
    started = time.perf_counter()
    first = write_corpus(work / "day0", mixture, n, model_id=model_id, seed=1)
    second = write_corpus(work / "day1", mixture, day, model_id=model_id, seed=2, first_id=n)
    line("corpus_written", time.perf_counter() - started, "s")
    line("corpus_fine_topics", len(mixture.clusters))
    line("corpus_groups", int(mixture.group_of.max()) + 1)
    return {"day0": first["manifest"], "day1": second["manifest"], "truth": first["truth"]}


def quality(settings, truth_file: Path) -> None:
    """ARI of the current run against the fine topics, and how many fine topics it found."""
    truth = np.load(truth_file)["labels"]
    found = np.full(len(truth), OUTLIER, np.int64)
    started = time.perf_counter()
    with Index(settings) as index:
        run = catalog.current_run(index.backend)
        for points in index.items.scroll(batch=4096):
            for p in points:
                got = catalog.read_assignment(p.payload, run)
                found[int(p.payload["source_id"])] = OUTLIER if got is None else got.topic
    line("quality_read", time.perf_counter() - started, "s")
    line("recluster_ari_fine", adjusted_rand(truth, found), "", ">= 0.9")
    line("recluster_topics_found", len(np.unique(found[found >= 0])), f"of {truth.max() + 1}")
    line("recluster_fine_topics_recovered", recovered(truth, found), f"of {truth.max() + 1}")


def recovered(truth: np.ndarray, found: np.ndarray) -> int:
    """Fine topics whose majority found topic holds most of them and is mostly theirs."""
    count = 0
    for topic in np.unique(truth[truth >= 0]):
        mine = found[truth == topic]
        best, hits = Counter(mine.tolist()).most_common(1)[0]
        if best >= 0 and hits / len(mine) > 0.5 and (truth[found == best] == topic).mean() > 0.5:
            count += 1
    return count


def start_serve(env: dict[str, str], data_dir: Path, log: Path) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(
            topics_cmd("-v", "serve"), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited: {log.read_text()[-2000:]}")
        try:
            if json.loads((data_dir / CONTROL_FILE).read_text())["pid"] == proc.pid:
                return proc, started
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)


def command_ms(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(topics_cmd(*args), env=env, cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"topics {' '.join(args)} failed: {done.stderr.decode()[-800:]}")
    return (time.perf_counter() - started) * 1000


def library_ms(index: Index, text: str) -> float:
    started = time.perf_counter()
    search_anywhere(index, text, limit=10)
    return (time.perf_counter() - started) * 1000


def searches(index: Index, env: dict[str, str], count: int, prefix: str, target: bool) -> None:
    lib = [library_ms(index, QUERIES[i % len(QUERIES)]) for i in range(count)]
    cmd = [command_ms(["search", QUERIES[i % len(QUERIES)], "--json"], env) for i in range(count)]
    p50, p95 = ("<= 150 ms", "<= 400 ms") if target else ("", "")
    line(f"{prefix}_search_p50_command", percentile(cmd, 50), "ms", p50)
    line(f"{prefix}_search_p95_command", percentile(cmd, 95), "ms", p95)
    line(f"{prefix}_search_p50_library", percentile(lib, 50), "ms", p50)
    line(f"{prefix}_search_p95_library", percentile(lib, 95), "ms", p95)


def pending(env: dict[str, str]) -> int:
    done = subprocess.run(topics_cmd("status", "--json"), env=env, cwd=ROOT, capture_output=True)
    return int(json.loads(done.stdout)["pending"])


def nightly_recluster(index: Index, env: dict[str, str], logs: Path) -> None:
    """`topics recluster` in serve while searches run (library calls, one after another)."""
    started = time.perf_counter()
    log = logs / "nightly-recluster.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            topics_cmd("recluster"), env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    during: list[float] = []
    done = threading.Event()
    waiter = threading.Thread(target=lambda: (proc.wait(), done.set()))
    waiter.start()
    i = 0
    while not done.is_set():
        during.append(library_ms(index, QUERIES[i % len(QUERIES)]))
        i += 1
        done.wait(0.5)
    waiter.join()
    if proc.returncode != 0:
        raise SystemExit(f"nightly recluster failed:\n{log.read_text()[-2000:]}")
    line("nightly_recluster_wall", time.perf_counter() - started, "s", "<= the first recluster")
    line("during_recluster_searches", len(during))
    line("during_recluster_search_p50_library", percentile(during, 50), "ms", "<= 150 ms")
    line("during_recluster_search_p95_library", percentile(during, 95), "ms", "<= 400 ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--day", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / "out" / "scale")
    parser.add_argument("--resume", action="store_true", help="reuse --work's ingested store")
    parser.add_argument(
        "--max-vocabulary",
        type=int,
        default=1000,
        help="keyword terms the first recluster embeds with CLIP (the default, 20,000, is an hour on CPU)",
    )
    opts = parser.parse_args()
    work = opts.work / str(opts.n)
    if not opts.resume:
        shutil.rmtree(work, ignore_errors=True)
    data_dir, logs = work / "data", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "TOPICS_DATA_DIR": str(data_dir),
        "TOPICS_MODEL__ARCH": opts.arch,
        "TOPICS_MODEL__PRETRAINED": "none",
        "TOPICS_CLUSTER__CRON": "off",
        "TOPICS_REPRESENT__MAX_VOCABULARY": str(opts.max_vocabulary),
        "TOPICS_CLUSTER__ONLINE_INTERVAL_S": "86400",  # the bench times the online job itself
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    settings = load_settings(data_dir=data_dir, model={"arch": opts.arch, "pretrained": "none"})
    line("keyword_vocabulary", opts.max_vocabulary, "terms (TOPICS_REPRESENT__MAX_VOCABULARY)")
    raw_gb = opts.n * 2 * 512 * 4 / GB
    if opts.resume:  # the store is ingested: start at the first recluster
        corpus = work / "corpus"
        files = {
            "day0": corpus / "day0.jsonl",
            "day1": corpus / "day1.jsonl",
            "truth": corpus / "day0.truth.npz",
        }
    else:
        files = make_corpus(work / "corpus", opts.n, opts.day, opts.arch)
        ingest = run(topics_cmd("ingest", str(files["day0"])), env, logs / "ingest.log")
        line("ingest_wall", ingest.wall_s, "s")
        line("ingest_rate", opts.n / ingest.wall_s, "items/s", ">= 5000")
        line("ingest_rate_per_cpu_s", opts.n / ingest.cpu_s, "items/cpu-s")
        line("ingest_peak_rss", ingest.peak_rss_gb, "GB")
        line("ingest_peak_rss_anon", ingest.peak_anon_gb, "GB")

    first = run(topics_cmd("-v", "recluster"), env, logs / "recluster.log")
    line("recluster_wall", first.wall_s, "s", "<= 900 s")
    line("recluster_cpu", first.cpu_s, "cpu-s")
    line("recluster_peak_rss", first.peak_rss_gb, "GB", "<= 6 GB")
    line("recluster_peak_rss_anon", first.peak_anon_gb, "GB (own memory; the rest is mapped store files)")
    phase_lines("recluster", first.output)
    quality(settings, files["truth"])
    store_gb = du_gb(data_dir / "store")
    line("store_size", store_gb, "GB")
    line("store_size_ratio_to_raw_vectors", store_gb / raw_gb, "", "<= 2.5")

    serve, serve_started = start_serve(env, data_dir, logs / "serve.log")
    try:
        remote = RemoteBackend(data_dir)
        index = Index(settings, backend=remote)
        line("serve_ready", time.perf_counter() - serve_started, "s")
        library_ms(index, "warm up")  # the service loads its model on the first search
        searches(index, env, opts.queries, "idle", target=True)
        listing = [command_ms(["list", "--json"], env) for _ in range(5)]
        line("list_p50_command", percentile(listing, 50), "ms")

        day = run(topics_cmd("ingest", str(files["day1"])), env, logs / "ingest-day.log")
        line("day_ingest_wall", day.wall_s, "s")
        line("day_pending", pending(env))
        index.ledger.close()
        remote.close()
    finally:
        serve.terminate()
        served = finish(serve, serve_started, logs / "serve.log")
    line("serve_peak_rss", served.peak_rss_gb, "GB")
    online = run([sys.executable, "-c", ASSIGN_ONLINE], env, logs / "online.log")
    line("day_online_assign", float(online.output.split()[-1]), "s", "<= 10 s")
    line("day_online_assign_wall_with_start", online.wall_s, "s")

    serve, serve_started = start_serve(env, data_dir, logs / "serve-2.log")
    try:
        remote = RemoteBackend(data_dir)
        index = Index(settings, backend=remote)
        library_ms(index, "warm up")
        nightly_recluster(index, env, logs)
        index.ledger.close()
        remote.close()
    finally:
        serve.terminate()
        served = finish(serve, serve_started, logs / "serve-2.log")
    line("serve_nightly_peak_rss", served.peak_rss_gb, "GB")
    phase_lines("nightly", served.output)
    store_gb = du_gb(data_dir / "store")
    line("store_size_after_day", store_gb, "GB")
    line(
        "store_size_after_day_ratio_to_raw_vectors",
        store_gb / (raw_gb * (opts.n + opts.day) / opts.n),
        "",
        "<= 2.5",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
