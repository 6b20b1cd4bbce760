"""Every policy with a passing and a failing resource, taken from the real program's plan.

The passing case is the resource exactly as the program registers it (dev or Cloudflare stack);
the failing case is that resource with the one property the rule guards changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.policy.weaken import mutate as _mutate
from scripts.policy.rules import RULES, Res, evaluate
from scripts.tools.offline import PlanResult, StackConfig, run_program

RULE_NAMES = {rule.name for rule in RULES}


def _resources(plan: PlanResult) -> list[Res]:
    return [Res(r.type, r.name, r.inputs) for r in plan.resources]


@pytest.fixture(scope="module")
def dev_resources(dev_plan: PlanResult) -> list[Res]:
    return _resources(dev_plan)


@pytest.fixture(scope="module")
def cf_resources(dev_config: StackConfig) -> list[Res]:
    return _resources(run_program(dev_config.with_values(edge="cloudflare")))


#: ideEgressDomains of the "proxy" stack: HTTPS to a name and a wildcard, plain HTTP to one name.
PROXY_DOMAINS = ["git.example.com", "*.pypi.org", "http://deb.example.org"]


@pytest.fixture(scope="module")
def proxy_resources(dev_config: StackConfig) -> list[Res]:
    """The dev stack with the IDE's allowlisting proxy on (Squid's config, the hook's by-name lines)."""
    return _resources(run_program(dev_config.with_values(ideEgressDomains=PROXY_DOMAINS)))


@pytest.fixture(scope="module")
def stacks(dev_resources: list[Res], cf_resources: list[Res], proxy_resources: list[Res]) -> dict[str, list[Res]]:
    return {"dev": dev_resources, "cloudflare": cf_resources, "proxy": proxy_resources}


def _set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = props
        for key in parents:
            node = node[key]
        node[last] = value

    return change


def _edit_file(suffix: str, old: str, new: str) -> tuple[Callable[[Res], bool], Callable[[dict[str, Any]], None]]:
    def pick(r: Res) -> bool:
        return r.type == "hcs:files:File" and str(r.props["path"]).endswith(suffix)

    def change(props: dict[str, Any]) -> None:
        assert old in props["content"], f"{old!r} not in {suffix}"
        props["content"] = props["content"].replace(old, new)

    return pick, change


def _named(name: str) -> Callable[[Res], bool]:
    return lambda r: r.name == name


SQUID = "/etc/squid/squid.conf"
HOOK = "/etc/ufw/after.init"


