"""The web interface in a real headless Chromium (Debian's, driven by Playwright) against a real
`topics serve` on a real embedded store: browse themes -> topic -> item, search by text and by image,
curate and undo (seen in the CLI, and the CLI's curation seen on the open page), a new item arriving
while a page is open, a corpus of hostile captions, labels and file names that runs no script and
loads nothing from outside, and the token a non-loopback bind needs."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import closed_port, draw_image, run_cli, start_serve, tiny_env
from tests.web_corpus import FOURCAT_ID, PAYLOADS, PWNED, assert_inert, make_corpus, make_manifest

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"]
TIMEOUT_MS = 30_000


@dataclass
class Site:
    data_dir: Path
    inbox: Path
    corpus: Path
    env: dict[str, str]


@dataclass
class Seen:
    """What a page asked for beyond its own origin (each is aborted), and the script errors it hit."""

    base: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return tiny_env(
        data_dir,
        TOPICS_CLUSTER__VIEW="image",
        TOPICS_CLUSTER__MIN_CLUSTER_SIZE="3",
        TOPICS_CLUSTER__CRON="off",
        TOPICS_CLUSTER__ONLINE_INTERVAL_S="1",
        TOPICS_WATCH__SETTLE_S="0.2",
        TOPICS_WATCH__SIDECAR_GRACE_S="0.3",
        TOPICS_FETCH__RETRIES="0",
        TOPICS_WEB__ENABLED="true",
        **extra,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    """A store of the hostile corpus (captions, file names), ingested and reclustered by the CLI."""
    root = tmp_path_factory.mktemp("web-e2e")
    data = root / "data"
    corpus = make_corpus(root / "in")
    manifest = make_manifest(root / "manifests" / "export.jsonl")
    env = _env(data)
    for args in (["ingest", str(corpus), str(manifest)], ["recluster"]):
        done = run_cli(args, env, timeout=300)
        assert done.returncode in (0, 1), done.stderr  # 1: the URL row failed, as it should
    (root / "inbox").mkdir()
    return Site(data, root / "inbox", corpus, env)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("headless Chromium is not installed: `make browser` installs Debian's chromium package")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _serve(env: dict[str, str], args: list[str]) -> tuple[subprocess.Popen, str]:
    """`topics serve` and the URL it printed for the web interface."""
    proc = start_serve(env, args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "web interface at " in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
            return proc, line.split("web interface at ", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("serve printed no web URL")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _page(browser, base: str):
    context = browser.new_context(base_url=base)
    seen = Seen(base)

    def route(request_route, request) -> None:
        if request.url.startswith(base):
            request_route.continue_()
        else:
            seen.outside.append(request.url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    return context, page, seen


def _inert(page, seen: Seen) -> None:
    """No injected script ran and nothing outside was asked for; the markup carries none either."""
    assert PWNED not in page.title()
    assert page.evaluate("() => !window.__pwned && document.body.style.display !== 'none'")
    assert_inert(page.content())
    assert not seen.outside, seen.outside
    assert not seen.errors, seen.errors


def _cli_json(args: list[str], env: dict[str, str]) -> dict:
    done = run_cli([*args, "--json"], env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_browse_search_curate_and_live_updates_in_chromium(site: Site, browser, tmp_path: Path) -> None:
    port = closed_port()
    proc, url = _serve({**site.env, "TOPICS_WEB__PORT": str(port)}, ["--watch", str(site.inbox)])
    try:
        assert url == f"http://127.0.0.1:{port}/"
        context, page, seen = _page(browser, url.rstrip("/"))
        # themes -> topic -> item
        page.goto("/")
        assert page.locator("section.theme").count() >= 1
        _inert(page, seen)
        page.locator("td.label a").first.click()
        page.wait_for_url("**/topics/*")
        topic_id = page.url.rsplit("/", 1)[1]
        thumbs = page.locator("ul.grid img.thumb")
        assert thumbs.count() >= 1
        page.wait_for_function("() => [...document.querySelectorAll('ul.grid img')].every(i => i.complete)")
        assert page.evaluate(
            "() => [...document.querySelectorAll('ul.grid img')].every(i => i.naturalWidth > 0)"
        )
        _inert(page, seen)
        page.locator("ul.grid a").first.click()
        page.wait_for_url("**/items/*")
        assert page.locator("dd.caption").inner_text()
        _inert(page, seen)
        page.locator("#search-like").click()
        page.wait_for_url("**/search?like=*")
        assert page.locator(".hit-topic").count() + page.locator("ul.grid li").count() >= 1

        # search by text, then by an uploaded picture
        page.goto("/search")
        page.fill("input[name=q]", "tractor protest")
        page.locator("form.search button").first.click()
        page.wait_for_url("**/search?q=*")
        assert page.locator(".results .theme").count() >= 1
        _inert(page, seen)
        picture = draw_image(tmp_path / "query.jpg", seed=5)
        page.goto("/search")
        page.set_input_files("input[name=image]", str(picture))
        page.locator("form.upload button").click()
        page.wait_for_load_state()
        assert page.locator(".results .hit-topic").count() >= 1
        _inert(page, seen)

        # curate in the browser: the CLI sees it; the CLI's undo shows on the open page without a reload
        page.goto(f"/topics/{topic_id}")
        label = f"{PAYLOADS[0]} browser label"
        page.fill("form[action$='/label'] input[name=label]", label)
        page.locator("form[action$='/label'] button").click()
        page.wait_for_url(f"**/topics/{topic_id}")
        assert page.locator("#record-title .label").inner_text() == label  # a hostile label: text
        _inert(page, seen)
        page.goto("/")
        assert label in page.locator("main").inner_text()
        _inert(page, seen)
        page.goto(f"/topics/{topic_id}")
        assert _cli_json(["show", topic_id], site.env)["label"] == label
        page.evaluate("() => { window.__marker = 'still here' }")
        assert run_cli(["unlabel", topic_id], site.env).returncode == 0
        page.wait_for_function(
            "label => document.querySelector('#record-title .label').textContent !== label", arg=label
        )
        assert page.evaluate("() => window.__marker") == "still here"  # no reload
        page.locator("form[action$='/hide'] button").click()
        page.wait_for_url(f"**/topics/{topic_id}")
        assert topic_id not in [str(t["id"]) for t in _cli_json(["list", "--flat"], site.env)]
        page.locator("form[action$='/unhide'] button").click()
        page.wait_for_url(f"**/topics/{topic_id}")
        assert topic_id in [str(t["id"]) for t in _cli_json(["list", "--flat"], site.env)]

        # a new item arrives while the status page is open
        page.goto("/status")
        before = int(page.locator("#status-items").inner_text())
        page.evaluate("() => { window.__marker = 'no reload' }")
        draw_image(site.inbox / "arrived.jpg", seed=77)
        (site.inbox / "arrived.txt").write_text(f"a late arrival {PAYLOADS[2]}", encoding="utf-8")
        page.wait_for_function(
            "n => Number(document.querySelector('#status-items').textContent) === n", arg=before + 1
        )
        assert page.evaluate("() => window.__marker") == "no reload"
        assert f"{before + 1} items" in page.locator("#live").inner_text()
        _inert(page, seen)
        context.close()
    finally:
        _stop(proc)


def test_a_non_loopback_bind_needs_its_token(site: Site, browser) -> None:
    port = closed_port()
    env = {**site.env, "TOPICS_WEB__PORT": str(port), "TOPICS_WEB__HOST": "0.0.0.0"}
    proc, url = _serve(env, [])
    try:
        assert "?token=" in url
        base = f"http://127.0.0.1:{port}"
        context, page, seen = _page(browser, base)
        refused = page.goto("/")
        assert refused.status == 403 and "token" in page.inner_text("body")
        assert page.goto(f"/status?{url.split('?', 1)[1]}").status == 200
        assert page.url == f"{base}/status"  # the token left the address bar for a cookie
        assert page.goto("/index.json").status == 200
        cookie = next(c for c in context.cookies() if c["name"] == "topics_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert FOURCAT_ID in page.goto(f"/items/{_fourcat_item(page)}").text()
        _inert(page, seen)
        context.close()
        with pytest.raises(urllib.error.HTTPError) as plain:  # no cookie, no token: refused
            urllib.request.urlopen(f"{base}/status.json", timeout=10)
        assert plain.value.code == 403
    finally:
        _stop(proc)


def _fourcat_item(page) -> str:
    """The item id of the manifest's 4CAT row, found by searching its caption."""
    found = json.loads(page.goto("/search.json?q=red+tractor+farmers+4cat+row&limit=50").text())
    hits = [*found["result"]["unassigned"], *(i for t in found["result"]["topics"] for i in t["items"])]
    return next(h["item_id"] for h in hits if h["caption"] == "red tractor farmers 4cat row")
