"""Ledger cost of rescanning a folder whose files are all unchanged (the common nightly case).

Prints `name: value unit (target)` lines. Run: .venv/bin/python bench/bench_ledger.py [files]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from indexer.ledger import FileRecord, Ledger

TARGET_US_PER_FILE = 1000.0


def main(files: int) -> None:
    root = "/photos"
    records = [
        FileRecord(
            path=f"{root}/{i // 1000:03d}/{i:07d}.jpg",
            root=root,
            size=i,
            mtime_ns=i * 7,
            caption_sig="",
            sha256=f"{i:064x}",
            item_id=f"item-{i}",
        )
        for i in range(files)
    ]
    with tempfile.TemporaryDirectory() as tmp, Ledger(Path(tmp) / "ledger.sqlite") as ledger:
        started = time.perf_counter()
        for start in range(0, files, 256):  # the pipeline records one batch per upsert
            ledger.record_files(records[start : start + 256])
        record_s = time.perf_counter() - started

        started = time.perf_counter()
        seen = [r.path for r in records if _unchanged(ledger.lookup(r.path), r)]
        ledger.mark_seen(seen, "scan-2")
        removed = ledger.sweep(root, "scan-2")
        rescan_s = time.perf_counter() - started
    assert len(seen) == files and not removed
    print(f"ledger_files: {files} files")
    print(f"ledger_record_per_file: {record_s / files * 1e6:.1f} us (batches of 256)")
    print(f"ledger_rescan_per_file: {rescan_s / files * 1e6:.1f} us (target < {TARGET_US_PER_FILE:.0f} us)")
    print(f"ledger_rescan_total: {rescan_s:.2f} s")


def _unchanged(stored: FileRecord | None, now: FileRecord) -> bool:
    """The rescan's cheap check: the same size and mtime as when stored."""
    return stored is not None and (stored.size, stored.mtime_ns) == (now.size, now.mtime_ns)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
