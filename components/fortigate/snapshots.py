"""Table access shared by all calls of one provider process: one GET per table per refresh.

The engine runs a refresh's reads in parallel (the dynamic-provider host serves gRPC from a
thread pool) and calls `read` once per object. FortiOS returns a whole CMDB table in one GET, so
the reads of one table (same device, VDOM and path) share one snapshot of it:

- single flight: the first reader fetches, concurrent readers of the same table wait for it;
- staleness is bounded by `max_age` (measured from the moment the GET was *sent*): a snapshot
  older than that is fetched again, so a refresh reports each table as it was at most `max_age`
  seconds before the read, never older; a longer refresh costs another GET, not stale data;
- a write by this process to a table (create, update, move, delete) drops its snapshot, and a
  fetch that was in flight during the write is not kept, so the provider never reads back a
  table from before its own write.

Only `read` uses snapshots; create and update always read the device afresh. `exclusive(key)`
serialises the read-then-move repair of a policy block within the process, so two policies'
updates running at once cannot interleave their moves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: (device URL, VDOM, CMDB path)
Key = tuple[str, str, str]

#: Upper bound on a snapshot's age, in seconds; a refresh of a few hundred objects fits well within it.
MAX_AGE = 10.0


class TableSnapshots:
    """Whole-table reads shared between threads, per (device, VDOM, table)."""

    def __init__(self, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age, self._clock = max_age, clock
        self._guard = threading.Lock()
        self._fetching: dict[Key, threading.Lock] = {}
        self._writing: dict[Key, threading.Lock] = {}
        self._rows: dict[Key, tuple[float, list[dict[str, Any]]]] = {}
        self._generation: dict[Key, int] = {}

    def _lock_for(self, locks: dict[Key, threading.Lock], key: Key) -> threading.Lock:
        with self._guard:
            return locks.setdefault(key, threading.Lock())

    def rows(self, key: Key, fetch: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """The table's rows: a snapshot younger than `max_age`, else `fetch()` (one GET)."""
        with self._lock_for(self._fetching, key):
            with self._guard:
                cached = self._rows.get(key)
                generation = self._generation.get(key, 0)
            if cached is not None and self._clock() - cached[0] < self.max_age:
                return cached[1]
            sent = self._clock()
            rows = fetch()
            with self._guard:
                if self._generation.get(key, 0) == generation:
                    self._rows[key] = (sent, rows)
            return rows

    def invalidate(self, key: Key) -> None:
        """Forget the table after a write to it."""
        with self._guard:
            self._rows.pop(key, None)
            self._generation[key] = self._generation.get(key, 0) + 1

    @contextmanager
    def exclusive(self, key: Key) -> Iterator[None]:
        """One writer at a time for this table in this process."""
        with self._lock_for(self._writing, key):
            yield
