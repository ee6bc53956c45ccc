"""tests/markers.py: Docker and GPU cases are deselected, never skipped, where they cannot run."""

from __future__ import annotations

import markers


def test_missing_engines_are_deselected_and_all_cases_run_where_both_answer() -> None:
    assert markers.expression(docker=False, gpu=False) == "not docker and not gpu"
    assert markers.expression(docker=True, gpu=False) == "not gpu"
    assert markers.expression(docker=False, gpu=True) == "not docker"
    everything = markers.expression(docker=True, gpu=True)
    for marks in ({"docker"}, {"gpu"}, set(), {"docker", "gpu"}):
        assert eval(everything, {}, {"docker": "docker" in marks, "gpu": "gpu" in marks})
