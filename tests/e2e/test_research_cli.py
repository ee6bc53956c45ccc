"""The researcher's loop end to end: a 4CAT-shaped export with two text columns is ingested, topics
are labelled, hidden and merged, exported as CSV (the 4CAT ids come back as given) and followed over
time, through the CLI as a user would."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.helpers import STORIES, run_cli, tiny_env

FIRST_ID = 7_300_000_000_000_000_000  # TikTok ids are 19 digits: a float would lose them


def _write_export(path: Path) -> dict[str, str]:
    """A 4CAT TikTok export: `body` (the post) and `Transcript` (its speech). Returns id -> caption."""
    captions = {}
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "author", "body", "Transcript", "timestamp"])
        n = 0
        for story, lines in STORIES.items():
            for repeat in range(3):
                for line in lines:
                    item = str(FIRST_ID + n)
                    spoken = f"{story} talk {repeat}" if n % 2 else ""
                    writer.writerow([item, "ann", line, spoken, f"2026-11-{1 + n % 20:02d} 10:00:00"])
                    captions[item] = f"{spoken}\n\n{line}" if spoken else line
                    n += 1
    return captions


def _run(args: list[str], env: dict[str, str]) -> str:
    result = run_cli(args, env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_curate_export_and_trends_through_the_cli(tmp_path: Path) -> None:
    captions = _write_export(tmp_path / "tiktok.csv")
    env = tiny_env(
        tmp_path / "data",
        TOPICS_INGEST__VIEWS='["caption"]',
        TOPICS_CLUSTER__VIEW="caption",
        TOPICS_CLUSTER__MIN_CLUSTER_SIZE="5",
    )
    _run(["ingest", str(tmp_path / "tiktok.csv"), "--caption", "Transcript", "--caption", "body"], env)
    _run(["recluster"], env)
    first, second, third = (t["id"] for t in json.loads(_run(["list", "--flat", "--json"], env)))
    assert _run(["label", str(first), "Farmers' protest"], env).strip() == f"topic {first}: label pinned"
    _run(["merge", str(second), str(third)], env)
    _run(["recluster"], env)  # the curation holds in the next run
    listed = {t["id"]: t for t in json.loads(_run(["list", "--flat", "--json"], env))}
    assert set(listed) == {first, second} and listed[second]["curation"]["merged"] == [third]
    assert listed[first]["label"] == "Farmers' protest" and listed[first]["curation"]["label"] is True
    assert "curation: label pinned" in _run(["show", str(first)], env)

    assert "wrote" in _run(["export", "--out", str(tmp_path / "items.csv")], env)
    rows = list(csv.DictReader((tmp_path / "items.csv").open(encoding="utf-8")))
    assert {r["source_id"]: r["caption"] for r in rows} == captions  # ids as given, captions joined
    assert {r["label"] for r in rows if r["topic"] == str(first)} == {"Farmers' protest"}
    assert {r["topic"] for r in rows} <= {str(first), str(second), "-1"}
    piped = run_cli(["export", "--format", "jsonl", "--out", str(tmp_path / "items.jsonl")], env)
    assert piped.returncode == 0 and piped.stderr == ""  # no progress bar in a pipe

    found = json.loads(_run(["trends", "--every", "month", "--json"], env))
    assert found["periods"] == ["2026-11"]
    assert {t["id"]: t["total"] for t in found["topics"]} == {i: t["size"] for i, t in listed.items()}
    _run(["hide", str(first)], env)
    assert [t["id"] for t in json.loads(_run(["list", "--flat", "--json"], env))] == [second]
    _run(["unhide", str(first)], env)
    _run(["unmerge", str(second)], env)
    _run(["unlabel", str(first)], env)
    assert len(json.loads(_run(["list", "--flat", "--json"], env))) == 3
    mistake = run_cli(["label", "99", "x"], env)
    assert mistake.returncode == 1 and mistake.stderr.strip() == "error: no topic 99 (see `topics list`)"
