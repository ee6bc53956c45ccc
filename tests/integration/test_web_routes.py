"""The web app's routes through Starlette's test client, on a real embedded store (tiny CLIP ingest +
recluster): every page and its JSON twin, strict ids, curation with CSRF and its undo, search by text
and image, uploads refused, thumbnails from the stored picture only, Host and token checks."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from indexer.config import Settings
from indexer.index import Index
from indexer.ingest import ingest_paths
from tests.helpers import tiny_edge_settings
from tests.web_corpus import FOURCAT_ID, HOSTILE_NAME, PAYLOADS, assert_inert, make_corpus, make_manifest
from topics import catalog
from topics.service.jobs import rebuild_topics
from web.app import create_app
from web.security import CSP, CSRF_COOKIE, Access

BASE = "http://127.0.0.1:8765"


class _Kept:
    """The test's one open backend, handed to each request's index; closing that leaves it open."""

    def __init__(self, backend) -> None:
        self._backend = backend

    def collection(self, name: str):
        return self._backend.collection(name)

    def close(self) -> None:
        pass


@dataclass
class Store:
    settings: Settings
    index: Index
    root: Path

    def open_index(self) -> Index:
        return Index(self.settings, backend=_Kept(self.index.backend))  # type: ignore[arg-type]


def _settings(data_dir: Path, **web: object) -> Settings:
    return tiny_edge_settings(
        data_dir, fetch={"retries": 0, "timeout_s": 2}, web={"thumb_cache_mb": 1, **web}
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    import torch

    root = tmp_path_factory.mktemp("web")
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("TOPICS_")]:
            env.delenv(name)
        env.setenv("TOPICS_CONFIG", str(root / "none.toml"))
        torch.manual_seed(0)
        folder = make_corpus(root / "in")
        manifest = make_manifest(root / "manifests" / "export.jsonl")
        settings = _settings(root / "data", max_upload_mb=0.05)
        index = Index(settings)
        ingest_paths(index, [folder])
        ingest_paths(index, [manifest])  # the URL row fails (no such host): a failure with a reason
        rebuild_topics(index)
        yield Store(settings, index, root)
        index.close()


@pytest.fixture(scope="module")
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store.open_index, store.settings), base_url=BASE) as c:
        yield c


def _csrf(client: TestClient, path: str = "/") -> str:
    page = client.get(path)
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text) or re.search(
        r'data-csrf="([0-9a-f]+)"', page.text
    )
    assert found, page.text[:500]
    return found.group(1)


def _topics(client: TestClient) -> list[dict]:
    return [t for theme in client.get("/index.json").json()["themes"] for t in theme["topics"]]


def test_every_page_renders_with_its_json_twin_and_the_csp(client: TestClient) -> None:
    tree = client.get("/index.json").json()["themes"]
    assert tree and all(theme["topics"] for theme in tree)
    topic = tree[0]["topics"][0]
    theme = f"T{tree[0]['theme_id']}"
    pages = ["/", "/?sort=label&min_size=1&hidden=1", f"/topics/{topic['id']}", f"/themes/{theme}",
             "/search", "/search?q=tractor", "/history", "/status"]  # fmt: skip
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, (path, page.text[:300])
        assert page.headers["content-security-policy"] == CSP
        assert "frame-ancestors 'none'" in CSP and "'unsafe-inline'" not in CSP
        assert_inert(page.text)
        twin = (
            path.replace("?", ".json?", 1)
            if "?" in path
            else (path + ".json" if path != "/" else "/index.json")
        )
        assert client.get(twin).headers["content-type"].startswith("application/json"), twin

    shown = client.get(f"/topics/{topic['id']}.json").json()
    assert shown["id"] == topic["id"] and shown["items"]["total"] == topic["size"]
    assert shown["items"]["per_page"] == 60 and len(shown["items"]["items"]) == min(60, topic["size"])
    scores = [i["score"] for i in shown["items"]["items"]]
    assert scores == sorted(scores, reverse=True)
    by_time = client.get(f"/topics/{topic['id']}.json?order=time").json()["items"]
    assert sorted(i["item_id"] for i in by_time["items"]) == sorted(
        i["item_id"] for i in shown["items"]["items"]
    )
    whole = client.get(f"/themes/{theme}.json").json()
    assert whole["items"]["total"] == sum(t["size"] for t in whole["topics"])


def test_item_page_shows_source_fields_topic_and_nearest(client: TestClient, store: Store) -> None:
    items = store.index.items
    fourcat = next(p for b in items.scroll() for p in b if p.payload.get("source_id") == FOURCAT_ID)
    found = client.get(f"/items/{fourcat.id}.json").json()
    assert found["source_id"] == FOURCAT_ID and found["created_at"].startswith("2024-03-01")
    assert found["nearest"] and all(n["item_id"] != fourcat.id for n in found["nearest"])
    page = client.get(f"/items/{fourcat.id}")
    assert FOURCAT_ID in page.text and f'href="/search?like={fourcat.id}"' in page.text
    if found["topic"] is not None:
        assert f'href="/topics/{found["topic"]}"' in page.text
    like = client.get(f"/search.json?like={fourcat.id}").json()
    assert like["result"]["topics"] or like["result"]["unassigned"]


def test_ids_are_strict_unknown_ones_404_malformed_400(client: TestClient) -> None:
    assert client.get("/topics/99999").status_code == 404
    assert client.get("/themes/T99999.json").json()["status"] == 404
    assert client.get("/items/00000000-0000-0000-0000-000000000000").status_code == 404
    for path in ("/topics/12abc", "/topics/-1", "/themes/3",
                 "/items/x", "/thumbs/not-a-uuid", "/?sort=evil", "/?min_size=-3",
                 "/topics/1?page=0", "/topics/1?order=random", "/search?q=a&since=yesterday",
                 "/search?q=a&theme=Tx", "/search?q=a&limit=100000"):  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 400, (path, answer.status_code)
        assert len(answer.text.strip().splitlines()) > 0
        line = client.get(path, headers={"accept": "application/json"}).json()["error"]
        assert "\n" not in line and line, path
    assert client.get("/nowhere").status_code == 404
    assert client.get("/items/..%2F..%2Fetc%2Fpasswd").status_code == 404  # no route: nothing read


def test_curation_needs_csrf_and_each_verb_has_its_undo(client: TestClient) -> None:
    first, second = _topics(client)[:2]
    path = f"/topics/{first['id']}"
    # no token, a wrong token, a token without its cookie: refused, nothing written
    assert client.post(f"{path}/label", data={"label": "x"}).status_code == 403
    assert client.post(f"{path}/label", data={"label": "x", "csrf": "0" * 64}).status_code == 403
    token = _csrf(client, path)
    stranger = TestClient(client.app, base_url=BASE)
    assert stranger.post(f"{path}/label", data={"label": "x", "csrf": token}).status_code == 403
    assert client.get(f"{path}.json").json()["label"] != "x"
    assert client.get(f"{path}/label").status_code == 405  # a GET never changes anything

    label = f"pinned {PAYLOADS[0]}"
    done = client.post(f"{path}/label", data={"label": label, "csrf": token, "next": "//evil.example/"},
                       follow_redirects=False)  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == path  # never off-site
    assert client.get(f"{path}.json").json()["label"] == label
    page = client.get(path).text
    assert "<script>document" not in page and "&lt;script&gt;" in page
    assert client.post(f"{path}/unlabel", data={"csrf": token}).status_code == 200  # 303 followed
    assert client.get(f"{path}.json").json()["label"] != label

    assert client.post(f"{path}/hide", data={"csrf": token}).status_code == 200
    assert first["id"] not in [t["id"] for t in _topics(client)]
    assert client.post(f"{path}/unhide", data={"csrf": token}).status_code == 200
    assert first["id"] in [t["id"] for t in _topics(client)]

    merged = client.post(f"{path}/merge", data={"with": str(second["id"]), "csrf": token},
                         headers={"accept": "application/json"})  # fmt: skip
    assert merged.status_code == 200 and merged.json()["done"] == "merge"
    assert second["id"] not in [t["id"] for t in _topics(client)]
    assert client.get(f"{path}.json").json()["items"]["total"] == first["size"] + second["size"]
    assert client.post(f"{path}/unmerge", data={"csrf": token}).status_code == 200
    assert {first["id"], second["id"]} <= {t["id"] for t in _topics(client)}

    # refusals are one line: unlabel without a label, merge with itself, an unknown verb or id
    assert client.post(f"{path}/unlabel", data={"csrf": token}).status_code == 400
    assert client.post(f"{path}/merge", data={"with": str(first["id"]), "csrf": token}).status_code == 400
    assert client.post(f"{path}/explode", data={"csrf": token}).status_code == 404
    assert client.post("/topics/99999/hide", data={"csrf": token}).status_code == 404
    theme = client.get("/index.json").json()["themes"][0]["theme_id"]
    assert client.post(f"/themes/T{theme}/label", data={"label": "a theme", "csrf": token}).status_code == 200
    assert client.get(f"/themes/T{theme}.json").json()["label"] == "a theme"
    assert client.post(f"/themes/T{theme}/unlabel", data={"csrf": token}).status_code == 200


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "JPEG")
    return buffer.getvalue()


def test_search_by_text_and_image_and_bad_uploads(client: TestClient) -> None:
    found = client.get("/search.json?q=tractor&not=ocean&limit=5").json()["result"]
    assert found["themes"] and found["topics"]
    assert all(t["topic_id"] in [x for th in found["themes"] for x in th["topics"]] for t in found["topics"])
    token = _csrf(client, "/search")
    by_image = client.post("/search.json", data={"csrf": token},
                           files={"image": ("q.jpg", _jpeg((200, 30, 30)), "image/jpeg")})  # fmt: skip
    assert by_image.status_code == 200 and by_image.json()["result"]["topics"]
    page = client.post("/search", data={"csrf": token}, files={"image": ("q.jpg", _jpeg((30, 30, 200)))})
    assert page.status_code == 200 and "/thumbs/" in page.text

    junk = client.post("/search", data={"csrf": token}, files={"image": ("q.jpg", b"not a picture")})
    assert junk.status_code == 400 and "not-an-image" in junk.text
    big = client.post("/search", data={"csrf": token}, files={"image": ("q.jpg", os.urandom(80_000))})
    assert big.status_code == 413  # web.max_upload_mb is 0.05 here
    assert client.post("/search", files={"image": ("q.jpg", _jpeg((1, 2, 3)))}).status_code == 403


def test_thumbnails_come_from_the_stored_picture_only(client: TestClient, store: Store) -> None:
    points = [p for b in store.index.items.scroll() for p in b]
    with_picture = next(p for p in points if p.payload.get("path", "").endswith("g0_1.jpg"))
    hostile = next(p for p in points if p.payload.get("path", "").endswith(HOSTILE_NAME))
    drawing = next(p for p in points if p.payload.get("path", "").endswith(".svg"))
    words = next(p for p in points if not p.payload.get("path") and not p.payload.get("url"))
    for point in (with_picture, hostile, drawing):
        thumb = client.get(f"/thumbs/{point.id}")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg", point.payload
        assert Image.open(io.BytesIO(thumb.content)).size[0] <= 256
        assert "max-age" in thumb.headers["cache-control"]
    assert client.get(f"/thumbs/{words.id}").status_code == 404  # the page shows its caption
    assert (
        client.get(f"/thumbs/{with_picture.id}?path=/etc/passwd").content
        == client.get(f"/thumbs/{with_picture.id}").content
    )
    cached = list((store.settings.data_dir / "thumbs").glob("*/*.jpg"))
    assert len(cached) >= 3
    topic = _topics(client)[0]["id"]
    assert client.get(f"/tiles/{topic}").status_code == 200


def test_host_header_and_token(store: Store) -> None:
    app = create_app(store.open_index, store.settings)
    with TestClient(app, base_url="http://evil.example:8765") as rebinding:
        refused = rebinding.get("/index.json")
        assert refused.status_code == 400 and "Host" in refused.text
    with TestClient(app, base_url="http://localhost:8765") as local:
        assert local.get("/status.json").status_code == 200

    wide = create_app(store.open_index, store.settings, access=Access.for_bind("0.0.0.0", "s3cret"))
    with TestClient(wide, base_url="http://192.0.2.7:8765") as remote:
        assert remote.get("/index.json").status_code == 403
        assert remote.get("/?token=wrong").status_code == 403
        entry = remote.get("/status?token=s3cret", follow_redirects=False)
        assert entry.status_code == 303 and entry.headers["location"] == "/status"
        assert "HttpOnly" in entry.headers["set-cookie"]
        assert remote.get("/status.json").status_code == 200  # the cookie now
    assert Access.for_bind("127.0.0.1", None).token is None
    assert Access.for_bind("0.0.0.0", None).token  # a fresh one per start
    assert catalog.current_run(store.index.backend) is not None


def test_status_and_history_say_what_happened(client: TestClient) -> None:
    info = client.get("/status.json").json()
    assert info["items"] > 40 and info["failures"]
    reason = next(iter(info["failures"]))
    assert info["failure_examples"][reason][0]["origin"]
    page = client.get("/status").text
    assert reason in page
    history = client.get("/history.json").json()
    assert history["runs"] and history["events"]
    live = client.get("/live.json").json()
    assert live["items"] == info["items"] and live["run_id"] == info["run_id"]
    assert client.cookies.get(CSRF_COOKIE)
