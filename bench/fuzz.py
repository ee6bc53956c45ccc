"""Coverage-guided fuzzing of the readers that take outside input (atheris; targets in evaluation/fuzz).

Each target runs in its own process for its share of the time, from its seeds. Prints per target
`fuzz.TARGET.executions`, `fuzz.TARGET.coverage` (libFuzzer's `cov`: coverage edges reached in the
instrumented readers under indexer/ and the standard-library parsers they call), `fuzz.TARGET.lines`
(executable lines of the target's reader modules that the grown corpus reaches, under settrace) and
`fuzz.TARGET.unexpected` (inputs that raised an exception or broke a checked property; target 0).
Exits 1 on a finding; the input is saved as FINDINGS/TARGET-crash-SHA1.

Run: .venv/bin/python bench/fuzz.py --minutes 10 [--target NAME ...] [--findings DIR] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.fuzz import SEEDS
from evaluation.fuzz.lines import READERS
from evaluation.fuzz.run import line_coverage, run_target
from evaluation.fuzz.targets import TARGETS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="in all, shared by the targets")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="(default: all)")
    parser.add_argument("--findings", type=Path, default=Path("bench/out/fuzz-findings"))
    parser.add_argument("--corpus", type=Path, help="keep the grown corpora here (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    targets = args.target or list(TARGETS)
    share = args.minutes * 60 / len(targets)
    found = 0
    with tempfile.TemporaryDirectory(prefix="topics-fuzz-corpus-") as scratch:
        corpora = args.corpus or Path(scratch)
        print(f"fuzz.load: {os.getloadavg()[0]:.1f} (1-min load average at start, {os.cpu_count()} CPUs)")
        for name in targets:
            run = run_target(
                name, corpus=corpora / name, findings=args.findings, seconds=share, seed=args.seed
            )
            unexpected = len(run.findings) or int(run.returncode != 0)
            found += unexpected
            print(f"fuzz.{name}.executions: {run.executions} runs ({run.executions / run.seconds:.0f}/s)")
            print(
                f"fuzz.{name}.coverage: {run.edges} edges "
                f"(libFuzzer cov in indexer/ and the stdlib parsers it calls; {run.features} features)"
            )
            covered, total = line_coverage(name, [corpora / name, SEEDS / name])
            modules = ", ".join(m.removeprefix("sources/") for m in READERS[name])
            print(
                f"fuzz.{name}.lines: {covered} of {total} lines ({covered / total:.0%}) of {modules}, "
                "replaying the corpus"
            )
            print(f"fuzz.{name}.unexpected: {unexpected} exceptions (target 0)")
            for path in run.findings:
                print(f"fuzz.{name}.finding: {path}: {run.exception}")
            if unexpected and not run.findings:
                print(run.log[-3000:], file=sys.stderr)
            sys.stdout.flush()
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
