"""A team's plan against every policy: the shipped 50-workspace, 10-VM stack passes all of them, and
each team control weakened once (a workspace's drop-in, a Squid port, the router, a callback, …)
makes the rule that guards it fail, judged per VM and per workspace (tests/policy/test_rules.py style)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.policy.weaken import mutate as _mutate
from scripts.policy.rules import RULES, Res, evaluate
from scripts.tools.offline import load_stack_config, run_program

TEAM_RULES = {rule.name for rule in RULES if rule.team}
APP = "azuread:index/application:Application"
HOOK, SQUID, CADDYFILE = "/etc/ufw/after.init", "/etc/squid/squid.conf", "/caddy/Caddyfile"
SANDBOX = "/etc/systemd/system/code-server@.service.d/10-hcs-sandbox.conf"
DEV01 = "/etc/systemd/system/code-server@ws-dev01.service.d/20-hcs-workspace.conf"


@pytest.fixture(scope="module")
def team() -> list[Res]:
    return [Res(r.type, r.name, r.inputs) for r in run_program(load_stack_config("team")).resources]


def _file(suffix: str, role: str = "vm") -> Callable[[Res], bool]:
    """The first file of `role` (the stack's own VM unless named) whose path ends in `suffix`."""
    return lambda r: r.type == "hcs:files:File" and r.props["role"] == role and str(r.props["path"]).endswith(suffix)


def _edit(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        assert old in props["content"], f"{old!r} not in {props['path']}"
        props["content"] = props["content"].replace(old, new, 1)
    return change


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: props.update({key: value})


def _app(change: Callable[[dict[str, Any]], None]) -> tuple[Callable[[Res], bool], Callable[[dict[str, Any]], None]]:
    return (lambda r: r.type == APP), change


GRANT = "header_regexp X-Forwarded-Groups `(^|,)ws\\.dev01(,|$)`"
ROUTER_TO_DEV02 = "reverse_proxy @grant_ws-dev02 unix//run/hcs-ws-gw/ws-dev02.sock"

# (the rules that must fail, pick, change): a weakening a team can make, each caught by the rule for it
# (a second rule where the weakening really breaks two controls).
FAILURES: list[tuple[set[str], Callable[[Res], bool], Callable[[dict[str, Any]], None]]] = [
    # The Entra app: one callback per workspace role, each exactly https://<host>/oauth2/callback.
    ({"app-single-https-redirect", "team-oauth2-proxy-roles"},
     *_app(lambda p: p["web"]["redirectUris"].append("https://evil.example.com/oauth2/callback"))),
    ({"app-single-https-redirect"}, *_app(lambda p: p["web"]["redirectUris"].__setitem__(0, "http://dev01.example.com/oauth2/callback"))),
    ({"app-single-https-redirect"}, *_app(lambda p: p["web"]["redirectUris"].__setitem__(0, "https://dev01.example.com/oauth2/callback?x=1"))),
    ({"app-single-https-redirect", "team-oauth2-proxy-roles"}, *_app(lambda p: p["web"]["redirectUris"].__setitem__(0, "https://dev01.example.net/oauth2/callback"))),
    ({"app-single-https-redirect", "team-oauth2-proxy-roles"}, *_app(lambda p: p["appRoles"].append({**p["appRoles"][0], "value": "admin"}))),
    # code-server: the team's root-owned config, its socket, no TCP, auth none, the team's environment.
    ({"code-server-locked-config"}, _file("/hcs-team.yaml"), _edit('socket-mode: "600"', 'socket-mode: "666"')),
    ({"code-server-locked-config"}, _file("/hcs-team.yaml"), _edit("auth: none", "auth: none\nbind-addr: 0.0.0.0:8080")),
    ({"code-server-locked-config"}, _file("/hcs-team.yaml"), _edit("auth: none", "auth: password")),
    ({"code-server-locked-config"}, _file("/hcs-team.yaml"), _set("mode", "0666")),
    ({"code-server-locked-config"}, _file("/hcs-team.env"), _set("owner", "ws-dev01")),
    ({"code-server-locked-config"}, _file(SANDBOX, "vm-dmz7"), _edit("--config /etc/code-server/hcs-team.yaml", "--config /home/%i/cs.yaml")),
    ({"code-server-locked-config"}, _file(SANDBOX), _edit("EnvironmentFile=/etc/code-server/hcs-team.env", "EnvironmentFile=/home/%i/.env")),
    ({"code-server-port-proxy-off"}, _file("/hcs-team.yaml", "vm-dmz9"), _edit("disable-proxy: true", "disable-proxy: false")),
    # Local ports: the router and the gateway for the service account, each proxy port for its own account.
    ({"code-server-port-by-identity"}, _file(HOOK),
     _edit("--dport 8080 --syn -j hcs-refused", '--dport 8080 --syn -m owner --uid-owner "$IDE" -j RETURN\n'
           "    iptables -w -A hcs-loopback -p tcp -d 127.0.0.1 --dport 8080 --syn -j hcs-refused")),
    ({"code-server-port-by-identity"}, _file(HOOK, "vm-dmz3"), _edit('[ "$uid" -ge 20000 ] && [ "$uid" -le 29999 ]', '[ -n "$uid" ]')),
    ({"code-server-port-by-identity"}, _file(HOOK),
     _edit('        $ipt -w -A hcs-loopback -p tcp --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner "$IDE" -j hcs-refused\n', "")),
    ({"code-server-port-by-identity"}, _file(HOOK), _edit("--dport 8880 --syn -j hcs-refused", "--dport 8880 --syn -j RETURN")),
    # Egress: the uid range has no flow off the VM; every workspace's unit on loopback, no port bound.
    ({"egress-by-identity"}, _file(HOOK), _edit("allow proxy -p udp -d 192.0.2.53", "allow ws-dev01 -p udp -d 192.0.2.53")),
    ({"egress-by-identity"}, _file(HOOK), _edit("allow proxy -p udp -d 192.0.2.53", "allow 20001 -p udp -d 192.0.2.53")),
    ({"egress-by-identity", "code-server-port-by-identity"}, _file(HOOK), _edit("IDE=20000-29999", "IDE=20000-20009")),
    ({"egress-by-identity"}, _file(SANDBOX), _edit("SocketBindDeny=any\n", "SocketBindAllow=tcp:8080\nSocketBindDeny=any\n")),
    ({"egress-by-identity"}, _file(SANDBOX), _edit("IPAddressDeny=any\n", "")),
    # The workspaces' proxy: a port per workspace, its own names only, logged as its own account.
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("allow ws-dev01_client CONNECT https_port ws-dev01_https_names",
                                                  "allow ws-dev01_client CONNECT https_port ws-dev04_https_names")),
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("allow ws-dev01_client CONNECT https_port ws-dev01_https_names",
                                                  "allow ws-dev01_client ws-dev04_client CONNECT https_port ws-dev01_https_names")),
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("note account ws-dev01 ws-dev01_client", "note account ws-dev04 ws-dev01_client")),
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("http_port 127.0.0.1:3129 name=ws-dev04", "http_port 127.0.0.1:3129 name=ws-dev01")),
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("http_port 127.0.0.1:3128 name=ws-dev01", "http_port 0.0.0.0:3128 name=ws-dev01")),
    ({"ide-proxy-allowlist"}, _file(SQUID), _edit("acl ws-dev01_https_names dstdomain -n ", "acl ws-dev01_https_names dstdomain ")),
    # ws-dev04's port closed: its drop-in's proxy is then no port of its own either.
    ({"ide-proxy-allowlist", "workspace-limits"}, _file(HOOK), _edit("    own ws-dev04 3129\n", "")),
    ({"ide-proxy-allowlist"}, _file(HOOK), _edit("allow proxy -p tcp --dport 443", "allow root -p tcp --dport 443")),
    # The hop: every workspace host over mutual TLS, verified for its own name.
    ({"dmz-hop-mutual-tls"}, _file("vm.example.com.caddy", "front-proxy"),
     _edit("reverse_proxy @ws-dev02 https://", "reverse_proxy @ws-dev02 http://")),
    ({"dmz-hop-mutual-tls"}, _file("vm.example.com.caddy", "front-proxy"),
     _edit("tls_server_name dev02.example.com", "tls_server_name dev01.example.com")),
    ({"dmz-hop-mutual-tls"}, _file("dmz4.example.com.caddy", "front-proxy"), _edit("\t\t\ttls_client_auth ", "\t\t\t# ")),
    ({"dmz-hop-mutual-tls"}, _file(CADDYFILE, "vm-dmz2"), _edit("mode require_and_verify", "mode request")),
    # oauth2-proxy on its socket; the router dials workspace sockets only.
    ({"oauth2-proxy-unix-socket"}, _file("oauth2-proxy.cfg"),
     _edit('http_address = "unix:///run/hcs-oauth2-proxy/oauth2-proxy.sock"', 'http_address = "127.0.0.1:4180"')),
    ({"oauth2-proxy-unix-socket", "workspace-isolation"}, _file(CADDYFILE), _edit(ROUTER_TO_DEV02, "reverse_proxy @grant_ws-dev02 127.0.0.1:9000")),
    # The router: a host only for its role (anchored), no cookie to the workspace, 403 for the rest.
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit(GRANT, "header_regexp X-Forwarded-Groups `ws\\.dev01`")),
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit(GRANT, "header_regexp X-Forwarded-Groups `(^|,)ws\\.dev01`")),
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit(GRANT, "header_regexp X-Forwarded-Groups `(^|,)ws\\.dev02(,|$)`")),
    # dev01's grant on dev02's host: dev01's callback is then a host no router serves.
    ({"workspace-router-grants", "team-oauth2-proxy-roles"}, _file(CADDYFILE),
     _edit("host dev01.example.com\n\t\theader_regexp", "host dev02.example.com\n\t\theader_regexp")),
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit("\t\t\theader_up -Cookie\n", "")),
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit("\trequest_header -X-Forwarded-Groups\n", "")),
    ({"workspace-router-grants"}, _file(CADDYFILE), _edit('\t\trespond "Forbidden" 403\n\t}\n}', "\t}\n}")),
    # Each VM's oauth2-proxy: the roles claim, exactly its workspaces' roles.
    ({"team-oauth2-proxy-roles"}, _file("oauth2-proxy.cfg"), _edit('    "ws.dev05",\n]', '    "ws.dev05",\n    "ws.dev06",\n]')),
    ({"team-oauth2-proxy-roles"}, _file("oauth2-proxy.cfg"), _edit('oidc_groups_claim = "roles"', 'oidc_groups_claim = "groups"')),
    ({"team-oauth2-proxy-roles"}, _file("oauth2-proxy.cfg"), _edit("ping_path", 'redirect_url = "https://dev01.example.com/oauth2/callback"\nping_path')),
    # Isolation: own socket, own home, own door, own backup set.
    ({"workspace-isolation"}, _file(CADDYFILE), _edit(ROUTER_TO_DEV02, "reverse_proxy @grant_ws-dev02 unix//run/hcs-ws-gw/ws-dev01.sock")),
    ({"workspace-isolation"}, _file(SANDBOX), _edit("ReadWritePaths=/home/%i ", "ReadWritePaths=/home ")),
    ({"workspace-isolation"}, _file(SANDBOX), _edit("RuntimeDirectoryMode=0700", "RuntimeDirectoryMode=0755")),
    ({"workspace-isolation"}, _file("/hcs-ws-proxy@.service"), _edit("User=%i", "User=root")),
    ({"workspace-isolation"}, _file("/hcs-ws-proxy@.socket"), _edit("SocketMode=0660", "SocketMode=0666")),
    ({"workspace-isolation"}, _file("/hcs-backup@.service"), _edit(" /home/%i/workspace ", " /home ")),
    # Limits: every workspace capped, its drop-in nothing else.
    ({"workspace-limits"}, _file(DEV01), _edit("MemoryMax=2G\n", "")),
    ({"workspace-limits"}, _file(DEV01), _edit("TasksMax=1024", "TasksMax=infinity")),
    ({"workspace-limits"}, _file(DEV01), _edit("TasksMax=1024\n", "TasksMax=1024\nIPAddressAllow=any\n")),
    ({"workspace-limits"}, _file(DEV01), _edit("http_proxy=http://127.0.0.1:3128", "http_proxy=http://127.0.0.1:3129")),
    # The backup template is append-only as the single user's unit is.
    ({"backup-append-only"}, _file("/hcs-backup@.service"),
     _edit("CacheDirectory=restic", "ExecStart=/usr/bin/restic forget --keep-daily 7 --prune\nCacheDirectory=restic")),
]


