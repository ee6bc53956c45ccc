"""Shared fixtures: every test gets its own data dir and runs offline."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Tests run tiny models: one torch thread is far faster than two fighting over 2 cores."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the data dir at tmp_path and forbid any hub download."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("TOPICS_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOPICS_CONFIG", str(tmp_path / "topics.toml"))  # none unless a test writes it
    for name in list(__import__("os").environ):
        if name.startswith("TOPICS_") and name not in {"TOPICS_DATA_DIR", "TOPICS_CONFIG"}:
            monkeypatch.delenv(name)
    return data_dir
