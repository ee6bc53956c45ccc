"""A real HTTP server on 127.0.0.1 in a thread, with routes a test declares, for fetcher and feed tests.

Each route is a function of the request that returns a `Reply`; the server counts requests per path
and keeps the request headers, so tests can assert what the client sent (or that it never connected).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """What a route answers. `delay_s` waits before the status line; `drip_s` between body chunks."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drip_s: float = 0.0
    chunk: int = 65536
    length: bool = True  # send Content-Length


Route = Callable[[BaseHTTPRequestHandler], Reply]


class LoopbackServer:
    """Routes by path; unknown paths answer 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.connections = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, reply: Reply | Route) -> None:
        self.routes[path] = reply if callable(reply) else (lambda _req, r=reply: r)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                server.connections += 1
                super().setup()

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                server.hits[path] += 1
                server.requests.append((path, dict(self.headers.items())))
                route = server.routes.get(path)
                reply = route(self) if route else Reply(404, b"<html>not found</html>")
                with suppress(BrokenPipeError, ConnectionResetError):
                    _send(self, reply)

            def log_message(self, *args: object) -> None:
                return

        return Handler

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    time.sleep(reply.delay_s)
    handler.send_response(reply.status)
    for name, value in reply.headers.items():
        handler.send_header(name, value)
    if reply.length:
        handler.send_header("Content-Length", str(len(reply.body)))
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    for start in range(0, len(reply.body), reply.chunk):
        handler.wfile.write(reply.body[start : start + reply.chunk])
        handler.wfile.flush()
        time.sleep(reply.drip_s)
    if not reply.length:
        handler.close_connection = True


@contextmanager
def serving() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    try:
        yield server
    finally:
        server.stop()
