"""Every generated Caddyfile passes the real `caddy validate` and is in `caddy fmt` form."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

import pytest

from components.gateway import render_caddy as c
from components.layout import OAUTH2_PROXY_SOCKET
from scripts.lab.example import front_hop_dir, hop_pki

IP = ipaddress.ip_address
PARAMS = c.GatewayParams(
    hostname="code.example.com",
    port=8880,
    listen=(IP("192.0.2.10"), IP("127.0.0.1")),
    front_proxies=(IP("192.0.2.5"), IP("192.0.2.6")),
)


def run(caddy: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([caddy, *args], env=env, capture_output=True, text=True, timeout=60)


def gateway_file(tmp_path: Path, params: c.GatewayParams = PARAMS) -> Path:
    # `caddy validate` creates the log files it names: keep them in the temp dir
    text = c.gateway(params).replace(c.ACCESS_LOG, str(tmp_path / "access.log"))
    path = tmp_path / "Caddyfile"
    path.write_text(text)
    return path


def test_gateway_caddyfile_validates(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    result = run(caddy_bin, caddy_env, "validate", "--config", str(gateway_file(tmp_path)), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr
    assert '"level":"warn"' not in result.stderr, result.stderr


def test_gateway_caddyfile_is_formatted(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    path = gateway_file(tmp_path)
    result = run(caddy_bin, caddy_env, "fmt", str(path))
    assert result.stdout == path.read_text()


def adapted(caddy: str, env: dict[str, str], path: Path) -> dict:
    result = run(caddy, env, "adapt", "--config", str(path), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gateway_config_as_caddy_reads_it(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    cfg = adapted(caddy_bin, caddy_env, gateway_file(tmp_path))
    assert cfg["admin"]["disabled"] is True
    (server,) = cfg["apps"]["http"]["servers"].values()
    assert sorted(server["listen"]) == ["127.0.0.1:8880", "192.0.2.10:8880"]
    assert server["trusted_proxies"] == {"source": "static", "ranges": ["192.0.2.5/32", "192.0.2.6/32"]}
    assert server["trusted_proxies_strict"] == 1
    assert server["automatic_https"]["disable"] is True
    text = json.dumps(server)
    assert f'"dial": "unix/{OAUTH2_PROXY_SOCKET}"' in text  # no TCP port to hijack
    assert '"X-Real-Ip": ["{http.vars.client_ip}"]' in text
    assert "tls" not in cfg["apps"]


def imported_site(caddy: str, env: dict[str, str], tmp_path: Path, name: str, block: str) -> dict:
    """`block` as a site file the central Caddy imports: validated, already formatted; its adapted JSON."""
    site = tmp_path / f"{name}.caddy"
    site.write_text(block)
    # the central Caddy's own Caddyfile, reduced to what matters: it imports the site files
    main = tmp_path / "Caddyfile"
    main.write_text(f"{{\n\tadmin off\n\tstorage file_system {tmp_path / 'storage'}\n}}\n\nimport {tmp_path}/*.caddy\n")
    result = run(caddy, env, "validate", "--config", str(main), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    assert run(caddy, env, "fmt", str(site)).stdout == site.read_text()
    return adapted(caddy, env, main)


def test_front_site_block_validates_when_imported(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    caddy_env = {**caddy_env, "HCS_HOP_DIR": str(front_hop_dir(tmp_path / "hop", "code.example.com", hop_pki(tmp_path / "pki")))}
    cfg = imported_site(caddy_bin, caddy_env, tmp_path, "code.example.com", c.front_site("code.example.com", IP("192.0.2.10"), 8880))
    text = json.dumps(cfg["apps"]["http"])
    assert '"host": ["code.example.com"]' in text and '"dial": "192.0.2.10:8880"' in text
    transport = json.dumps(cfg["apps"]["http"]["servers"]).split('"transport": ')[1]
    # the hop: the gateway verified against the hop's CA only, by the public name, the client certificate presented
    assert f'"pem_files": ["{tmp_path}/hop/code.example.com/{c.HOP_CA}"]' in transport and '"server_name": "code.example.com"' in transport
    assert f'"client_certificate_file": "{tmp_path}/hop/code.example.com/{c.HOP_CERT}"' in transport


@pytest.mark.parametrize("field", ["listen", "front_proxies"])
def test_params_refuse_empty_address_lists(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        c.GatewayParams(**{**PARAMS.__dict__, field: ()})


def test_params_refuse_privileged_ports() -> None:
    with pytest.raises(ValueError, match="unprivileged"):
        c.GatewayParams(**{**PARAMS.__dict__, "port": 443})