def test_the_shipped_team_stack_passes_every_policy(team: list[Res]) -> None:
    assert evaluate(team) == {rule.name: [] for rule in RULES}


@pytest.mark.parametrize(("rules", "pick", "change"), FAILURES, ids=[f"{sorted(f[0])[0]}-{i}" for i, f in enumerate(FAILURES)])
def test_each_weakened_team_control_fails_its_policy(rules: set[str], pick: Any, change: Any, team: list[Res]) -> None:
    failing = {name: found for name, found in evaluate(_mutate(team, pick, change)).items() if found}
    assert set(failing) == rules, failing
    assert all(len(message) > 30 for found in failing.values() for message in found)


def test_every_team_rule_and_every_rule_a_team_changes_has_a_failing_case() -> None:
    assert TEAM_RULES <= {rule for f in FAILURES for rule in f[0]}
    assert {"app-single-https-redirect", "code-server-locked-config", "code-server-port-by-identity", "egress-by-identity",
            "ide-proxy-allowlist", "dmz-hop-mutual-tls", "oauth2-proxy-unix-socket"} <= {rule for f in FAILURES for rule in f[0]}


def test_a_workspace_on_two_vms_is_refused(team: list[Res]) -> None:
    """The drop-in of ws-dev01 (the stack's own VM) also on dmz2: one name, two IDEs."""
    (drop_in,) = [r for r in team if r.props.get("role") == "vm" and r.props.get("path") == DEV01]
    twice = [*team, Res(drop_in.type, "vm-dmz2:" + DEV01, {**drop_in.props, "role": "vm-dmz2"})]
    failing = {name for name, found in evaluate(twice).items() if found}
    assert {"workspace-isolation", "team-oauth2-proxy-roles"} <= failing
    assert any("ws-dev01: one workspace, one VM" in m for m in evaluate(twice)["workspace-isolation"])


