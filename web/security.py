"""What stands between a browser and the collection: the Host check, the token of a non-loopback bind,
CSRF tokens on every change, and the headers every response carries (a CSP without inline script).

All of it is one ASGI middleware (:class:`Guard`) around the app, plus :class:`Csrf` which pages use to
put a token in their forms and which POST handlers use to check it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
TOKEN_COOKIE = "topics_token"
CSRF_COOKIE = "topics_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) only ever reaches this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """`0.0.0.0` or `::`: every address of the machine."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name part of a Host header (`[::1]:8765` -> `::1`, `localhost:80` -> `localhost`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


@dataclass(frozen=True)
class Access:
    """Who may talk to this server: the bound address, and the token a non-loopback bind needs."""

    bound: str
    token: str | None  # None: loopback, no token asked

    @classmethod
    def for_bind(cls, host: str, token: str | None) -> Access:
        """Loopback binds need no token; any other gets `token` or a fresh one for this start."""
        if is_loopback(host):
            return cls(host, None)
        return cls(host, token or secrets.token_urlsafe(24))

    def host_allowed(self, header: str) -> bool:
        """A page on another site that rebinds its name to our address sends its own name: refused."""
        name = host_name(header)
        if not name:
            return False
        if is_wildcard(self.bound):
            return True  # every address of the machine; the token still guards it
        return name in {"localhost", self.bound.lower().strip("[]")}


def _cookies(scope: Scope) -> dict[str, str]:
    jar = SimpleCookie()
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is no cookie
                continue
    return {k: m.value for k, m in jar.items()}


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return ""


class Guard:
    """ASGI middleware: refuse foreign Host headers and, on a non-loopback bind, requests without the
    token; add the security headers to every response."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if not self.access.host_allowed(host):
            await _plain(send, 400, f"refused: Host {host[:80]!r} is not this server's address")
            return
        if self.access.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.get("token")
            if given is not None and scope["method"] == "GET":
                if hmac.compare_digest(given.encode(), self.access.token.encode()):
                    await _token_redirect(send, scope, query, self.access.token)
                    return
                await _plain(send, 403, "refused: wrong token")
                return
            cookie = _cookies(scope).get(TOKEN_COOKIE, "")
            bearer = _header(scope, b"authorization").removeprefix("Bearer ").strip()
            if not any(hmac.compare_digest(t.encode(), self.access.token.encode()) for t in (cookie, bearer)):
                await _plain(send, 403, "refused: this server needs its token (open the URL serve printed)")
                return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *((k, v) for k, v in HEADERS if k not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _plain(send: Send, status: int, line: str) -> None:
    body = (line + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *HEADERS]})
    await send({"type": "http.response.body", "body": body})


async def _token_redirect(send: Send, scope: Scope, query: dict[str, str], token: str) -> None:
    """Set the token cookie and send the browser to the same page without the token in its URL."""
    rest = urlencode({k: v for k, v in query.items() if k != "token"})
    location = scope.get("path", "/") + (f"?{rest}" if rest else "")
    if not location.startswith("/") or location.startswith("//"):
        location = "/"
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    headers = [(b"location", location.encode()), (b"set-cookie", cookie.encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 303, "headers": [*headers, *HEADERS]})
    await send({"type": "http.response.body", "body": b""})


class Csrf:
    """Double-submit tokens: a random nonce in a cookie, and in each form the HMAC of it under a secret
    made at start. A page on another site can make the browser send the cookie, but cannot read it or
    the page, so it cannot give the matching field."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(18)

    def token(self, nonce: str) -> str:
        return hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()

    def valid(self, nonce: str | None, given: str | None) -> bool:
        if not nonce or not given:
            return False
        return hmac.compare_digest(self.token(nonce).encode(), given.encode())


def cookie_header(name: str, value: str) -> str:
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"
