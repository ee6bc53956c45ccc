"""The query commands end to end on a real embedded store, with the real bundled sentence model.

A manifest of captions about three stories is ingested with only the `caption` view (MiniLM, real
embeddings), reclustered, then listed, shown and searched through the CLI as a user would.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cli.client import ask_service
from tests.helpers import STORIES, run_cli, start_serve, tiny_env


def _write_manifest(path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "body", "timestamp"])
        n = 0
        for story, lines in STORIES.items():
            for repeat in range(3):
                for line in lines:
                    writer.writerow([f"{story}-{n}", f"{line} (post {repeat})", f"2026-11-{1 + n % 20:02d}"])
                    n += 1


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("query")
    _write_manifest(root / "posts.csv")
    env = tiny_env(
        root / "data",
        TOPICS_INGEST__VIEWS='["caption"]',
        TOPICS_CLUSTER__VIEW="caption",
        TOPICS_CLUSTER__MIN_CLUSTER_SIZE="5",
    )
    ingest = run_cli(["ingest", str(root / "posts.csv"), "--json"], env, timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["ingested"] == 36
    recluster = run_cli(["recluster", "--json"], env, timeout=300)
    assert recluster.returncode == 0, recluster.stderr
    return env


def _json(args: list[str], env: dict[str, str]) -> object:
    result = run_cli([*args, "--json"], env, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_list_finds_the_three_stories(store: dict[str, str]) -> None:
    topics = _json(["list", "--flat"], store)
    assert len(topics) == 3
    assert sorted(t["size"] for t in topics) == [12, 12, 12]
    assert {tuple(sorted(t)) for t in topics} == {
        ("change", "curation", "id", "label", "size", "status", "theme_id", "words")
    }
    themes = _json(["list"], store)
    assert sorted(t["id"] for th in themes for t in th["topics"]) == sorted(t["id"] for t in topics)
    labels = " ".join(t["label"] for t in topics)
    for word in ("tractors", "cat", "flooded"):
        assert word in labels


@pytest.mark.slow
def test_show_has_words_exemplars_and_lineage(store: dict[str, str]) -> None:
    topics = _json(["list", "--flat", "--sort", "id"], store)
    shown = _json(["show", str(topics[0]["id"])], store)
    assert shown["id"] == topics[0]["id"] and shown["size"] == 12
    assert all(isinstance(w, str) and isinstance(s, float) for w, s in shown["words"])
    assert 1 <= len(shown["exemplars"]) <= 9
    assert all(e["caption"] for e in shown["exemplars"])
    assert [e["kind"] for e in shown["lineage"]] == ["emerged"]


@pytest.mark.slow
def test_search_groups_matching_items_under_their_topic(store: dict[str, str]) -> None:
    found = _json(["search", "tractor protest", "--limit", "4"], store)
    best = found["topics"][0]
    assert "tractor" in best["label"]
    assert len(best["items"]) == 4
    assert all("tractor" in hit["caption"] for hit in best["items"])
    assert all(hit["topic"] == best["topic_id"] for hit in best["items"])
    assert found["themes"][0]["topics"][0] == best["topic_id"]
    assert found["themes"][0]["theme_id"] == best["theme_id"] is not None
    assert found["unassigned"] == []


@pytest.mark.slow
def test_search_filters_by_topic_and_pushes_away(store: dict[str, str]) -> None:
    topics = {t["label"]: t["id"] for t in _json(["list", "--flat"], store)}
    cat_topic = next(i for label, i in topics.items() if "cat" in label)
    found = _json(["search", "animal sleeping", "--topic", str(cat_topic), "--limit", "3"], store)
    assert [t["topic_id"] for t in found["topics"]] == [cat_topic]
    assert all(h["topic"] == cat_topic for h in found["topics"][0]["items"])


@pytest.mark.slow
def test_status_and_history(store: dict[str, str]) -> None:
    status = _json(["status"], store)
    assert (status["items"], status["pending"], status["topics"], status["run_id"]) == (36, 0, 3, 1)
    assert status["service"] is None and status["failures"] == {}
    history = _json(["history"], store)
    assert [r["run_id"] for r in history["runs"]] == [1]
    assert sorted(e["kind"] for e in history["events"] if e["level"] == "topic") == ["emerged"] * 3


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    env = tiny_env(tmp_path / "data")
    missing = run_cli(["show", "12"], env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no topics yet: run `topics recluster` (or `topics serve`) first"
    usage = run_cli(["list", "--sort", "nonsense"], env)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr + missing.stderr


@pytest.mark.slow
def test_with_serve_running_the_thin_client_prints_what_the_command_prints(
    store: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last in this module: from here on `topics serve` owns the store.

    Every read-only command prints the same bytes and exits with the same code whether the service runs
    it for the thin client (cli/client.py) or the command runs in its own process (TOPICS_CLIENT=off).
    """
    env = {**store, "COLUMNS": "120"}
    topic_id = str(_json(["list", "--flat", "--sort", "id"], env)[0]["id"])
    theme_id = "T" + str(_json(["list"], env)[0]["theme_id"])
    serve = start_serve(env)
    try:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        answer = ask_service(["show", topic_id, "--json"])
        assert answer is not None and answer["code"] == 0, "the service did not answer the client"
        assert json.loads(answer["stdout"])["id"] == int(topic_id)

        direct = {**env, "TOPICS_CLIENT": "off"}
        for args in (
            ["list"],
            ["list", "--sort", "label", "--json"],
            ["list", "--flat"],
            ["show", topic_id],
            ["show", theme_id],
            ["history", theme_id, "--json"],
            ["show", topic_id, "--json"],
            ["exemplars", topic_id, "--json"],
            ["history"],
            ["search", "tractor protest", "--limit", "4"],
            ["search", "flooded streets", "--not", "rain", "--json"],
            ["show", "9999"],  # an unknown topic: one line, exit 1
            ["list", "--sort", "nonsense"],  # usage errors: exit 2
            ["show", "twelve"],
        ):
            thin, here = run_cli(args, env), run_cli(args, direct)
            assert (thin.returncode, thin.stdout) == (here.returncode, here.stdout), args
            if here.returncode == 1:
                assert thin.stderr == here.stderr, args
            elif here.returncode == 2:
                assert "Error: Invalid value" in thin.stderr and "Traceback" not in thin.stderr

        status = json.loads(run_cli(["status", "--json"], env).stdout)
        assert status["store"]["via_service"] is True and status["service"]["pid"] == serve.pid
        assert (status["items"], status["topics"]) == (36, 3)
    finally:
        serve.terminate()
        serve.wait(timeout=60)
