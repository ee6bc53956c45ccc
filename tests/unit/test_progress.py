"""Progress on a terminal only: long commands show a bar or their current step on a terminal's
stderr and print nothing when stderr is a pipe (scripts, CI) or --json was asked for."""

from __future__ import annotations

import io

import pytest

from cli import render


def _stderr(monkeypatch: pytest.MonkeyPatch, **options: object) -> io.StringIO:
    screen = io.StringIO()
    consoles = (render.Console(file=io.StringIO()), render.Console(file=screen, width=100, **options))
    monkeypatch.setattr(render, "_own", consoles)
    return screen


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    return _stderr(monkeypatch, force_terminal=True)


def test_a_pipe_gets_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = _stderr(monkeypatch)
    with render.progress(True, "exporting", 10) as advance, render.phases(True, "recluster") as step:
        assert advance is None and step is None
    assert pipe.getvalue() == ""


def test_json_output_gets_no_progress_even_on_a_terminal(terminal: io.StringIO) -> None:
    with render.progress(False) as advance, render.phases(False, "report") as step:
        assert advance is None and step is None
    assert terminal.getvalue() == ""


def test_a_terminal_sees_the_count_and_the_current_step(terminal: io.StringIO) -> None:
    with render.progress(True, "exporting", 10) as advance:
        advance(4)
        advance(6)
    with render.phases(True, "recluster") as step:
        step("representing topics: keywords: embedded 256/1000 new terms")
    shown = terminal.getvalue()
    assert "exporting" in shown and "recluster" in shown
