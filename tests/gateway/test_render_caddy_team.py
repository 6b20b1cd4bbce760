"""A team VM's Caddyfiles pass the real `caddy validate`, are in `caddy fmt` form, and say what Caddy reads."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path

import pytest

from components import layout
from components.gateway import render_caddy as c
from scripts.lab.example import front_hop_dir, hop_pki
from tests.gateway.team import OTHER_VM, team
from tests.gateway.test_render_caddy import PARAMS, adapted, imported_site, run

IP = ipaddress.ip_address
TEAM = c.TeamGatewayParams(dataclasses.replace(PARAMS, hostname="a.example.com"), team(), "vm")
HOSTS = ["a.example.com", "ab.example.com", "c-d.example.com"]


def team_file(tmp_path: Path, params: c.TeamGatewayParams = TEAM) -> Path:
    path = tmp_path / "Caddyfile"
    path.write_text(c.team_gateway(params).replace(c.ACCESS_LOG, str(tmp_path / "access.log")))
    return path


def test_team_gateway_validates_without_warnings(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    result = run(caddy_bin, caddy_env, "validate", "--config", str(team_file(tmp_path)), "--adapter", "caddyfile")
    assert result.returncode == 0, result.stderr
    assert '"level":"warn"' not in result.stderr, result.stderr


def test_team_gateway_is_formatted(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    path = team_file(tmp_path)
    assert run(caddy_bin, caddy_env, "fmt", str(path)).stdout == path.read_text()


def servers(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    cfg = adapted(caddy_bin, caddy_env, team_file(tmp_path))
    by_listen = {tuple(s["listen"]): s for s in cfg["apps"]["http"]["servers"].values()}
    router = by_listen.pop((f"127.0.0.1:{layout.CODE_SERVER_PORT}",))
    (outer,) = by_listen.values()
    return outer, router


def test_the_outer_site_admits_only_this_vms_hosts(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    outer, _ = servers(caddy_bin, caddy_env, tmp_path)
    assert sorted(outer["listen"]) == ["127.0.0.1:8880", "192.0.2.10:8880"]
    text = json.dumps(outer)
    assert '"not": [{"host": ["a.example.com", "ab.example.com", "c-d.example.com"]}]' in text  # 421 for z, on another VM
    deleted = {name for part in text.split('"request": {"delete": ')[1:] for name in json.loads(part.split("]")[0] + "]")}
    assert {"X-Forwarded-Groups", "X_Forwarded_Groups", "X-Forwarded-User", "X-Forwarded-Email",
            "X-Forwarded-Preferred-Username", "X-Forwarded-Host"} <= deleted
    assert f'"dial": "unix/{layout.OAUTH2_PROXY_SOCKET}"' in text


def test_the_router_grants_each_host_to_its_role_only(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    _, router = servers(caddy_bin, caddy_env, tmp_path)
    text = json.dumps(router)
    for name in ("a", "ab", "c-d"):
        dial = f'"dial": "unix/{layout.workspace_gateway_socket("ws-" + name)}"'
        assert text.count(dial) == 1, name
        proxy = [h for r in router["routes"] for h in json.dumps(r).split('"handler": ') if dial in h]
        assert proxy and '"delete": ["Cookie"]' in proxy[0], name
    assert '"pattern": "(^|,)ws\\\\.a(,|$)"' in text and '"pattern": "(^|,)ws\\\\.c\\\\-d(,|$)"' in text
    assert "ws-z" not in text and "z.example.com" not in text
    assert '"status_code": 403' in text


def test_the_router_listens_where_oauth2_proxy_sends_and_dials_the_layouts_sockets() -> None:
    text = c.team_gateway(TEAM)
    assert "bind 127.0.0.1\n" in text and f"http://:{layout.CODE_SERVER_PORT} {{" in text
    assert "unix//run/hcs-ws-gw/ws-a.sock" in text and layout.workspace_gateway_socket("ws-a") == "/run/hcs-ws-gw/ws-a.sock"


def test_params_refuse_a_host_of_another_vm_or_a_vm_without_workspaces() -> None:
    with pytest.raises(ValueError, match="gateway.hostname: expected one of a.example.com"):
        c.TeamGatewayParams(dataclasses.replace(PARAMS, hostname="z.example.com"), team(), "vm")
    with pytest.raises(ValueError, match="hosts no workspace"):
        c.TeamGatewayParams(TEAM.gateway, team(), "nowhere")


def test_the_health_check_asks_for_a_workspace_host() -> None:
    assert "Host: a.example.com" in c.health_check(TEAM.gateway)


def test_team_front_site_validates_when_imported(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    hop = "hop-vm.code.example.com"
    caddy_env = {**caddy_env, "HCS_HOP_DIR": str(front_hop_dir(tmp_path / "hop", hop, hop_pki(tmp_path / "pki")))}
    cfg = imported_site(caddy_bin, caddy_env, tmp_path, "vm", c.team_front_site(team(), "vm", IP("192.0.2.10"), 8880, hop))
    (server,) = cfg["apps"]["http"]["servers"].values()
    text = json.dumps(server)
    assert f'"host": {json.dumps(HOSTS)}' in text and "z.example.com" not in text
    # one proxy per host, each verifying the gateway by that host's name (the gateway's strict SNI-Host check)
    for host in HOSTS:
        assert text.count(f'"server_name": "{host}"') == 1, host
    assert text.count('"dial": "192.0.2.10:8880"') == 3
    assert text.count(f'"client_certificate_file": "{tmp_path}/hop/{hop}/{c.HOP_CERT}"') == 3
    assert text.count(f'"pem_files": ["{tmp_path}/hop/{hop}/{c.HOP_CA}"]') == 3 and "insecure" not in text


def test_the_other_vm_gets_its_own_hosts() -> None:
    site = c.team_front_site(team(), OTHER_VM, IP("192.0.2.11"), 8880, "hop-two")
    assert "z.example.com {" in site and "a.example.com" not in site
    with pytest.raises(ValueError, match="hosts no workspace"):
        c.team_front_site(team(), "nowhere", IP("192.0.2.11"), 8880, "hop")


def test_the_team_gateway_is_the_single_user_one_with_more_lines() -> None:
    """Every control of the single-user gateway is in the team's: only the title and the host list differ."""
    single = c.gateway(TEAM.gateway)
    lines = set(c.team_gateway(TEAM).splitlines())
    assert [line for line in single.splitlines() if line not in lines] == [
        "# Local gateway for a.example.com, generated by hardened-code-server. Do not edit on the host.",
        "\t@foreign_host not host a.example.com"]
