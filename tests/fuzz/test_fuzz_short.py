"""A short, deterministic fuzz run of every target (atheris, libFuzzer seed 1, a fixed number of runs).

The long run is `bench/fuzz.py --minutes 10`; inputs it finds become tests in `test_findings.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.fuzz import SEEDS
from evaluation.fuzz.run import run_target
from evaluation.fuzz.targets import TARGETS

RUNS = {  # a few seconds each on a busy 2-core machine
    "manifest_csv": 1500,
    "manifest_tsv": 1500,
    "manifest_jsonl": 1500,
    "json_feed": 6000,
    "rss": 6000,
    "atom": 6000,
    "jsonl_tail": 600,
    "sidecars": 800,
    "svg": 120,
    "file_names": 600,
}


def test_every_target_has_runs_and_seeds() -> None:
    assert set(RUNS) == set(TARGETS)
    assert all(any((SEEDS / name).iterdir()) for name in TARGETS)


@pytest.mark.parametrize("name", TARGETS)
def test_the_seeds_pass(name: str) -> None:
    for seed in sorted((SEEDS / name).iterdir()):
        TARGETS[name](seed.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
def test_a_short_fuzz_run_finds_nothing(name: str, tmp_path: Path) -> None:
    run = run_target(name, corpus=tmp_path / "corpus", findings=tmp_path / "findings", runs=RUNS[name])
    found = {path: Path(path).read_bytes()[:300] for path in run.findings}
    assert run.returncode == 0 and not found, f"{run.exception}\n{found}\n{run.log[-2000:]}"
    assert run.executions >= RUNS[name] and run.edges > 0
