"""Line coverage of a target's reader modules by a corpus: ``python -m evaluation.fuzz.lines TARGET DIR...``.

Replays every input in the folders through the target under `sys.settrace` (Python 3.11 has no
`sys.monitoring`) and prints ``COVERED TOTAL`` over the reader modules' executable lines (every line
of their code objects, module level included: whole modules, so code no target reaches, such as a
feed's polling loop, counts as uncovered).
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

SOURCES = Path(__file__).resolve().parents[2] / "indexer"
_FEEDS = ("sources/feed.py", "sources/feed_items.py", "sources/syndication.py", "sources/__init__.py")
READERS: dict[str, tuple[str, ...]] = {
    "manifest_csv": ("sources/manifest.py", "sources/__init__.py"),
    "manifest_tsv": ("sources/manifest.py", "sources/__init__.py"),
    "manifest_jsonl": ("sources/manifest.py", "sources/__init__.py"),
    "json_feed": _FEEDS,
    "rss": _FEEDS,
    "atom": _FEEDS,
    "jsonl_tail": ("sources/feed.py", "sources/feed_items.py", "sources/__init__.py"),
    "sidecars": ("sources/folder.py", "sources/__init__.py"),
    "file_names": ("sources/folder.py", "sources/__init__.py"),
    "svg": ("svg.py", "images.py"),
}


def executable_lines(path: Path) -> set[int]:
    lines: set[int] = set()
    stack = [compile(path.read_text(encoding="utf-8"), str(path), "exec")]
    while stack:
        code = stack.pop()
        lines.update(line for _, _, line in code.co_lines() if line is not None)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return lines


def main() -> None:
    target, folders = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    files = {str(SOURCES / name) for name in READERS[target]}
    hit: dict[str, set[int]] = {name: set() for name in files}

    def trace(frame: types.FrameType, event: str, arg: object) -> object:
        name = frame.f_code.co_filename
        if name not in hit:
            return None
        hit[name].add(frame.f_lineno)
        return trace

    sys.settrace(trace)
    from evaluation.fuzz.targets import TARGETS  # traced from here: module-level lines count

    for path in sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir()):
        with contextlib.suppress(Exception):  # a finding: the fuzzing run itself reports it
            TARGETS[target](path.read_bytes())
    sys.settrace(None)
    total = {name: executable_lines(Path(name)) for name in files}
    covered = sum(len(hit[name] & total[name]) for name in files)
    print(covered, sum(len(lines) for lines in total.values()))


if __name__ == "__main__":
    main()
