"""Reaching the model hub safely: offline checks, a reachability probe, and deadlines.

A machine without a hub must fail a model load in seconds with a clear message, not hang in
retries with backoff (huggingface_hub retries a failed request for half a minute).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


class DeadlineExceeded(TimeoutError):
    """The step did not finish in time; it may still be running in its (daemon) thread."""


def call_with_deadline(fn: Callable[[], T], timeout_s: float, name: str = "model-load") -> T:
    """Return ``fn()``, or raise `DeadlineExceeded` after ``timeout_s`` seconds.

    A daemon thread, not an executor: a download stuck on a dead network must never keep the
    process from exiting. Exceptions from ``fn`` are re-raised in the caller.
    """
    outcome: dict[str, object] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    if not done.wait(timeout_s):
        raise DeadlineExceeded(f"{name} did not finish within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (env read now, not at import time)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    if any(flag.strip().lower() in {"1", "true", "yes", "on"} for flag in flags):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def hub_unreachable_reason(timeout_s: float = 3.0) -> str | None:
    """Why the hub cannot be reached (name does not resolve), or None if it may be reachable.

    Only a cheap DNS probe: behind a proxy the local resolver may not know the hub, so with a
    proxy configured we say nothing and let the deadline decide.
    """
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except ImportError:
        endpoint = "https://huggingface.co"
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        call_with_deadline(lambda: socket.getaddrinfo(host, 443), timeout_s, name=f"resolve {host}")
    except DeadlineExceeded:
        return f"resolving {host} took over {timeout_s:g} s"
    except OSError as exc:
        return f"{host} does not resolve ({exc})"
    return None


def hub_unavailable_reason(timeout_s: float = 3.0) -> str | None:
    """Why a download cannot work right now (offline flag or unresolvable hub), or None."""
    if hub_offline():
        return "the model hub is off (HF_HUB_OFFLINE=1)"
    return hub_unreachable_reason(timeout_s)
