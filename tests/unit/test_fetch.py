"""ImageFetcher against a real loopback HTTP server: every way a hostile or broken URL can fail."""

from __future__ import annotations

import io
import ipaddress
import time
from collections.abc import Iterator

import pytest
from loopback import LoopbackServer, Reply
from PIL import Image

from indexer.fetch import AddressPolicy, FetchError, ImageFetcher, image_format
from tests.helpers import closed_port


def png_bytes(size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG = png_bytes()


@pytest.fixture
def fetcher() -> Iterator[ImageFetcher]:
    sleeps: list[float] = []
    with ImageFetcher(allow_private=True, timeout_s=1.0, retries=2, sleep=sleeps.append) as local:
        local.sleeps = sleeps  # type: ignore[attr-defined]
        yield local


def reason_of(fetcher: ImageFetcher, url: str) -> str:
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(url)
    return caught.value.reason


# -- success --------------------------------------------------------------------------------------


def test_fetches_an_image(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/a.png", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    assert fetcher.fetch(server.url("/a.png")) == PNG
    assert server.requests[0][1]["User-Agent"].startswith("topics-indexer")


@pytest.mark.parametrize("content_type", [None, "application/octet-stream"])
def test_untyped_image_is_sniffed(server: LoopbackServer, fetcher: ImageFetcher, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    server.route("/raw", Reply(body=PNG, headers=headers))
    assert fetcher.fetch(server.url("/raw")) == PNG


def test_follows_redirects(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/one", Reply(302, headers={"Location": "/two"}))
    server.route("/two", Reply(301, headers={"Location": server.url("/img")}))
    server.route("/img", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    assert fetcher.fetch(server.url("/one")) == PNG
    assert [path for path, _ in server.requests] == ["/one", "/two", "/img"]


# -- content refused ------------------------------------------------------------------------------


def test_html_instead_of_image(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route(
        "/page", Reply(body=b"<html>hi</html>", headers={"Content-Type": "text/html; charset=utf-8"})
    )
    assert reason_of(fetcher, server.url("/page")) == "not-an-image"


def test_untyped_html_is_not_an_image(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/page", Reply(body=b"<!doctype html><html><body>x</body></html>"))
    assert reason_of(fetcher, server.url("/page")) == "not-an-image"


def test_svg_is_not_a_raster_image(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/v.svg", Reply(body=b"<svg/>", headers={"Content-Type": "image/svg+xml"}))
    assert reason_of(fetcher, server.url("/v.svg")) == "not-an-image"


def test_declared_length_over_cap(server: LoopbackServer) -> None:
    server.route("/big", Reply(body=b"\xff\xd8\xff" + bytes(5000), headers={"Content-Type": "image/jpeg"}))
    with ImageFetcher(allow_private=True, max_bytes=1000) as small:
        assert reason_of(small, server.url("/big")) == "too-large"


def test_streamed_body_over_cap(server: LoopbackServer) -> None:
    body = b"\xff\xd8\xff" + bytes(50_000)
    server.route("/big", Reply(body=body, headers={"Content-Type": "image/jpeg"}, length=False, chunk=4096))
    with ImageFetcher(allow_private=True, max_bytes=10_000) as small:
        assert reason_of(small, server.url("/big")) == "too-large"


# -- HTTP failures and retries --------------------------------------------------------------------


def test_404_is_not_retried(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    assert reason_of(fetcher, server.url("/missing.png")) == "http-404"
    assert server.hits["/missing.png"] == 1


def test_5xx_is_retried_with_backoff(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/flaky", Reply(503, b"busy"))
    with pytest.raises(FetchError) as caught:
        fetcher.fetch(server.url("/flaky"))
    assert (caught.value.reason, caught.value.transient) == ("http-status", True)
    assert "503" in caught.value.detail
    assert server.hits["/flaky"] == 3
    assert fetcher.sleeps == [0.5, 1.0]  # type: ignore[attr-defined]


def test_retry_recovers_from_a_transient_failure(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    answers = iter([Reply(502), Reply(body=PNG, headers={"Content-Type": "image/png"})])
    server.route("/once", lambda _request: next(answers))
    assert fetcher.fetch(server.url("/once")) == PNG
    assert server.hits["/once"] == 2


def test_connection_refused() -> None:
    with ImageFetcher(allow_private=True, retries=1, sleep=lambda _s: None) as local:
        assert reason_of(local, f"http://127.0.0.1:{closed_port()}/x.png") == "connection"


def test_slow_server_times_out(server: LoopbackServer) -> None:
    server.route("/slow", Reply(body=PNG, headers={"Content-Type": "image/png"}, delay_s=3.0))
    with ImageFetcher(allow_private=True, timeout_s=1.0, retries=0) as local:
        started = time.monotonic()
        assert reason_of(local, server.url("/slow")) == "timeout"
        assert time.monotonic() - started < 2.5


def test_dripping_body_hits_the_deadline(server: LoopbackServer) -> None:
    body = b"\xff\xd8\xff" + bytes(4000)
    server.route("/drip", Reply(body=body, headers={"Content-Type": "image/jpeg"}, chunk=200, drip_s=0.15))
    with ImageFetcher(allow_private=True, timeout_s=1.0, retries=0) as local:
        started = time.monotonic()
        assert reason_of(local, server.url("/drip")) == "timeout"
        assert time.monotonic() - started < 2.5


# -- redirects ------------------------------------------------------------------------------------


def test_redirect_loop(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    server.route("/a", Reply(302, headers={"Location": "/b"}))
    server.route("/b", Reply(302, headers={"Location": "/a"}))
    assert reason_of(fetcher, server.url("/a")) == "redirect-loop"
    assert server.hits["/a"] == 1


def test_too_many_redirects(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    for n in range(10):
        server.route(f"/r{n}", Reply(307, headers={"Location": f"/r{n + 1}"}))
    assert reason_of(fetcher, server.url("/r0")) == "redirect-loop"
    assert sum(server.hits.values()) == 6  # the first request and 5 redirects


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "ftp://127.0.0.1/x.png", "gopher://127.0.0.1:70/"]
)
def test_redirect_to_another_scheme(server: LoopbackServer, fetcher: ImageFetcher, location: str) -> None:
    server.route("/jump", Reply(302, headers={"Location": location}))
    assert reason_of(fetcher, server.url("/jump")) == "bad-scheme"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.com/a.png", "data:image/png;base64,AA=="]
)
def test_only_http_and_https(fetcher: ImageFetcher, url: str) -> None:
    assert reason_of(fetcher, url) == "bad-scheme"


@pytest.mark.parametrize("url", ["not a url", "/relative/path.png", "http:///nohost"])
def test_malformed_urls(fetcher: ImageFetcher, url: str) -> None:
    assert reason_of(fetcher, url) == "bad-url"


# -- private addresses ----------------------------------------------------------------------------


def test_default_refuses_loopback_without_connecting(server: LoopbackServer) -> None:
    server.route("/a.png", Reply(body=PNG, headers={"Content-Type": "image/png"}))
    with ImageFetcher() as default:
        for url in (server.url("/a.png"), server.url("/a.png").replace("127.0.0.1", "localhost")):
            assert reason_of(default, url) == "private-address"
    assert server.connections == 0
    assert server.hits["/a.png"] == 0


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.255.255.1/x.png", "http://[::1]:9/x.png"],
)
def test_each_redirect_hop_is_checked(server: LoopbackServer, target: str) -> None:
    server.route("/hop", Reply(302, headers={"Location": target}))
    with ImageFetcher(allow_networks=["127.0.0.1/32"], timeout_s=1.0) as local:
        started = time.monotonic()
        assert reason_of(local, server.url("/hop")) == "private-address"
        assert time.monotonic() - started < 0.9  # refused before any connection attempt
    assert server.hits["/hop"] == 1


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1::1", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("2002:7f00:1::", False),  # 6to4 wrapping 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 wrapping 10.0.0.1
    ],
)
def test_address_policy(address: str, public: bool) -> None:
    assert AddressPolicy().permits(ipaddress.ip_address(address)) is public
    assert AddressPolicy(allow_private=True).permits(ipaddress.ip_address(address))


def test_allow_networks_lifts_only_listed_ranges() -> None:
    policy = AddressPolicy(allow_networks=("192.168.1.0/24",))
    assert policy.permits(ipaddress.ip_address("192.168.1.20"))
    assert not policy.permits(ipaddress.ip_address("192.168.2.20"))


# -- conditional GET for feeds --------------------------------------------------------------------


def test_conditional_get(server: LoopbackServer, fetcher: ImageFetcher) -> None:
    def feed(request) -> Reply:
        if request.headers.get("If-None-Match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(
            body=b"[]",
            headers={
                "Content-Type": "application/json",
                "ETag": '"v1"',
                "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
            },
        )

    server.route("/feed", feed)
    first = fetcher.fetch_document(server.url("/feed"))
    assert (first.body, first.etag, first.not_modified) == (b"[]", '"v1"', False)
    second = fetcher.fetch_document(server.url("/feed"), etag=first.etag, last_modified=first.last_modified)
    assert second.not_modified and second.body == b""
    assert server.requests[-1][1]["If-Modified-Since"] == "Wed, 01 Jan 2025 00:00:00 GMT"


def test_image_format_sniffing() -> None:
    assert image_format(PNG) == "png"
    assert image_format(b"\xff\xd8\xff\xe0" + bytes(12)) == "jpeg"
    assert image_format(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "webp"
    assert image_format(b"\x00\x00\x00\x1cftypavif") == "heif"
    assert image_format(b"<html>") is None
