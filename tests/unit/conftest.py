"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loopback import LoopbackServer, serving


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """A loopback HTTP server the test scripts with `server.route(...)`."""
    with serving() as running:
        yield running
