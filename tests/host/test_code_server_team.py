"""The team code-server config as the pinned code-server reads it, and the on-demand chain without systemd's manager.

Slow: it needs the cached code-server build (`make caches`). The chain is the design's (docs/team.md:
"start and stop") with systemd's own pieces where they run without a manager: `systemd-socket-activate`
holds the gateway's socket as the socket unit would and starts the real `systemd-socket-proxyd`
on the first connection, which passes it to code-server on its `--socket`. Not shown here: the
units' ordering and `BindsTo=` under a running manager, and the idle exit on a socket (the
single-user test in tests/livepath shows the exit on TCP).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from components.host import render_workspaces as rw
from scripts.lab.converge import sample
from scripts.tools.code_server_cache import CacheError, CodeServerInstall, ensure
from tests.host.test_render import tool

pytestmark = pytest.mark.slow

#: code-server's own config parser (out/node/cli.js), fed the file as `--config` would feed it.
_PARSE = ("const cli = require(process.argv[1]); const fs = require('fs'); const p = process.argv[2];"
          "console.log(JSON.stringify(cli.parseConfigFile(fs.readFileSync(p, 'utf8'), p)))")


@pytest.fixture(scope="module")
def install() -> CodeServerInstall:
    """The pinned code-server from the machine's cache (built if missing, ~2 min)."""
    try:
        return ensure()
    except CacheError as error:
        pytest.fail(f"code-server: {error}", pytrace=False)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def _get(path: Path) -> str:
    """The status line of `GET /` over the Unix socket at `path`."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(30)
        conn.connect(str(path))
        conn.sendall(b"GET / HTTP/1.1\r\nHost: a.code.example.com\r\nConnection: close\r\n\r\n")
        return conn.recv(4096).decode(errors="replace").splitlines()[0]


def test_the_gateways_socket_reaches_code_server_on_its_own_socket(install: CodeServerInstall, tmp_path: Path) -> None:
    config = tmp_path / "hcs-team.yaml"
    config.write_text(rw.code_server_config(sample.settings().host))
    parsed = subprocess.run([str(install.node), "-e", _PARSE, str(install.entry.parent / "cli.js"), str(config)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert '"socket-mode":"600"' in parsed and '"disable-proxy":true' in parsed and '"idle-timeout-seconds":3600' in parsed, parsed
    home, runtime, gateway = tmp_path / "home", tmp_path / "run", tmp_path / "gw.sock"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CONFIG_HOME": str(home / ".config")}
    code_server = subprocess.Popen([*install.command(), "--config", str(config), "--socket", str(runtime / "code-server.sock"),
                                    "--user-data-dir", str(tmp_path / "data"), "--extensions-dir", str(tmp_path / "ext"), str(home)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env)
    activate = subprocess.Popen([tool("systemd-socket-activate"), "-l", str(gateway), "/lib/systemd/systemd-socket-proxyd",
                                 str(runtime / "code-server.sock")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(runtime / "code-server.sock", code_server)
        _wait_for(gateway, activate)
        mode = stat.S_IMODE((runtime / "code-server.sock").stat().st_mode)
        assert mode == 0o600, oct(mode)  # socket-mode: only the workspace's own account may connect
        assert _get(gateway).startswith("HTTP/1.1 302"), "the workbench's redirect, through the proxy"
    finally:
        for process in (activate, code_server):
            process.terminate()
            process.wait(timeout=30)
