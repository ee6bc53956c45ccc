"""Print the pytest -m expression for this machine: Docker and GPU cases only where they can run.

`make test` passes it, so a machine without a Docker engine or a CUDA device deselects those cases
instead of reporting them as skipped. Standard library only (it runs before anything is imported).
"""

from __future__ import annotations

import shutil
import subprocess


def _answers(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        return subprocess.run(command, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def expression(docker: bool, gpu: bool) -> str:
    """The -m expression that keeps every case this machine can run."""
    missing = [f"not {mark}" for mark, there in (("docker", docker), ("gpu", gpu)) if not there]
    return " and ".join(missing) or "docker or gpu or not (docker or gpu)"


if __name__ == "__main__":
    print(expression(_answers(["docker", "info"]), _answers(["nvidia-smi", "-L"])))
