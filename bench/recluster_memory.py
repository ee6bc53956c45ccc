"""Where a recluster's memory goes: RSS at each step of `topics recluster` on an existing store.

    python bench/recluster_memory.py --data bench/out/scale/1000000/data

Runs the recluster in this process (as `topics recluster` does, words and keywords included) and
prints, at each progress step, the anonymous RSS (the process's own memory) and the file-backed RSS
(mapped files: the store's vectors and payloads, the libraries), now and at their peak since the step
before (sampled every 0.25 s). Stop `topics serve` first: the embedded store is locked to one process.
Run it with the settings the store was made with: for `bench/scale.py`'s store,
`TOPICS_MODEL__PRETRAINED=none` (else the keywords' CLIP is not found offline and the run goes on
without keywords).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mb() -> tuple[int, int]:
    """(anonymous, file-backed) resident MB of this process."""
    fields = dict(
        line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line
    )
    return int(fields["RssAnon"].split()[0]) // 1024, int(fields["RssFile"].split()[0]) // 1024


class Peak:
    def __init__(self) -> None:
        self.value = (0, 0)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            now = rss_mb()
            if sum(now) > sum(self.value):
                self.value = now
            time.sleep(0.25)

    def take(self) -> tuple[int, int]:
        value, self.value = self.value, (0, 0)
        return value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    opts = parser.parse_args()
    import torch  # the fit's kNN graph and the keywords' CLIP use it: count it with the imports

    from indexer.config import load_settings
    from indexer.index import Index
    from topics.represent import from_store
    from topics.service.jobs import rebuild_topics

    del torch, from_store
    print(f"imports: anon / file now {rss_mb()} MB")

    peak = Peak()
    started = time.perf_counter()

    def step(what: str) -> None:
        at = time.perf_counter() - started
        print(
            f"{at:7.1f} s {what}: anon / file now {rss_mb()} MB, peak before it {peak.take()} MB", flush=True
        )

    with Index(load_settings(data_dir=opts.data)) as index:
        step("store open")
        rebuild_topics(index, on_step=step)
        step("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