# (rule, stack, pick, change) — each must make exactly that rule fail
FAILURES: list[tuple[str, str, Callable[[Res], bool], Callable[[dict[str, Any]], None]]] = [
    ("sp-requires-assignment", "dev", _named("entra-oauth2-proxy-sp"), _set_path("appRoleAssignmentRequired", False)),
    ("app-single-https-redirect", "dev", _named("entra-oauth2-proxy-app"),
     _set_path("web.redirectUris", ["https://code.example.com/oauth2/callback", "http://localhost/cb"])),
    ("app-single-https-redirect", "dev", _named("entra-oauth2-proxy-app"), _set_path("web.implicitGrant.idTokenIssuanceEnabled", True)),
    ("images-pinned-by-digest", "dev", _named("gateway-caddy-image"), _set_path("name", "docker.io/library/caddy:2")),
    ("containers-hardened", "dev", _named("gateway-oauth2-proxy"), _set_path("securityOpts", [])),
    ("containers-hardened", "dev", _named("gateway-oauth2-proxy"), _set_path("privileged", True)),
    ("containers-hardened", "dev", _named("gateway-oauth2-proxy"), _set_path("ports", [{"internal": 4180, "external": 4180}])),
    ("code-server-locked-config", "dev", *_edit_file("/etc/code-server/hcs.yaml", "bind-addr: 127.0.0.1:8080", "bind-addr: 0.0.0.0:8080")),
    ("code-server-locked-config", "dev", *_edit_file("10-hcs-sandbox.conf", " --config /etc/code-server/hcs.yaml", "")),
    ("code-server-locked-config", "dev", _named("vm:/etc/code-server/hcs.yaml"), _set_path("owner", "coder")),
    ("code-server-port-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "--dport 8080 --syn -j hcs-refused", "--dport 8080 --syn -j RETURN")),
    ("code-server-port-by-identity", "dev", *_edit_file("/etc/ufw/after.init", '--dport 8080 --syn -m owner --uid-owner "$IDE" -j RETURN',
                                                       '--dport 8080 --syn -m owner --uid-owner "$IDE" -j RETURN\n    iptables -w -A hcs-loopback -p tcp -d 127.0.0.1 '
                                                       '--dport 8080 --syn -m owner --uid-owner "$ZBX" -j RETURN')),
    ("code-server-port-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "-I OUTPUT 1 -o lo", "-A OUTPUT -o lo")),
    ("code-server-port-by-identity", "dev", *_edit_file("/etc/ufw/after.init", '-m owner --uid-owner "$IDE" -m conntrack --ctstate NEW -j hcs-refused',
                                                       '-m owner --uid-owner "$IDE" -m conntrack --ctstate NEW -j RETURN')),
    ("code-server-port-by-identity", "cloudflare", *_edit_file("/etc/ufw/after.init", "--dport 8880 --syn -j hcs-refused", "--dport 8880 --syn -j RETURN")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "allow root -p udp -d 192.0.2.53 --dport 53",
                                              "allow coder -p udp -d 192.0.2.53 --dport 53")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "    ip6tables -w -A hcs-egress -j hcs-refused\n", "")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "    iptables -w -A hcs-egress -j hcs-refused\n",
                                              "    iptables -w -A hcs-egress -j RETURN\n")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", "-I OUTPUT 1 ! -o lo", "-A OUTPUT ! -o lo")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", " -j NFLOG --nflog-group 7 --nflog-prefix hcs-refused", " -j RETURN")),
    ("egress-by-identity", "dev", *_edit_file("/etc/ufw/after.init", '$ipt -w -A hcs-egress -p tcp --tcp-flags SYN,ACK SYN,ACK -m owner --uid-owner "$IDE" -j hcs-refused\n', "")),
    ("egress-by-identity", "dev", *_edit_file("10-hcs-sandbox.conf", "IPAddressDeny=any\n", "")),
    ("egress-by-identity", "dev", *_edit_file("10-hcs-sandbox.conf", "IPAddressAllow=localhost\n", "IPAddressAllow=localhost\nIPAddressAllow=192.0.2.53\n")),
    ("egress-by-identity", "dev", *_edit_file("10-hcs-sandbox.conf", "KillMode=mixed\n", "KillMode=process\n")),
    ("egress-by-identity", "dev", *_edit_file("10-hcs-sandbox.conf", "RestrictAddressFamilies=AF_UNIX AF_INET\n",
                                              "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n")),
    ("dmz-hop-mutual-tls", "dev", *_edit_file("/caddy/Caddyfile", "https://:8880 {", "http://:8880 {")),
    ("dmz-hop-mutual-tls", "dev", *_edit_file("/caddy/Caddyfile", "mode require_and_verify", "mode request")),
    ("dmz-hop-mutual-tls", "dev", *_edit_file("code.example.com.caddy", "reverse_proxy https://", "reverse_proxy http://")),
    ("dmz-hop-mutual-tls", "dev", *_edit_file("code.example.com.caddy", "tls_trust_pool file", "tls_insecure_skip_verify\n\t\t\t#")),
    ("code-server-port-proxy-off", "dev", *_edit_file("/etc/code-server/hcs.yaml", "disable-proxy: true", "disable-proxy: false")),
    ("oauth2-proxy-unix-socket", "dev", *_edit_file("oauth2-proxy.cfg", 'http_address = "unix:///run/hcs-oauth2-proxy/oauth2-proxy.sock"',
                                                    'http_address = "127.0.0.1:4180"')),
    ("oauth2-proxy-unix-socket", "dev", *_edit_file("/caddy/Caddyfile", "reverse_proxy unix//run/hcs-oauth2-proxy/oauth2-proxy.sock",
                                                    "reverse_proxy 127.0.0.1:4180")),
    ("backup-append-only", "dev", *_edit_file("hcs-backup.service", "ExecStart=/usr/bin/restic backup",
                                              "ExecStartPre=/bin/sh -c 'restic cat config || restic init'\nExecStart=/usr/bin/restic backup")),
    ("backup-append-only", "dev", *_edit_file("hcs-backup.service", "CacheDirectory=restic",
                                              "ExecStart=/usr/bin/restic forget --keep-daily 7 --prune\nCacheDirectory=restic")),
    ("backup-append-only", "dev", *_edit_file("hcs-backup.env", "RESTIC_REPOSITORY_FILE=/etc/restic/hcs-backup.repository",
                                              "RESTIC_REPOSITORY=rest:https://backup.example.com:8000/code-server")),
    ("backup-append-only", "dev", _named("vm:/etc/restic/hcs-backup.repository"), _set_path("mode", "0644")),
    ("oauth2-proxy-cookie", "dev", *_edit_file("oauth2-proxy.cfg", "cookie_secure = true", "cookie_secure = false")),
    ("oauth2-proxy-cookie", "dev", *_edit_file("oauth2-proxy.cfg", 'cookie_samesite = "lax"', 'cookie_samesite = "none"')),
    ("oauth2-proxy-cookie", "dev", *_edit_file("oauth2-proxy.cfg", "cookie_httponly = true", "cookie_httponly = false")),
    ("egress-by-identity", "dev", *_edit_file("10-hcs-sandbox.conf", "SocketBindDeny=any\n", "")),
    ("sshd-keys-only", "dev", *_edit_file("00-hardening.conf", "PasswordAuthentication no", "PasswordAuthentication yes")),
    ("sshd-keys-only", "dev", *_edit_file("00-hardening.conf", "PermitRootLogin no", "PermitRootLogin prohibit-password")),
    ("fortigate-inbound", "dev", _named("fortigate-hcs-in-https"), _set_path("payload.utm-status", "disable")),
    ("fortigate-inbound", "dev", _named("fortigate-hcs-in-https"), _set_path("payload.logtraffic", "utm")),
    ("fortigate-inbound", "dev", _named("fortigate-hcs-in-https"), _set_path("payload.service", [{"name": "hcs-tcp-22"}])),
    ("fortigate-vm-egress", "dev", _named("fortigate-hcs-out-deny"), _set_path("payload.logtraffic", "disable")),
    ("fortigate-vm-egress", "dev", _named("fortigate-hcs-out-deny"), _set_path("payload.action", "accept")),
    ("fortigate-vm-egress", "dev", _named("fortigate-hcs-out-ntp"), _set_path("payload.service", [{"name": "ALL"}])),
    ("fortigate-vm-egress", "dev", _named("fortigate-hcs-out-backup"), _set_path("payload.dstaddr", [{"name": "all"}])),
    ("tunnel-access-required", "cloudflare", _named("cloudflare-tunnel-config"),
     _set_path("config.ingresses", [{"hostname": "code.example.com", "service": "http://127.0.0.1:8880"}, {"service": "http_status:404"}])),
    ("tunnel-access-required", "cloudflare", _named("cloudflare-tunnel-config"),
     lambda props: props["config"]["ingresses"].pop()),
    ("known-fixed-versions", "dev", _named("gateway-oauth2-proxy-image"),
     _set_path("name", "quay.io/oauth2-proxy/oauth2-proxy:v7.15.1@sha256:" + "1" * 64)),
    ("known-fixed-versions", "dev", _named("vm-code-server"),
     lambda props: props.update(create=props["create"].replace("HCS_CS_VERSION=4.139.1", "HCS_CS_VERSION=4.124.1"))),
    # The IDE's proxy: Squid's config (each line the renderer writes, weakened) and the hook's lines for it.
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "acl ide_https_names dstdomain -n ", "acl ide_https_names dstdomain ")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "dstdomain -n git.example.com", "dstdomain -n 192.0.2.99 git.example.com")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_port 127.0.0.1:3128 ", "http_port 0.0.0.0:3128 ")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_port 127.0.0.1:3128 ", "http_port 127.0.0.1:3129 ")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access deny ip_literal\n", "")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access deny ip_literal\n", "http_access allow ide_client CONNECT https_port "
                                                  "ide_https_names\nhttp_access deny ip_literal\n")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access deny all\n", "")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access allow ide_client CONNECT https_port ide_https_names",
                                                  "http_access allow ide_client ide_https_names")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access allow ide_client CONNECT https_port ide_https_names",
                                                  "http_access allow CONNECT https_port ide_https_names")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "http_access allow ide_client !CONNECT http_port", "http_access allow ide_client !CONNECT")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "acl https_port port 443\n", "acl https_port port 443\nacl https_port port 22\n")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "cache deny all\n", "")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, "access_log syslog:daemon.info logformat=hcs", "access_log none")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(SQUID, " account=%{account}note", "")),
    ("ide-proxy-allowlist", "proxy", _named("vm:/etc/squid/squid.conf"), _set_path("path", "/etc/squid/squid.conf.dpkg-old")),
    ("ide-proxy-allowlist", "dev", *_edit_file(HOOK, "    iptables -w -A hcs-egress -j hcs-refused\n",
                                                "    allow proxy -p tcp --dport 443  # ide-proxy-https: git.example.com\n"
                                                "    iptables -w -A hcs-egress -j hcs-refused\n")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(HOOK, "allow proxy -p tcp --dport 443", "allow root -p tcp --dport 443")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(HOOK, "allow proxy -p tcp --dport 80 ", "allow proxy -p tcp --dport 22 ")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(HOOK, "    iptables -w -A hcs-loopback -p tcp --dport 3128 --syn -j hcs-refused\n", "")),
    ("ide-proxy-allowlist", "proxy", *_edit_file(HOOK, '--dport 3128 --syn -m owner --uid-owner "$IDE" -j RETURN',
                                                  '--dport 3128 --syn -m owner --uid-owner "$SVC" -j RETURN')),
    ("ide-proxy-allowlist", "dev", *_edit_file(HOOK, "    iptables -w -A hcs-loopback -p tcp --dport 8880 --syn -j hcs-refused\n",
                                                "    iptables -w -A hcs-loopback -p tcp --dport 8880 --syn -j hcs-refused\n"
                                                '    iptables -w -A hcs-loopback -p tcp -d 127.0.0.1 --dport 3128 --syn -m owner --uid-owner "$IDE" -j RETURN\n')),
    # With the proxy on, the other hook rules still hold: the IDE user gets no other loopback port, no flow off the VM.
    ("code-server-port-by-identity", "proxy", *_edit_file(HOOK, "--dport 8080 --syn -j hcs-refused", "--dport 8080 --syn -j RETURN")),
    ("egress-by-identity", "proxy", *_edit_file(HOOK, "allow proxy -p tcp -d 192.0.2.53 --dport 53", "allow coder -p tcp -d 192.0.2.53 --dport 53")),
]


