"""Safe remote fetching: images named by URL in feeds, and the feed documents themselves.

A URL in a feed is untrusted input. Only http and https are followed; every connection goes to an
address that was resolved and checked first (private, loopback, link-local and other non-public
addresses are refused unless allowed), and the check runs again on every redirect hop because each hop
opens its own connection. Bodies are streamed against a byte cap and a deadline, so a huge or slow
answer costs at most `max_bytes` of memory and `timeout_s` of time per attempt.

Failures raise :class:`FetchError` with a stable `reason` code for the ledger:
``bad-url``, ``bad-scheme``, ``private-address``, ``http-404``, ``http-status``, ``not-an-image``,
``too-large``, ``timeout``, ``redirect-loop``, ``connection``.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpcore
import httpx

MiB = 1024 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
SCHEMES = frozenset({"http", "https"})
DEFAULT_USER_AGENT = "topics-indexer/0.1 (+image fetcher)"
IMAGE_ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9"
FEED_ACCEPT = (
    "application/feed+json, application/json, application/rss+xml, application/atom+xml, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
_UNTYPED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/binary"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class FetchError(Exception):
    """A URL that could not be fetched; `reason` is a stable code, `detail` says what happened.

    `transient` failures (timeouts, connection errors, 5xx) are worth retrying; the rest are not.
    """

    def __init__(self, reason: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.transient = transient


@dataclass(frozen=True)
class Document:
    """A fetched feed document, or the news that it has not changed (HTTP 304)."""

    url: str
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None
    not_modified: bool = False


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses a fetch may connect to.

    By default only globally routable unicast addresses; `allow_private` lifts that for local feeds,
    `allow_networks` lifts it for the listed CIDR ranges only (a NAS at 192.168.1.0/24, say).
    """

    allow_private: bool = False
    allow_networks: tuple[str, ...] = ()

    def permits(self, address: Address) -> bool:
        if self.allow_private:
            return True
        if any(address in ipaddress.ip_network(net, strict=False) for net in self.allow_networks):
            return True
        return all(_is_public(a) for a in _embedded(address))

    def resolve(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, all checked; one refused address refuses the host.

        Refusing the whole host (not just the bad address) stops DNS answers that mix a public
        address with an internal one from reaching the internal one on a retry.
        """
        host = host.strip("[]")
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise FetchError("connection", f"cannot resolve {host!r}: {error}", transient=True) from error
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.permits(address):
                raise FetchError("private-address", f"{host} resolves to non-public address {address}")
        if not addresses:
            raise FetchError("connection", f"{host!r} resolves to no address", transient=True)
        return addresses


def _embedded(address: Address) -> list[Address]:
    """The address and any IPv4 address it wraps (mapped, 6to4, NAT64), which must pass too."""
    found: list[Address] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def _is_public(address: Address) -> bool:
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


class _GuardedBackend(httpcore.SyncBackend):
    """Opens TCP connections only to addresses the policy accepts, resolved here, once.

    Connecting to the very address that was checked (instead of letting the socket layer resolve the
    name again) closes the gap a DNS answer that changes between check and connect would open.
    """

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[override]
        last: Exception | None = None
        for address in self._policy.resolve(host, port):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                last = error
        assert last is not None
        raise last


def _guarded_transport(policy: AddressPolicy) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(trust_env=False)
    pool = getattr(transport, "_pool", None)
    if type(pool) is not httpcore.ConnectionPool:  # an httpx upgrade moved the pool: fail loudly
        raise RuntimeError("unsupported httpx version: cannot install the address guard")
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(trust_env=False),
        max_connections=32,
        max_keepalive_connections=16,
        keepalive_expiry=5.0,
        network_backend=_GuardedBackend(policy),
    )
    return transport


if TYPE_CHECKING:
    from indexer.config import FetchSettings


class ImageFetcher:
    """Downloads images named by URL (and feed documents) with every guard a hostile URL needs.

    Thread-safe: one instance serves the pipeline's decode threads. Close it (or use it as a context
    manager) to release pooled connections.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        max_bytes: int = 20 * MiB,
        max_document_bytes: int = 50 * MiB,
        retries: int = 2,
        backoff_s: float = 0.5,
        max_redirects: int = 5,
        allow_private: bool = False,
        allow_networks: Sequence[str] = (),
        user_agent: str = DEFAULT_USER_AGENT,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self.max_document_bytes = max_document_bytes
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_redirects = max_redirects
        self.policy = AddressPolicy(allow_private, tuple(allow_networks))
        self._sleep = sleep
        timeout = httpx.Timeout(timeout_s)
        self._client = httpx.Client(
            transport=_guarded_transport(self.policy),
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": user_agent},
        )

    @classmethod
    def from_settings(cls, fetch: FetchSettings) -> ImageFetcher:
        """The fetcher the `fetch` settings describe (one per process part that downloads)."""
        return cls(
            timeout_s=fetch.timeout_s,
            max_bytes=fetch.max_bytes,
            retries=fetch.retries,
            allow_private=fetch.allow_private,
            allow_networks=fetch.allow_networks,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public ---------------------------------------------------------------------------------

    def fetch(self, url: str) -> bytes:
        """The bytes of the image at `url`; raises :class:`FetchError` with the reason it is refused."""
        return self._retrying(lambda: self._fetch_image(url))

    def fetch_document(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> Document:
        """A conditional GET of a feed: a 304 comes back as `Document(not_modified=True)`."""
        headers = {"Accept": FEED_ACCEPT}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return self._retrying(lambda: self._fetch_document(url, headers))

    # -- one attempt ----------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], bytes | Document]):
        for n in range(self.retries + 1):
            try:
                return attempt()
            except FetchError as error:
                if not error.transient or n == self.retries:
                    raise
            self._sleep(self.backoff_s * 2**n)
        raise AssertionError("unreachable")

    def _fetch_image(self, url: str) -> bytes:
        deadline = time.monotonic() + self.timeout_s
        with self._open(url, {"Accept": IMAGE_ACCEPT}, deadline) as response:
            _check_status(response)
            content_type = _media_type(response)
            if content_type == "image/svg+xml" or (
                content_type not in _UNTYPED and not content_type.startswith("image/")
            ):
                raise FetchError("not-an-image", f"content-type {content_type!r} from {response.url}")
            body = _read_body(response, self.max_bytes, deadline, sniff=content_type in _UNTYPED)
        return body

    def _fetch_document(self, url: str, headers: dict[str, str]) -> Document:
        deadline = time.monotonic() + self.timeout_s
        with self._open(url, headers, deadline) as response:
            etag = response.headers.get("ETag")
            modified = response.headers.get("Last-Modified")
            if response.status_code == 304:
                return Document(str(response.url), b"", "", etag, modified, not_modified=True)
            _check_status(response)
            body = _read_body(response, self.max_document_bytes, deadline, sniff=False)
            return Document(str(response.url), body, _media_type(response), etag, modified)

    def _open(self, url: str, headers: dict[str, str], deadline: float) -> _OpenResponse:
        """Send the request, following redirects by hand so each hop's scheme and address is checked."""
        target = _parse(url)
        seen = {str(target)}
        for _ in range(self.max_redirects + 1):
            response = self._send(target, headers, deadline)
            if response.status_code not in REDIRECTS:
                return _OpenResponse(response)
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise FetchError("http-status", f"HTTP {response.status_code} without Location at {target}")
            target = _parse(str(target.join(location)))
            if str(target) in seen:
                raise FetchError("redirect-loop", f"{url} redirects back to {target}")
            seen.add(str(target))
        raise FetchError("redirect-loop", f"more than {self.max_redirects} redirects from {url}")

    def _send(self, target: httpx.URL, headers: dict[str, str], deadline: float) -> httpx.Response:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError("timeout", f"no answer from {target} within {self.timeout_s}s", transient=True)
        request = self._client.build_request(
            "GET", target, headers=headers, timeout=httpx.Timeout(min(remaining, self.timeout_s))
        )
        try:
            return self._client.send(request, stream=True)
        except httpx.TimeoutException as error:
            raise FetchError("timeout", f"{target}: {type(error).__name__}", transient=True) from error
        except (httpx.TransportError, httpcore.ConnectError) as error:
            raise FetchError(
                "connection", f"{target}: {error or type(error).__name__}", transient=True
            ) from error


class _OpenResponse:
    """A streamed response that is always closed, however reading it ends."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise FetchError("bad-url", f"{url!r}: {error}") from error
    if not parsed.scheme:
        raise FetchError("bad-url", f"{url!r} is not an absolute URL")
    if parsed.scheme not in SCHEMES:
        raise FetchError("bad-scheme", f"only http and https are fetched, not {parsed.scheme or 'none'!r}")
    if not parsed.host:
        raise FetchError("bad-url", f"{url!r} has no host")
    return parsed


def _check_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 404:
        raise FetchError("http-404", f"not found: {response.url}")
    transient = status >= 500 or status in (408, 429)
    raise FetchError("http-status", f"HTTP {status} from {response.url}", transient=transient)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def _read_body(response: httpx.Response, cap: int, deadline: float, *, sniff: bool) -> bytes:
    """Stream the body under the byte cap and the deadline; sniff the first bytes when untyped."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        raise FetchError("too-large", f"{response.url} declares {int(declared)} bytes (cap {cap})")
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise FetchError("too-large", f"{response.url} sent more than {cap} bytes")
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"{response.url} too slow: {size} bytes", transient=True)
            if sniff and size >= 16 and len(chunks) == 1:
                _check_magic(chunk, response.url)
    except httpx.TimeoutException as error:
        raise FetchError("timeout", f"{response.url}: read timed out", transient=True) from error
    except httpx.TransportError as error:
        raise FetchError("connection", f"{response.url}: {error}", transient=True) from error
    body = b"".join(chunks)
    if sniff:
        _check_magic(body, response.url)
    return body


def image_format(head: bytes) -> str | None:
    """The raster format the first bytes announce, or None (used when a server sends no type)."""
    signatures: Iterable[tuple[bytes, str]] = (
        (b"\xff\xd8\xff", "jpeg"),
        (b"\x89PNG\r\n\x1a\n", "png"),
        (b"GIF87a", "gif"),
        (b"GIF89a", "gif"),
        (b"BM", "bmp"),
        (b"II*\x00", "tiff"),
        (b"MM\x00*", "tiff"),
    )
    for magic, name in signatures:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return "heif"
    return None


def _check_magic(head: bytes, url: httpx.URL) -> None:
    if image_format(head) is None:
        raise FetchError("not-an-image", f"{url} sent no content-type and its bytes are no image")
