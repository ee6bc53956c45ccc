"""`make demo`: build a demo corpus, then run the real `topics` commands on the embedded store, offline.

Each step prints the command it runs, so the demo doubles as a tutorial.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.dataset import make_demo_set


def clip_weights_available(env: dict[str, str]) -> bool:
    """Whether the configured CLIP weights load here (they don't on a machine with no model hub)."""
    probe = (
        "from indexer.config import load_settings; from indexer.embed import build_clip; "
        "build_clip(load_settings())"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        print(f"CLIP weights are not available here ({reason}).")
        return False
    return True


# What `topics serve` needs to open the demo's store with the demo's model and views.
_SERVE_ENV = ("TOPICS_DATA_DIR", "TOPICS_INGEST__VIEWS", "TOPICS_MODEL__PRETRAINED", "TOPICS_CLUSTER__VIEW")


def run(args: list[str], env: dict[str, str], *, check: bool = True) -> int:
    print(f"\n$ topics {shlex.join(args)}", flush=True)
    code = subprocess.run([sys.executable, "-m", "cli", *args], env=env).returncode
    if check and code not in (0,):
        raise SystemExit(f"demo step failed with exit code {code}: topics {shlex.join(args)}")
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path("demo-data"))
    parser.add_argument("--fresh", action="store_true", help="delete the demo dir first")
    opts = parser.parse_args()
    root: Path = opts.dir.resolve()
    if opts.fresh and root.exists():
        shutil.rmtree(root)
    if not (root / "inbox").exists():
        make_demo_set(root)
        print(f"demo corpus written to {root}")
    env = {
        **os.environ,
        "TOPICS_DATA_DIR": str(root / "data"),
        "TOPICS_INGEST__VIEWS": '["image","text","caption"]',
    }
    if not clip_weights_available(env):
        print("Using RANDOM CLIP weights (TOPICS_MODEL__PRETRAINED=none): image vectors carry no meaning;")
        print(
            "the caption vectors come from the bundled all-MiniLM-L6-v2 model, "
            "so topics use the caption view."
        )
        env.update(TOPICS_MODEL__PRETRAINED="none", TOPICS_CLUSTER__VIEW="caption")
    run(["ingest", str(root / "inbox"), str(root / "posts.csv")], env)
    run(["status"], env)
    run(["recluster"], env)
    run(["list"], env)
    run(["search", "tractor protest", "--limit", "3"], env)
    report = root / "report.html"
    run(["report", "--out", str(report)], env)
    print(f"\nThe report is at {report}")
    served = " ".join(f"{k}={shlex.quote(env[k])}" for k in _SERVE_ENV if k in env)
    print("\nTo browse it (themes, topics, items, search, curation), run")
    print(f"  {served} topics serve")
    print("and open http://127.0.0.1:8765/ (the URL serve prints; settings web.host, web.port).")


if __name__ == "__main__":
    main()