@pytest.mark.parametrize("stack", ["dev", "cloudflare", "proxy"])
def test_the_program_passes_every_policy(stack: str, stacks: dict[str, list[Res]]) -> None:
    assert evaluate(stacks[stack]) == {name: [] for name in RULE_NAMES}


@pytest.mark.parametrize(("rule", "stack", "pick", "change"), FAILURES, ids=[f"{f[0]}-{i}" for i, f in enumerate(FAILURES)])
def test_each_policy_catches_its_violation(rule: str, stack: str, pick: Any, change: Any, stacks: dict[str, list[Res]]) -> None:
    resources = _mutate(stacks[stack], pick, change)
    failing = {name: found for name, found in evaluate(resources).items() if found}
    assert set(failing) == {rule}, failing
    assert all(len(message) > 30 for message in failing[rule])  # says what to do, not just "bad"


def test_every_policy_has_a_failing_case() -> None:
    """A team's rules read team files only: their failing cases are a team's (tests/policy/test_team_rules.py)."""
    assert {f[0] for f in FAILURES} == {rule.name for rule in RULES if not rule.team}


@pytest.mark.parametrize("stack", ["dev", "cloudflare", "proxy"])
def test_a_single_user_gives_a_teams_rules_nothing_to_judge(stack: str, stacks: dict[str, list[Res]]) -> None:
    from scripts.policy.rules import is_team

    assert not is_team(stacks[stack])
    assert all(rule.check(stacks[stack]) == [] for rule in RULES if rule.team)


