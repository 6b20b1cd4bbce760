"""The DMZ hop of a team VM, live: the central Caddy with `team_front_site` for hosts a and b, and the
real team gateway Caddy requiring the hop's client certificate on 127.0.0.4 (the VM's address here).

With a client certificate required, Caddy enforces that the connection's SNI equals the request's Host
(strict SNI-Host, 421 otherwise), so the central Caddy must name each host as its TLS server name. The
gateway's upstream is an echo standing for oauth2-proxy; it shows which Host arrived.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from components.gateway import render_caddy as c
from scripts.lab.example import front_hop_dir, hop_pki
from tests.gateway.team import team
from tests.gateway.test_caddy_live import free_port, wait_for_port
from tests.gateway.test_hop_live import status_over_https
from tests.gateway.test_team_router_live import Echo, serve_all

pytestmark = pytest.mark.slow

VM = "127.0.0.4"
HOP = "hop-vm.code.example.com"
IP = ipaddress.ip_address


@pytest.mark.parametrize("one_server_name", [False, True], ids=["a server name per host", "one server name for both"])
def test_the_central_caddy_reaches_each_host_of_the_vm_over_mutual_tls(one_server_name: bool, caddy_bin: str, caddy_env: dict[str, str],
                                                                        tmp_path: Path) -> None:
    pki = hop_pki(tmp_path / "pki", "a.example.com", VM, more_names=("b.example.com",))
    oauth2_proxy, upstream = Echo("oauth2-proxy"), free_port()
    stop = serve_all(tmp_path, {}, oauth2_proxy, upstream)
    port = free_port()
    gateway = c.GatewayParams(hostname="a.example.com", port=port, listen=(IP(VM), IP("127.0.0.1")), front_proxies=(IP("127.0.0.1"),),
                              upstream=f"127.0.0.1:{upstream}", access_log=str(tmp_path / "access.log"),
                              tls=c.HopTls(str(pki["gateway.crt"]), str(pki["gateway.key"]), str(pki["ca.crt"])))
    (tmp_path / "gateway").write_text(c.team_gateway(c.TeamGatewayParams(gateway, team("a", "b"), "vm", router_port=free_port(),
                                                                         socket_dir=str(tmp_path))))
    site = c.team_front_site(team("a", "b"), "vm", IP(VM), port, HOP)
    if one_server_name:
        site = site.replace("tls_server_name b.example.com", "tls_server_name a.example.com")
    (tmp_path / "site.caddy").write_text(site)
    https = free_port()
    (tmp_path / "front").write_text(f"{{\n\tadmin off\n\tlocal_certs\n\tskip_install_trust\n\thttp_port {free_port()}\n\thttps_port {https}\n"
                                    f"\tstorage file_system {tmp_path / 'storage'}\n}}\n\nimport {tmp_path / 'site.caddy'}\n")
    env = {**caddy_env, "HCS_HOP_DIR": str(front_hop_dir(tmp_path / "hop", HOP, pki))}
    procs = [subprocess.Popen([caddy_bin, "run", "--adapter", "caddyfile", "--config", str(tmp_path / name)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for name in ("gateway", "front")]
    try:
        wait_for_port(port, procs[0])
        # alternating, so a pooled connection of one host would be offered to the other
        statuses = [(host, status_over_https(https, host)) for host in ("a.example.com", "b.example.com") * 2]
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        stop.set()
    if one_server_name:
        assert ("b.example.com", "421") in statuses, statuses  # the gateway's strict SNI-Host check
    else:
        assert all(status == "200" for _, status in statuses), statuses
        assert [s["host"].split(":")[0] for s in oauth2_proxy.seen] == ["a.example.com", "b.example.com"] * 2
