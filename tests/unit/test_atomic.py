"""indexer.atomic and indexer.pidlock: the one copy of write-then-rename and of the pid-file lock."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from indexer.atomic import atomic_file, write_bytes_atomic, write_json_atomic
from indexer.pidlock import PidLock


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    write_bytes_atomic(target, b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk gone")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_mode_applies_and_folders_are_made(tmp_path: Path) -> None:
    private = tmp_path / "a" / "b" / "key"
    write_bytes_atomic(private, b"secret", mode=0o600)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    shared = tmp_path / "layout.json"
    write_json_atomic(shared, {"b": 1, "a": "é"})
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o644
    assert json.loads(shared.read_text(encoding="utf-8")) == {"a": "é", "b": 1}


def test_pid_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    path = tmp_path / "owner.lock"
    first = PidLock(path, refused=lambda holder: RuntimeError(f"held by {holder}"))
    with pytest.raises(RuntimeError, match=f"held by {os.getpid()}"):
        PidLock(path, refused=lambda holder: RuntimeError(f"held by {holder}"))
    first.release()
    first.release()  # twice is harmless
    PidLock(path, refused=lambda holder: RuntimeError(holder)).release()