def test_a_missing_ssh_drop_in_fails(dev_resources: list[Res]) -> None:
    without = [r for r in dev_resources if r.props.get("path") != "/etc/ssh/sshd_config.d/00-hardening.conf"]
    assert evaluate(without)["sshd-keys-only"]


def test_secret_or_unknown_contents_are_not_judged() -> None:
    record = Res("hcs:files:File", "vm:/opt/x/oauth2-proxy.cfg", {"path": "/opt/x/oauth2-proxy.cfg", "content": None})
    assert evaluate([record])["oauth2-proxy-cookie"] == []


def test_the_packs_bpf_releases_are_the_programs() -> None:
    """The pack runs without the program, so it carries its own list of the releases whose systemd
    enforces the bind limits; it must be the settings' list."""
    from components.settings import debian
    from scripts.policy.rules import BPF_RELEASES

    assert BPF_RELEASES == {v for v, r in debian.RELEASES.items() if r.bpf_framework}


def test_the_packs_proxy_account_and_port_are_the_programs() -> None:
    """The pack judges Squid's by-name lines and its loopback port with its own copy of both."""
    from components.settings import topology
    from scripts.policy.rules import IDE_PROXY_PORT, SQUID_ACCOUNT

    assert (SQUID_ACCOUNT, IDE_PROXY_PORT) == (topology.SQUID, topology.IDE_PROXY_PORT)


def test_the_ide_user_gets_no_flow_off_the_vm_even_by_name(proxy_resources: list[Res]) -> None:
    """Squid's by-name line given to the IDE user: it would reach any address on 443 without the proxy."""
    resources = _mutate(proxy_resources, *_edit_file(HOOK, "allow proxy -p tcp --dport 443", "allow coder -p tcp --dport 443"))
    failing = {name for name, found in evaluate(resources).items() if found}
    assert {"egress-by-identity", "ide-proxy-allowlist"} == failing
