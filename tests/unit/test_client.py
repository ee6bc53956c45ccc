"""The thin client (cli/client.py): what it hands to `topics serve`, and where it looks for one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import client, served
from indexer.config import load_settings
from indexer.store import shared


def test_client_and_store_owner_agree_on_the_control_files() -> None:
    assert (client.CONTROL_FILE, client.KEY_FILE) == (shared.CONTROL_FILE, shared.KEY_FILE)


def test_the_service_refuses_commands_that_are_not_read_only() -> None:
    run = served.runner(lambda: pytest.fail("no index is opened for a refused command"))
    for argv in (["ingest", "folder"], ["recluster"], []):
        with pytest.raises(ValueError, match="does not run"):
            run(argv)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["search", "tractor protest", "--limit", "3"], True),
        (["list", "--json"], True),
        (["show", "12"], True),
        (["search", "x", "--image", "a.jpg"], False),  # a file of this machine
        (["search", "--image=a.jpg"], False),
        (["exemplars", "3", "--open"], False),  # a viewer on this desktop
        (["list", "--help"], False),
        (["ingest", "folder"], False),  # writes
        (["report", "--out", "r.html"], False),
        (["-v", "list"], False),
        ([], False),
    ],
)
def test_only_read_only_commands_without_local_options_are_handed_over(argv, expected) -> None:
    assert client.forwardable(argv) is expected


def test_topics_client_off_keeps_every_command_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICS_CLIENT", "off")
    assert not client.forwardable(["list"])


@pytest.mark.parametrize("how", ["default", "env", "env-lowercase", "toml", "toml-and-env"])
def test_the_data_dir_is_the_one_settings_resolve(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.upper().startswith("TOPICS_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    if how.startswith("toml"):
        (tmp_path / "conf.toml").write_text('data_dir = "~/from-toml"\n')
        monkeypatch.setenv("TOPICS_CONFIG", str(tmp_path / "conf.toml"))
    if how in ("env", "toml-and-env"):
        monkeypatch.setenv("TOPICS_DATA_DIR", str(tmp_path / "from-env"))
    if how == "env-lowercase":
        monkeypatch.setenv("topics_data_dir", str(tmp_path / "lower"))
    assert client.data_dir() == load_settings().data_dir


def test_no_live_service_means_the_command_runs_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPICS_DATA_DIR", str(tmp_path))
    assert client.ask_service(["list"]) is None  # no control file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    (tmp_path / "control.json").write_text(
        json.dumps({"socket": str(tmp_path / "s"), "pid": int(dead.stdout)})
    )
    (tmp_path / "control.key").write_text("00" * 32)
    assert client.ask_service(["list"]) is None  # left behind by a service that died
    (tmp_path / "control.json").write_text(json.dumps({"socket": str(tmp_path / "s"), "pid": os.getpid()}))
    assert client.ask_service(["list"]) is None  # alive, but nothing listens on the socket


def test_the_client_imports_only_the_standard_library() -> None:
    heavy = "{'typer', 'rich', 'pydantic', 'numpy', 'indexer', 'topics'}"
    code = f"import sys, cli.client; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`topics list | head -1`: writing the service's answer meets a closed pipe (simulated: this
    sandbox's pipes accept writes after the reader has gone)."""
    code = """if True:
        import io, sys, cli.client as c
        class Gone(io.TextIOWrapper):
            def write(self, text):
                raise BrokenPipeError(32, "Broken pipe")
        sys.stdout = Gone(open(sys.stdout.fileno(), "wb", closefd=False))
        sys.argv = ["topics", "list"]
        c.ask_service = lambda argv: {"stdout": "row\\n", "stderr": "", "code": 0}
        c.main()
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr == ""
