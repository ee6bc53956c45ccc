"""kill -9 at random moments: of `topics serve` while 3,000 items arrive, and of `topics recluster`.

Both commands run as real processes (children of the fork server, see `forkserver.py`), killed with
SIGKILL at moments drawn from a seeded RNG, restarted, and checked against what the inputs say the
store must hold: every unique input exactly once, the ledger and the feed cursor agreeing with the
inputs, and topics that are the old run's or the new run's, never a mix.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from indexer.config import load_settings
from indexer.index import Index
from indexer.items import id_from_content, id_from_source, sha256_bytes
from indexer.store import open_backend
from indexer.store.base import Filter
from tests.helpers import draw_image, tiny_env
from tests.reliability.conftest import Serve, owner_pid, wait_for
from tests.reliability.forkserver import ForkServer
from topics import catalog
from topics.ids import OUTLIER

pytestmark = pytest.mark.slow

SEED = 9
KILLS = 20
FAST = {
    "TOPICS_WATCH__SETTLE_S": "0.2",
    "TOPICS_WATCH__SIDECAR_GRACE_S": "0.3",
    "TOPICS_INGEST__FLUSH_INTERVAL_S": "0.2",
    "TOPICS_INGEST__DECODE_WORKERS": "2",
}


# ---- the arrival: 3,000 inputs, 2,880 of them unique ----


@dataclass
class Arrival:
    """Writes inputs into a JSONL feed and a watched folder from a thread, and knows the ids they make."""

    feed: Path
    inbox: Path
    seed: int
    expected: set[str] = field(default_factory=set)
    folder_ids: dict[str, str] = field(default_factory=dict)  # path -> item id (ledger rows)
    lines: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    written: int = 0

    def events(self) -> list[tuple[str, object]]:
        """3,000 inputs in a shuffled order: 2,600 feed lines and 400 folder files."""
        rng = random.Random(self.seed)
        feed: list[tuple[str, object]] = []
        for i in range(2300):
            feed.append(("line", {"id": f"p{i}", "text": f"post {i} about topic {i % 17} and more"}))
        for i in range(100):
            feed.append(("line", {"text": f"anonymous post {i}, no id at all"}))
        for i in range(100):
            feed.append(("line+image", i))
        for i in rng.sample(range(2300), 100):  # re-sent rows: the same id and content again
            feed.append(("line", {"id": f"p{i}", "text": f"post {i} about topic {i % 17} and more"}))
        folder: list[tuple[str, object]] = [("image", i) for i in range(280)]
        folder += [("copy", i) for i in rng.sample(range(280), 20)]
        folder += [("caption", i) for i in range(100)]
        merged = feed + folder
        rng.shuffle(merged)  # a copy may come before its original: both name one content id
        return merged

    def write(self, kind: str, what: object) -> None:
        if kind == "line":
            self._line(what)
        elif kind == "line+image":
            name = f"imgs/f{what}.png"
            image = draw_image(self.feed.parent / name, seed=5000 + int(what), size=(24, 16), fmt="PNG")
            self._line({"id": f"img{what}", "caption": f"picture post {what}", "image": name})
            assert image.exists()
        elif kind == "image":
            self._file(f"a/img{what:03d}.jpg", _jpeg(int(what)), caption=int(what) % 5 == 0)
        elif kind == "copy":
            self._file(f"b/copy{what:03d}.jpg", _jpeg(int(what)), caption=False)
        else:
            text = f"a note without a picture, number {what}"
            path = self.inbox / "notes" / f"note{what:03d}.txt"
            _atomic(path, text.encode())
            self.folder_ids[str(path)] = id_from_content(None, text, with_caption=False)
            self.expected.add(self.folder_ids[str(path)])

    def _line(self, record: object) -> None:
        assert isinstance(record, dict)
        with self.feed.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        self.lines += 1
        if "id" in record:
            self.expected.add(id_from_source(self.feed.stem, str(record["id"])))
        else:
            self.expected.add(id_from_content(None, record["text"], with_caption=True))

    def _file(self, name: str, data: bytes, caption: bool) -> None:
        path = self.inbox / name
        _atomic(path, data)
        if caption:  # the sidecar follows its image, as the watcher's grace period expects
            _atomic(path.with_suffix(".txt"), f"caption of {path.stem}".encode())
        item = id_from_content(sha256_bytes(data), None, with_caption=False)
        self.folder_ids[str(path)] = item
        self.expected.add(item)

    def run(self, events: list[tuple[str, object]], seconds: float) -> None:
        """Write the events in small bursts spread over `seconds`."""
        burst = 25
        pause = seconds / (len(events) / burst)
        for start in range(0, len(events), burst):
            for kind, what in events[start : start + burst]:
                self.write(kind, what)
                self.written += 1
            time.sleep(pause)
        self.done.set()


def _jpeg(seed: int) -> bytes:
    path = Path(f"/dev/shm/topics-crash-{os.getpid()}-{seed}.jpg")
    if not path.parent.is_dir():
        path = Path(f"/tmp/topics-crash-{os.getpid()}-{seed}.jpg")
    draw_image(path, seed=seed, size=(32, 24))
    data = path.read_bytes()
    path.unlink()
    return data


def _atomic(path: Path, data: bytes) -> None:
    """How a well-behaved producer drops a file: a hidden temporary name, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---- reading the ledger while serve runs ----