def test_a_team_without_its_team_files_is_judged_as_a_single_user_and_fails(team: list[Res]) -> None:
    """Taking every team marker away does not make the checks vanish: the VMs then lack the single user's files."""
    team_paths = ("/etc/code-server/hcs-team.yaml", "/etc/systemd/system/hcs-ws-proxy@.socket", "/20-hcs-workspace.conf")
    bare = [r for r in team if not str(r.props.get("path", "")).endswith(team_paths)]
    verdict = evaluate(bare)
    assert verdict["code-server-locked-config"] and verdict["code-server-port-by-identity"]


def test_the_packs_team_constants_are_the_programs() -> None:
    """The pack runs without the program: its copies of the team's paths, range and router port must be the program's."""
    from components import layout
    from components.host import render_workspaces as ws
    from scripts.policy import rules

    assert (rules.TEAM_CODE_SERVER_CONFIG, rules.TEAM_CODE_SERVER_ENV, rules.WORKSPACE_RUNTIME_DIR) == (
        ws.CODE_SERVER_CONFIG, ws.CODE_SERVER_ENV, ws.RUNTIME_DIR)
    assert (rules.WORKSPACE_PROXY_SOCKET, rules.WORKSPACE_PROXY_SERVICE, rules.TEAM_BACKUP_SERVICE) == (
        ws.PROXY_SOCKET_UNIT, ws.PROXY_SERVICE_UNIT, ws.BACKUP_SERVICE_UNIT)
    assert (rules.WORKSPACE_UIDS, rules.WORKSPACE_GATEWAY_SOCKET_DIR, rules.ROUTER_PORT) == (
        ws.UID_OWNER, layout.WORKSPACE_GATEWAY_SOCKET_DIR, layout.CODE_SERVER_PORT)
    assert rules.CODE_SERVER_DROP_IN == ws.SANDBOX_DROP_IN
