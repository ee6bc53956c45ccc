"""State files found damaged: moved aside, explained in the log and in `topics status`, then rebuilt.

A damaged file (a ledger that is not SQLite, a truncated online state, a broken vocabulary cache) is
renamed to ``<name>.corrupt-<UTC time>`` beside where it was, never deleted: the program goes on with a
fresh one rebuilt from the store, and the kept copy is what `status` reports until someone removes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

CORRUPT_MARK = ".corrupt-"
_REASON_SUFFIX = ".why"


def quarantine(path: Path, why: str, outcome: str, *, companions: tuple[str, ...] = ()) -> Path:
    """Rename a damaged file (and `companions`: suffixes of files that belong to it, like ``-wal``) aside.

    Returns the new path. `why` (what is wrong) and `outcome` (what the program does instead) are kept
    beside it for `status` and logged as a warning.
    """
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    moved = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}")
    try:
        os.replace(path, moved)
    except FileNotFoundError:  # another process moved it first
        return moved
    for suffix in companions:
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            os.replace(extra, moved.with_name(moved.name + suffix))
    note = f"{path.name} was damaged ({why}); {outcome}. The damaged copy is {moved}"
    with contextlib.suppress(OSError):  # a full disk loses the note for `status`, not the log line
        moved.with_name(moved.name + _REASON_SUFFIX).write_text(note + "\n")
    log.warning("%s", note)
    return moved


def damaged_files(data_dir: Path) -> list[str]:
    """One line per file moved aside in `data_dir` or a folder just below it (not the store's)."""
    if not data_dir.is_dir():
        return []
    folders = [data_dir, *(p for p in data_dir.iterdir() if p.is_dir() and p.name != "store")]
    found = [f for folder in folders for f in folder.glob(f"*{CORRUPT_MARK}*{_REASON_SUFFIX}")]
    notes = []
    for why_file in sorted(found):
        if why_file.with_name(why_file.name[: -len(_REASON_SUFFIX)]).exists():
            note = why_file.read_text(errors="replace").strip()
            notes.append(f"{note} (delete it to clear this note)")
    return notes