def _ledger(data_dir: Path) -> tuple[int, int]:
    """(files recorded, feed lines committed) as another process sees them now."""
    try:
        with sqlite3.connect(f"file:{data_dir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=2) as db:
            files = db.execute("SELECT COUNT(*) FROM files").fetchone()[0]
            cursors = [json.loads(v) for (v,) in db.execute("SELECT value FROM cursors")]
    except sqlite3.Error:
        return 0, 0
    return files, sum(c.get("line", 0) for c in cursors)


def _stored_count(data_dir: Path) -> int:
    """Items in the store, read between a kill and the next start (the store opens cleanly, too)."""
    backend = open_backend(load_settings(data_dir=data_dir))
    try:
        items = backend.collection("items")
        return items.count() if items.exists() else 0
    finally:
        backend.close()


def test_kill_9_of_serve_20_times_while_3000_items_arrive(tmp_path: Path, serve: Serve) -> None:
    feed_dir, inbox = tmp_path / "feed", tmp_path / "inbox"
    feed_dir.mkdir()
    inbox.mkdir()
    arrival = Arrival(feed_dir / "posts.jsonl", inbox, SEED)
    arrival.feed.touch()
    events = arrival.events()
    env = tiny_env(serve.data_dir, **FAST)
    args = ["--watch", str(inbox), "--feed", str(arrival.feed)]
    rng = random.Random(SEED)
    writer = threading.Thread(target=arrival.run, args=(events, 40.0), daemon=True)
    writer.start()

    kills: list[tuple[str, int, int]] = []  # (when, inputs arrived, items stored) at each kill
    for k in range(KILLS):
        in_startup = k % 5 == 4  # every fifth kill lands while serve is still starting
        pid = serve.start(args, env, wait=not in_startup)
        time.sleep(rng.uniform(0.0, 1.2) if in_startup else rng.uniform(0.2, 2.5))
        arrived = arrival.written
        serve.kill9(pid)
        kills.append(("startup" if in_startup else "running", arrived, _stored_count(serve.data_dir)))

    arrival.done.wait(120)
    files_in_folder = len(arrival.folder_ids)
    pid = serve.start(args, env)
    wait_for(
        lambda: _ledger(serve.data_dir) == (files_in_folder, arrival.lines),
        180,
        f"the final run to store everything (ledger {_ledger(serve.data_dir)})",
        interval=0.3,
    )
    assert serve.stop(pid) == 0, serve.log.read_text()[-3000:]
    assert owner_pid(serve.data_dir) is None  # a clean stop removes the control file

    # the kills landed while items were on their way in, not before or after the stream
    progress = [b[2] - a[2] for a, b in itertools.pairwise(kills)]
    assert sum(1 for p in progress if p > 0) >= KILLS // 2, kills
    assert kills[KILLS // 2][2] < kills[KILLS // 2][1], kills  # mid-way, arrivals were still waiting
    print("serve kills (when, arrived, stored):", kills)
    _check_store(serve.data_dir, arrival)


def _check_store(data_dir: Path, arrival: Arrival) -> None:
    """Stored ids are exactly the expected ones; ledger rows and feed cursor match the inputs."""
    assert len(arrival.expected) == 2880
    with Index(load_settings(data_dir=data_dir)) as index:
        stored = [p.id for batch in index.items.scroll(payload=False) for p in batch]
        assert len(stored) == len(set(stored))
        missing, extra = arrival.expected - set(stored), set(stored) - arrival.expected
        assert not missing and not extra, f"{len(missing)} missing, {len(extra)} unexpected"
        ledger = index.ledger
        rows = {path: ledger.lookup(path) for path in arrival.folder_ids}
        assert {p: r.item_id if r else None for p, r in rows.items()} == arrival.folder_ids
        assert ledger.failures() == []
        cursor = json.loads(ledger.get_cursor(f"jsonl:{arrival.feed.resolve()}") or "{}")
        assert (cursor["line"], cursor["offset"]) == (arrival.lines, arrival.feed.stat().st_size)
        on_disk = sorted(str(p) for p in arrival.inbox.rglob("*") if p.is_file())
        assert all(not Path(p).name.startswith(".") for p in on_disk)  # no temporary left behind
        assert sum(1 for p in on_disk if p.endswith(".jpg") or "/notes/" in p) == len(rows)


# ---- kill -9 of `topics recluster` at random phases ----

PHASES = [
    "started",
    "sampled",
    "fitted",
    "matched",
    "items_written",
    "represented",
    "topics_written",
    "switched",
    "cleaned",
    "optimized",
]
RECLUSTER_KILLS = 7


def _manifest(path: Path, start: int, n: int) -> Path:
    themes = ["tractor protest farmers", "cat sleeping sofa", "football goal stadium", "rain storm flood"]
    with path.open("w") as fh:
        for i in range(start, start + n):
            theme = themes[i % len(themes)]
            fh.write(json.dumps({"id": f"m{i}", "body": f"{theme} {theme} number {i % 7}"}) + "\n")
    return path


@dataclass(frozen=True)
class ReaderView:
    run_id: int | None
    sizes: dict[int, int]
    assigned: dict[str, int | None]


def _reader_view(data_dir: Path) -> ReaderView:
    """What any reader sees, checked for consistency on the way: the current run's topic records all
    exist and count the items assigned to them; every item has a topic under that run or is pending."""
    with Index(load_settings(data_dir=data_dir)) as index:
        run = catalog.current_run(index.backend)
        assert run is not None
        topics = catalog.list_topics(index.backend, include_vanished=True)
        live = [t for t in topics if t.status != "vanished"]
        assert all(t.run_id == run.run_id for t in live)
        assert all(t.run_id <= run.run_id for t in topics)  # a vanished topic: the run it ended in
        assert len(live) == run.n_topics
        assigned: dict[str, int | None] = {}
        for batch in index.items.scroll():
            for point in batch:
                found = catalog.read_assignment(point.payload, run)
                assert found is not None or point.payload.get("pending") == 1, point.payload
                assigned[point.id] = None if found is None else found.topic
        counted = Counter(t for t in assigned.values() if t is not None and t != OUTLIER)
        assert dict(counted) == {t.topic_id: t.size for t in live if t.size}
        return ReaderView(run.run_id, {t.topic_id: t.size for t in live}, assigned)


def _cli_agrees(forkserver: ForkServer, env: dict[str, str], log: Path, view: ReaderView) -> None:
    """`topics list` and `topics show` answer, and say what the store says."""
    code, out = forkserver.run(["list", "--flat", "--json"], env, log)
    assert code == 0, out
    listed = json.loads(out.strip().splitlines()[-1])
    assert {t["id"]: t["size"] for t in listed} == view.sizes
    if listed:
        first = listed[0]["id"]
        code, out = forkserver.run(["show", str(first), "--json"], env, log)
        assert code == 0, out
        assert json.loads(out.strip().splitlines()[-1])["size"] == view.sizes[first]


def _recluster_killed_at(
    forkserver: ForkServer, env: dict[str, str], log: Path, phase: str, delay: float
) -> str:
    """Run `topics -v recluster`, kill -9 it `delay` s after it reports `phase`; the last phase seen."""
    start = log.stat().st_size if log.exists() else 0
    pid = forkserver.spawn(["-v", "recluster"], env, log, patch={"topics.recluster.sizes.SCROLL_BATCH": 64})
    while phase not in _phases_logged(log, start):
        status = forkserver.wait(pid, 0)
        if status is not None:
            assert status == 0, log.read_text(errors="replace")[start:][-3000:]
            return "finished"
        time.sleep(0.005)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    status = forkserver.wait(pid, 30)
    return "finished" if status == 0 else _phases_logged(log, start)[-1]


def _phases_logged(log: Path, start: int) -> list[str]:
    """The phases `recluster -v` logged ("INFO topics.recluster.job: recluster: fitted (0.12 s)"); its other
    lines ("recluster: waited 0.00 s for searches ...") do not have a phase's shape."""
    text = log.read_text(errors="replace")[start:]
    return re.findall(r"topics\.recluster\.job: recluster: (\w+) \([\d.]+ s\)", text)


def test_kill_9_of_recluster_at_random_phases_keeps_topics_consistent(
    tmp_path: Path, forkserver: ForkServer
) -> None:
    data = tmp_path / "data"
    env = tiny_env(data)
    log = tmp_path / "cli.log"
    code, out = forkserver.run(["ingest", str(_manifest(tmp_path / "one.jsonl", 0, 480))], env, log)
    assert code == 0, out
    code, out = forkserver.run(["recluster", "--json"], env, log)
    assert code == 0, out
    view = _reader_view(data)
    assert view.run_id == 1 and view.sizes, "the first run found no topics to keep consistent"
    code, out = forkserver.run(["ingest", str(_manifest(tmp_path / "two.jsonl", 480, 240))], env, log)
    assert code == 0, out

    rng = random.Random(SEED)
    outcomes: list[tuple[str, str, int | None, int | None]] = []
    for phase in rng.sample(PHASES, RECLUSTER_KILLS):  # seven different phases
        before = _reader_view(data)
        last = _recluster_killed_at(forkserver, env, log, phase, rng.uniform(0.0, 0.05))
        after = _reader_view(data)
        if last == "finished" or PHASES.index(last) >= PHASES.index("switched"):
            assert after.run_id == before.run_id + 1  # the switch happened: all new
        elif PHASES.index(last) < PHASES.index("topics_written"):
            assert after == before  # killed before the switch: all old, exactly as it was
        else:
            assert after == before or after.run_id == before.run_id + 1
        _cli_agrees(forkserver, env, log, after)
        outcomes.append((phase, last, before.run_id, after.run_id))

    code, out = forkserver.run(["recluster", "--json"], env, log)
    assert code == 0, out
    final = _reader_view(data)
    assert all(topic is not None for topic in final.assigned.values())  # nothing left pending
    assert len(final.assigned) == 720
    with Index(load_settings(data_dir=data)) as index:
        stale = Filter(must={"kind": "topic"}, must_not={"run_id": final.run_id})
        assert index.topics.count(stale) == 0
    _cli_agrees(forkserver, env, log, final)
    print("recluster kills (target, last phase, run before, run after):", outcomes)
    killed = [o for o in outcomes if o[1] != "finished"]
    assert len(killed) >= RECLUSTER_KILLS // 2, outcomes
    shutil.rmtree(data, ignore_errors=True)
