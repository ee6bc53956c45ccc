"""Run a fuzz target in its own process (libFuzzer ends the process it runs in) and read its figures.

``cov`` is libFuzzer's count of coverage edges reached in the instrumented code (the readers under
``indexer/`` and the standard-library parsers written in Python that they call); ``ft`` its count of
features (edges with hit-count buckets). A finding is an input that made the target raise: libFuzzer
writes it to ``FINDINGS/TARGET-crash-SHA1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from evaluation.fuzz import SEEDS

REPO = Path(__file__).resolve().parents[2]
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", re.MULTILINE)
_EXECUTED = re.compile(r"stat::number_of_executed_units: (\d+)")
_WRITTEN = re.compile(r"Test unit written to (\S+)")
_EXCEPTION = re.compile(r"=== Uncaught Python exception: ===\n(.*)")


@dataclass(frozen=True)
class FuzzRun:
    target: str
    executions: int
    edges: int
    features: int
    seconds: float
    findings: tuple[str, ...]  # paths of the inputs that raised
    exception: str  # the first line of the exception a finding raised ("" without one)
    returncode: int
    log: str


def run_target(
    target: str,
    *,
    corpus: Path,
    findings: Path,
    seconds: float | None = None,
    runs: int | None = None,
    seed: int = 1,
    timeout_s: int = 60,
) -> FuzzRun:
    """Fuzz `target` for `seconds` or `runs` executions from its seeds (and what `corpus` holds)."""
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    limits = [f"-max_total_time={max(1, round(seconds))}"] if seconds is not None else []
    limits += [f"-runs={runs}"] if runs is not None else []
    command = [
        sys.executable,
        "-m",
        "evaluation.fuzz",
        target,
        *limits,
        f"-seed={seed}",
        f"-timeout={timeout_s}",  # one input running longer is a finding too
        "-rss_limit_mb=4096",
        "-max_len=8192",
        "-print_final_stats=1",
        f"-artifact_prefix={findings}/{target}-",
        str(corpus),
        str(SEEDS / target),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONHASHSEED": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="topics-fuzz-run-") as scratch:
        env["TMPDIR"] = scratch  # libFuzzer exits without Python's atexit: the targets' scratch goes here
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, errors="replace")
        elapsed = time.perf_counter() - started
    log = done.stdout + done.stderr
    statuses = _STATUS.findall(log)
    executed = _EXECUTED.search(log)
    last = statuses[-1] if statuses else ("0", "0", "0")
    exception = _EXCEPTION.search(log)
    return FuzzRun(
        target=target,
        executions=int(executed.group(1)) if executed else int(last[0]),
        edges=int(last[1]),
        features=int(last[2]),
        seconds=elapsed,
        findings=tuple(_WRITTEN.findall(log)),
        exception=exception.group(1).strip() if exception else "",
        returncode=done.returncode,
        log=log,
    )


def line_coverage(target: str, folders: list[Path]) -> tuple[int, int]:
    """(covered, total) executable lines of the target's reader modules, replaying `folders`' inputs."""
    command = [sys.executable, "-m", "evaluation.fuzz.lines", target, *map(str, folders)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    covered, total = done.stdout.split()[-2:]
    return int(covered), int(total)
