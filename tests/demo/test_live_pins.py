"""The demo's pinned known_hosts under concurrent steps (no booted demo needed).

Steps run in threads and share one pin; an ssh that reads the pin while another step writes it
must still find the key (CI once saw "No ED25519 host key is known ... Host key verification
failed" from an in-place rewrite)."""

from __future__ import annotations

import threading
from pathlib import Path

from scripts.lab.demo.live import LiveMocks
from scripts.lab.vm.runner import SshRunner, SshTarget

PIN = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHcodeServerDemoPinnedHostKeyForTheTestOnly"


def test_a_pin_is_never_read_half_written_while_steps_pin_concurrently(tmp_path: Path) -> None:
    target = SshTarget("192.0.2.10", 22, "admin", tmp_path / "id", tmp_path / "known_hosts")
    mocks = LiveMocks("tenant", SshRunner(target), engine=None)  # type: ignore[arg-type]
    connection = {"host": "192.0.2.10", "port": 22, "hostKey": PIN}
    path = mocks._pinned_runner(connection).target.known_hosts_file
    expected = path.read_text()
    assert expected == f"192.0.2.10 {PIN}\n"
    seen: set[str] = set()
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.add(path.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=lambda: [mocks._pinned_runner(connection) for _ in range(300)]) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert seen == {expected}
    other = mocks._pinned_runner({**connection, "port": 2222}).target.known_hosts_file
    assert other != path and other.read_text() == f"[192.0.2.10]:2222 {PIN}\n"
