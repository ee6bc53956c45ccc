"""The deployment files parse and pin what they run (no Docker engine is needed to check this)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PINNED_TAG = re.compile(r"^[\w./-]+:v?\d+(\.\d+)+([\w.-]*)?(@sha256:[0-9a-f]{64})?$")
COMPOSE_VAR = re.compile(r"\$\{(\w+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in logical]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return _instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def _arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    pairs = (args.split("=", 1) for kw, args in instructions if kw == "ARG" and "=" in args)
    return {name.strip(): value.strip() for name, value in pairs}


def _env_example() -> dict[str, str]:
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    pairs = (ln.split("=", 1) for ln in lines if ln.strip() and not ln.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


# ---- docker-compose.yml ----


def test_every_service_names_a_pinned_image(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert "latest" not in image, f"{name}: {image}"
        assert PINNED_TAG.match(image), f"{name}: image {image!r} has no version tag"


def test_the_qdrant_server_is_the_version_the_tests_run(compose: dict) -> None:
    conftest = (ROOT / "tests" / "integration" / "conftest.py").read_text(encoding="utf-8")
    tested = re.search(r'QDRANT_IMAGE = "([^"]+)"', conftest)
    assert tested and compose["services"]["qdrant"]["image"] == tested.group(1)


def test_qdrant_has_a_volume_a_health_check_and_an_api_key(compose: dict) -> None:
    qdrant = compose["services"]["qdrant"]
    assert any(v.endswith(":/qdrant/storage") for v in qdrant["volumes"])
    check = qdrant["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "/readyz" in check["test"][1]
    assert {"interval", "timeout", "retries"} <= check.keys()
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY:?")
    assert all(p.startswith("127.0.0.1:") for p in qdrant.get("ports", []))  # not published beyond the host


def test_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith(("$", ".", "/")):
                assert source in declared, f"{name}: volume {source!r} is not declared"


def test_topics_serves_against_the_healthy_server(compose: dict) -> None:
    topics = {n: s for n, s in compose["services"].items() if n.startswith("topics")}
    assert set(topics) == {"topics", "topics-gpu"}
    for name, service in topics.items():
        assert service["depends_on"] == {"qdrant": {"condition": "service_healthy"}}
        assert service["environment"]["TOPICS_STORE__URL"] == "http://qdrant:6333"
        assert "${QDRANT_API_KEY" in service["environment"]["TOPICS_STORE__API_KEY"]
        assert any(v.endswith(":/inbox") for v in service["volumes"]), name
        assert any(v.startswith("topics-data:/data") for v in service["volumes"]), name


def test_the_gpu_is_reserved_only_behind_the_gpu_profile(compose: dict) -> None:
    services = compose["services"]
    gpu = services["topics-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["args"]["CUDA"].startswith("cu")
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert services["topics"]["profiles"] == ["cpu"] and services["topics"]["build"]["args"]["CUDA"] == "cpu"
    assert "deploy" not in services["topics"] and "deploy" not in services["qdrant"]


def test_env_example_sets_every_required_variable_and_a_valid_profile(compose: dict) -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    env = _env_example()
    assert required <= env.keys()
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    assert env["COMPOSE_PROFILES"] in profiles
    assert all(key.startswith(("TOPICS_", "QDRANT_", "COMPOSE_", "HF_")) for key in env)


# ---- Dockerfile ----


def test_base_images_are_pinned_and_multi_stage(dockerfile: list[tuple[str, str]]) -> None:
    defaults = _arg_defaults(dockerfile[: next(i for i, (kw, _) in enumerate(dockerfile) if kw == "FROM")])
    froms = [args.split()[0] for kw, args in dockerfile if kw == "FROM"]
    assert len(froms) >= 2
    for image in froms:
        resolved = COMPOSE_VAR.sub(lambda m: defaults[m.group(1)], image)
        assert "latest" not in resolved and PINNED_TAG.match(resolved), resolved
    assert any(kw == "COPY" and args.startswith("--from=build") for kw, args in dockerfile)


def test_cpu_by_default_and_a_cuda_build_argument(dockerfile: list[tuple[str, str]]) -> None:
    assert _arg_defaults(dockerfile)["CUDA"] == "cpu"
    torch_install = next(args for kw, args in dockerfile if kw == "RUN" and "torch==" in args)
    assert "download.pytorch.org/whl/${CUDA}" in torch_install
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    for pin in (p for p in pins if p.startswith(("torch==", "torchvision=="))):
        assert pin in torch_install, f"the image installs another {pin.split('==')[0]} than pyproject"


def test_runs_as_a_user_with_health_check_and_serve_entrypoint(dockerfile: list[tuple[str, str]]) -> None:
    users = [args for kw, args in dockerfile if kw == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}
    last_from = max(i for i, (kw, _) in enumerate(dockerfile) if kw == "FROM")
    assert any(kw == "USER" for kw, _ in dockerfile[last_from:])
    health = next(args for kw, args in dockerfile if kw == "HEALTHCHECK")
    assert json.loads(health.split("CMD", 1)[1]) == ["topics", "status", "--json"]
    entry = next(args for kw, args in dockerfile if kw == "ENTRYPOINT")
    assert json.loads(entry) == ["topics", "serve", "--watch", "/inbox"]
    assert "pip install ." in " ".join(args for kw, args in dockerfile if kw == "RUN")


def test_the_build_context_leaves_out_secrets_and_state() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".env", "data", "tests"} <= ignored


def test_the_instruction_parser_joins_continuations() -> None:
    parsed = _instructions("# c\nFROM a:1.0 AS b\nRUN x \\\n && y\n\nUSER me\n")
    assert parsed == [("FROM", "a:1.0 AS b"), ("RUN", "x && y"), ("USER", "me")]
