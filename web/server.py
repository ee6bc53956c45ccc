"""Running the web app inside `topics serve`: uvicorn in a thread, on a socket bound before it starts
(so a port in use is one clear line at start, not a dying thread)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import uvicorn

from indexer.config import Settings
from indexer.index import Index
from web.app import create_app
from web.security import Access, is_loopback

log = logging.getLogger(__name__)


class WebUnavailable(RuntimeError):
    """The web interface cannot listen where `web.host` and `web.port` say."""


class WebServer:
    """The web interface of one `topics serve`: `start()` binds and serves in a thread, `stop()` ends it."""

    def __init__(self, open_index: Callable[[], Index], settings: Settings) -> None:
        web = settings.web
        token = web.token.get_secret_value() if web.token is not None else None
        self.host = web.host
        self.access = Access.for_bind(web.host, token)
        self._token_configured = token is not None
        self.app = create_app(open_index, settings, access=self.access)
        self.port = web.port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/"

    @property
    def open_url(self) -> str:
        """The URL to open: on a non-loopback bind it carries this start's token (opening it sets a
        cookie); a token from `web.token` is not printed, only where it goes."""
        if self.access.token is None:
            return self.url
        return self.url + ("?token=<web.token>" if self._token_configured else f"?token={self.access.token}")

    def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as error:
            sock.close()
            raise WebUnavailable(f"web: cannot listen on {self.host}:{self.port}: {error.strerror}") from None
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._socket = sock
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=2
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="topics-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not is_loopback(self.host):
            log.warning("web: listening on %s, a non-loopback address; requests need the token", self.host)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()
