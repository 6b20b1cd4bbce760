"""Shared table snapshots: one fetch for concurrent readers, bounded age, dropped on a write."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from components.fortigate.snapshots import TableSnapshots

KEY = ("https://192.0.2.1", "root", "firewall/address")


def test_concurrent_readers_share_one_fetch() -> None:
    fetches: list[int] = []

    def fetch() -> list[dict]:
        fetches.append(1)
        time.sleep(0.2)  # every reader arrives while the first GET is in flight
        return [{"name": "a"}]

    snapshots = TableSnapshots()
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: snapshots.rows(KEY, fetch), range(8)))
    assert len(fetches) == 1 and all(r == [{"name": "a"}] for r in results)
    assert snapshots.rows(("https://192.0.2.1", "root", "firewall/vip"), fetch) and len(fetches) == 2  # another table


def test_a_snapshot_is_refetched_once_older_than_its_bound() -> None:
    now = [100.0]
    snapshots = TableSnapshots(max_age=10, clock=lambda: now[0])
    count = [0]

    def fetch() -> list[dict]:
        count[0] += 1
        return [{"n": count[0]}]

    assert snapshots.rows(KEY, fetch) == [{"n": 1}]
    now[0] += 9.9
    assert snapshots.rows(KEY, fetch) == [{"n": 1}]
    now[0] += 0.1
    assert snapshots.rows(KEY, fetch) == [{"n": 2}]


def test_a_write_drops_the_snapshot_even_while_a_fetch_is_in_flight() -> None:
    snapshots = TableSnapshots()
    started, written = threading.Event(), threading.Event()

    def slow_fetch() -> list[dict]:
        started.set()
        written.wait(5)
        return [{"state": "before the write"}]

    reader = threading.Thread(target=lambda: snapshots.rows(KEY, slow_fetch))
    reader.start()
    started.wait(5)
    snapshots.invalidate(KEY)  # our own write lands while that GET is on its way back
    written.set()
    reader.join(5)
    assert snapshots.rows(KEY, lambda: [{"state": "after the write"}]) == [{"state": "after the write"}]
