"""The rendered code-server config as the pinned code-server itself reads and acts on it.

Slow: it needs the cached code-server build (`make caches`), and one test waits for the idle timeout
(code-server's floor is 61 s). What these tests cannot show here is systemd's part: the unit's
`Restart=always` and `KillMode=mixed` are checked by the unit tests and the booted demo, not by a bare process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from components.host import render
from scripts.lab.converge import sample
from scripts.tools.code_server_cache import CodeServerInstall

pytestmark = pytest.mark.slow

#: code-server's own config parser (out/node/cli.js), fed the file as `--config` would feed it.
_PARSE = (
    "const cli = require(process.argv[1]); const fs = require('fs'); const p = process.argv[2];"
    "try { console.log(JSON.stringify(cli.parseConfigFile(fs.readFileSync(p, 'utf8'), p))) }"
    "catch (e) { console.log(JSON.stringify({error: e.message})) }"
)


def _parsed(install: CodeServerInstall, path: Path) -> dict[str, Any]:
    done = subprocess.run([str(install.node), "-e", _PARSE, str(install.entry.parent / "cli.js"), str(path)],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(done.stdout)


def test_code_server_reads_the_switches_and_refuses_a_timeout_at_its_floor(code_server_install: CodeServerInstall,
                                                                           tmp_path: Path) -> None:
    host = sample.settings().host
    helptext = subprocess.run([*code_server_install.command(), "--help"], capture_output=True, text=True, timeout=60).stdout
    for flag in ("--disable-file-downloads", "--disable-file-uploads", "--idle-timeout-seconds"):
        assert flag in helptext, flag
    config = tmp_path / "hcs.yaml"
    config.write_text(render.code_server_config(dataclasses.replace(
        host, code_server_disable_downloads=True, code_server_disable_uploads=True)))
    args = _parsed(code_server_install, config)
    assert args["disable-file-downloads"] is True and args["disable-file-uploads"] is True
    assert args["idle-timeout-seconds"] == 3600 and args["disable-proxy"] is True
    config.write_text(render.code_server_config(host))
    assert "disable-file-downloads" not in _parsed(code_server_install, config)
    # The settings' floor (more than 1m) is code-server's: 60 s would stop it from starting at all.
    config.write_text(render.code_server_config(dataclasses.replace(host, code_server_idle_timeout=dt.timedelta(seconds=60))))
    assert "must be greater than 60 seconds" in _parsed(code_server_install, config).get("error", "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_with_no_browser_connected_code_server_exits_cleanly_after_the_timeout(code_server_install: CodeServerInstall,
                                                                              tmp_path: Path) -> None:
    """Exit status 0 and a log line: under the unit's Restart=always, systemd starts a fresh one."""
    host = dataclasses.replace(sample.settings().host, code_server_idle_timeout=dt.timedelta(seconds=61))
    config = tmp_path / "hcs.yaml"
    config.write_text(render.code_server_config(host))
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_DATA_HOME": str(home / ".local/share"), "XDG_CONFIG_HOME": str(home / ".config")}
    started = time.monotonic()
    done = subprocess.run([*code_server_install.command(), "--config", str(config), "--bind-addr", f"127.0.0.1:{_free_port()}",
                           "--user-data-dir", str(tmp_path / "data"), "--extensions-dir", str(tmp_path / "ext"), str(home)],
                          capture_output=True, text=True, timeout=180, env=env)
    took = time.monotonic() - started
    output = done.stdout + done.stderr
    assert "Idle timeout set to 61 seconds" in output, output[-2000:]
    assert "Idle timeout of 61 seconds exceeded" in output, output[-2000:]
    assert done.returncode == 0, output[-2000:]
    assert 60 <= took < 150, took
