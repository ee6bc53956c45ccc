"""Fuzz targets for the readers that take outside input: manifests, feeds, sidecars, SVG, file names.

`evaluation.fuzz.targets` holds the targets (bytes in; every value a reader yields checked). Run one
under atheris with ``python -m evaluation.fuzz TARGET [libFuzzer flags]``; `bench/fuzz.py` runs them
all and `tests/fuzz/` runs each briefly. This module imports nothing, so that the runner can
instrument the readers as it imports them.
"""

from pathlib import Path

SEEDS = Path(__file__).parent / "seeds"
