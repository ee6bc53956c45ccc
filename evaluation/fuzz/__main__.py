"""Run one fuzz target under atheris: ``python -m evaluation.fuzz TARGET [libFuzzer flags] [CORPUS ...]``.

The readers (``indexer``) and the standard-library parsers written in Python that they call (HTML
text, RFC 822 dates, ElementTree's paths and serializer, gzip) are instrumented as they are imported,
so libFuzzer's ``cov:`` counts edges in them. Seeds for TARGET are in ``evaluation/fuzz/seeds/TARGET``.
"""

from __future__ import annotations

import sys

import atheris

INSTRUMENTED = [
    "indexer",
    "evaluation.fuzz.targets",
    "html",
    "_markupbase",
    "email",
    "xml.etree",
    "gzip",
]


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: python -m evaluation.fuzz TARGET [libFuzzer flags] [CORPUS ...]")
    name = sys.argv.pop(1)
    with atheris.instrument_imports(include=INSTRUMENTED):
        from evaluation.fuzz.targets import TARGETS
    if name not in TARGETS:
        sys.exit(f"unknown target {name!r}; one of {', '.join(TARGETS)}")
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
