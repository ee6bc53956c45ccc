"""Searches before background jobs, within one process.

The embedded engine holds the GIL through each of its calls (a 1M-item shard: ~145 ms for a full
scan, ~10 ms for a 256-point scroll), so in `topics serve` a recluster's engine calls and a search's
take turns: a search during the nightly recluster took 2-3 times as long as one alone
(docs/scaling.md). A search marks itself with `SEARCHES.serving()`; the recluster calls
`SEARCHES.yield_to_searches()` between its batches and waits there while any search runs, so the
search has the process to itself. A wait is bounded (`MAX_WAIT_S`): back-to-back searches slow a
job, they never stop it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

MAX_WAIT_S = 0.5  # the longest a job waits at one yield point


class Priority:
    """Counts the searches in flight; background jobs wait at their yield points while there are any."""

    def __init__(self) -> None:
        self._active = 0
        self._changed = threading.Condition()
        self.waits = 0  # yield points that found a search running (for tests and logs)
        self.waited_s = 0.0  # seconds jobs spent waiting at them, since the process started

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Mark a search in flight for the length of the block."""
        with self._changed:
            self._active += 1
        try:
            yield
        finally:
            with self._changed:
                self._active -= 1
                if not self._active:
                    self._changed.notify_all()

    def yield_to_searches(self, max_wait_s: float | None = None) -> float:
        """Wait while a search runs, at most `max_wait_s` (`MAX_WAIT_S`); the seconds waited."""
        with self._changed:
            if not self._active:
                return 0.0
            self.waits += 1
            started = time.monotonic()
            limit = MAX_WAIT_S if max_wait_s is None else max_wait_s
            self._changed.wait_for(lambda: not self._active, timeout=limit)
            waited = time.monotonic() - started
            self.waited_s += waited
            return waited


SEARCHES = Priority()
