"""The gateway's resource graph under Pulumi mocks: containers, mounts, secrets, provider, files."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pulumi
import pytest
import tomllib

from components.files import FILE_TYPE
from components.gateway import render_caddy, render_oauth2_proxy
from components.gateway.stack import (
    CONFIG_HASH_LABEL,
    HOP_DIR,
    HOP_IN_CONTAINER,
    GatewayStack,
    GatewayStackArgs,
    service_ids,
)
from components.host.vm import connection_args
from scripts.lab.converge import mockgraph, sample
from scripts.tools import mock_tls
from scripts.tools.offline import (
    Registered,
    load_stack_config,
    plain,
    record,
    run_program,
)

CLIENT_SECRET = "entra-client-secret~0123456789abcdefghij"
COOKIE_RAW = bytes(range(200, 232))
CLIENT_ID = "0f0f0f0f-1111-2222-3333-444444444444"
GROUP = "66666666-7777-8888-9999-000000000001"
ISSUER = "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
IMAGE_IDS = {"caddy": "sha256:" + "c" * 64, "oauth2-proxy": "sha256:" + "d" * 64}


class Mocks(pulumi.runtime.Mocks):
    """Outputs the real providers would give: ids from `id`, image ids, random bytes."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        outputs = dict(args.inputs)
        if args.typ == "command:remote:Command":
            outputs.update(stdout="999\n998\n" if "service-ids" in args.name else "", stderr="")
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["image_id"] = IMAGE_IDS["caddy" if "caddy" in args.name else "oauth2-proxy"]
        if args.typ == "random:index/randomBytes:RandomBytes":
            outputs.update(base64=base64.b64encode(COOKIE_RAW).decode(), hex=COOKIE_RAW.hex())
        if args.typ.startswith(mock_tls.PREFIX):  # the hop's PKI: real keys and certificates
            outputs.update(mock_tls.answer(args.typ, args.name, {k: plain(v) for k, v in args.inputs.items()}))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


def evaluate(client_secret: str = CLIENT_SECRET, group: str = GROUP) -> list[Registered]:
    """The gateway stack's resources under mocks, for the sample settings and these identity inputs."""
    settings = sample.settings()

    def program() -> Any:
        stack = GatewayStack(
            "gateway",
            GatewayStackArgs(
                hostname=settings.hostname,
                topology=settings.topology,
                gateway=settings.gateway,
                connection=connection_args(settings.topology.vm),
                client_id=pulumi.Output.from_input(CLIENT_ID),
                issuer_url=pulumi.Output.from_input(ISSUER),
                group_object_id=pulumi.Output.from_input(group),
                client_secret=pulumi.Output.secret(client_secret),
            ),
        )
        return pulumi.Output.all(stack.caddy_container_id, stack.oauth2_proxy_container_id, stack.front_site)

    return record(program, mocks=Mocks(), project=mockgraph.PROJECT).resources


@pytest.fixture(scope="module")
def graph() -> list[Registered]:
    return evaluate()


def one(graph: list[Registered], typ: str, name: str) -> Registered:
    (reg,) = [r for r in graph if r.type == typ and r.name == name]
    return reg


def container(graph: list[Registered], name: str) -> dict[str, Any]:
    return one(graph, "docker:index/container:Container", f"gateway-{name}").values


def cookie_secret() -> str:
    return base64.urlsafe_b64encode(COOKIE_RAW).decode().rstrip("=")


def test_component_token_and_children(graph: list[Registered]) -> None:
    stack = one(graph, "hcs:gateway:Stack", "gateway")
    children = {r.type for r in graph if r.urn != stack.urn}
    assert {"docker:index/container:Container", "docker:index/remoteImage:RemoteImage", "pulumi:providers:docker",
            "random:index/randomBytes:RandomBytes", "command:remote:Command", "hcs:host:Files", "hcs:files:File"} <= children


def test_docker_is_reached_over_pinned_ssh_by_an_explicit_provider(graph: list[Registered]) -> None:
    provider = one(graph, "pulumi:providers:docker", "gateway-docker")
    assert provider.values["host"] == "ssh://deploy@192.0.2.10:22"
    # provider config reaches the engine JSON-encoded
    opts = json.loads(provider.values["sshOpts"])
    pairs = dict(o.split("=", 1) for o in opts[1::2])
    assert opts[0::2] == ["-o"] * len(pairs)
    assert pairs["StrictHostKeyChecking"] == "yes" and pairs["UserKnownHostsFile"] == "/dev/null"
    assert pairs["KnownHostsCommand"] == f"/bin/echo 192.0.2.10 {sample.HOST_KEY}"
    assert pairs["ControlMaster"] == "auto" and pairs["BatchMode"] == "yes"
    docker_resources = [r for r in graph if r.type.startswith("docker:index/")]
    assert len(docker_resources) == 4
    assert all(r.provider.startswith(provider.urn + "::") for r in docker_resources)


def test_images_are_the_pinned_references_kept_locally(graph: list[Registered]) -> None:
    settings = sample.settings()
    caddy = one(graph, "docker:index/remoteImage:RemoteImage", "gateway-caddy-image").values
    oauth2 = one(graph, "docker:index/remoteImage:RemoteImage", "gateway-oauth2-proxy-image").values
    assert (caddy["name"], caddy["keepLocally"]) == (settings.gateway.caddy_image, True)
    assert (oauth2["name"], oauth2["keepLocally"]) == (settings.gateway.oauth2_proxy_image, True)
    # the container takes the image id, not the digest reference (which recreates every deploy)
    assert container(graph, "caddy-gateway")["image"] == IMAGE_IDS["caddy"]
    assert container(graph, "oauth2-proxy")["image"] == IMAGE_IDS["oauth2-proxy"]


@pytest.mark.parametrize("name", ["caddy-gateway", "oauth2-proxy"])
def test_both_containers_are_locked_down(graph: list[Registered], name: str) -> None:
    c = container(graph, name)
    assert c["user"] == "999:998"
    assert c["readOnly"] is True
    assert c["securityOpts"] == ["no-new-privileges:true"]
    assert c["capabilities"]["drops"] == ["ALL"]
    assert c["restart"] == "unless-stopped"
    assert c["destroyGraceSeconds"] == 10  # stopped, not killed, when replaced: oauth2-proxy removes its socket
    assert c["networkMode"] == "host" and not c.get("ports")
    assert c.get("privileged") in (None, False)
    assert not c.get("envs"), "no environment at all: nothing secret can leak there"
    # the journal, where Wazuh reads, findable by the container's name (journalctl -t oauth2-proxy)
    assert c["logDriver"] == "journald" and c["logOpts"] == {"tag": name}
    assert [label["label"] for label in c["labels"]] == [CONFIG_HASH_LABEL]


def test_caddy_keeps_only_the_capability_its_binary_needs_to_exec(graph: list[Registered]) -> None:
    assert container(graph, "caddy-gateway")["capabilities"]["adds"] == ["NET_BIND_SERVICE"]
    assert not container(graph, "oauth2-proxy")["capabilities"].get("adds")


def test_mounts(graph: list[Registered]) -> None:
    caddy = {m["target"]: m for m in container(graph, "caddy-gateway")["mounts"]}
    assert caddy["/etc/caddy"] == {"type": "bind", "source": "/opt/code-server/docker/caddy", "target": "/etc/caddy", "readOnly": True}
    log = caddy["/var/log/caddy"]
    assert (log["source"], log["readOnly"]) == ("/var/log/caddy-gateway", False)
    # the Caddyfile writes its access log inside that mount (Caddy's `output file` path)
    caddyfile = files(graph)["/opt/code-server/docker/caddy/Caddyfile"].values["content"]
    assert re.search(r"output file /var/log/caddy/[^/\s]+\.log \{", caddyfile), caddyfile
    assert set(container(graph, "caddy-gateway")["tmpfs"]) == {"/data", "/config"}
    oauth2 = {m["target"]: m for m in container(graph, "oauth2-proxy")["mounts"]}
    assert oauth2["/etc/oauth2-proxy"] == {"type": "bind", "source": "/opt/code-server/docker/oauth2-proxy", "target": "/etc/oauth2-proxy", "readOnly": True}
    # The socket directory, at the same path in both: oauth2-proxy creates its socket, Caddy dials it.
    sockets = "/run/hcs-oauth2-proxy"
    assert oauth2[sockets] == {"type": "bind", "source": sockets, "target": sockets, "readOnly": False}
    assert caddy[sockets] == {"type": "bind", "source": sockets, "target": sockets, "readOnly": True}
    assert len(oauth2) == 2 and len(caddy) == 3


def test_commands_and_health_checks(graph: list[Registered]) -> None:
    caddy, oauth2 = container(graph, "caddy-gateway"), container(graph, "oauth2-proxy")
    assert oauth2["command"] == ["--config=/etc/oauth2-proxy/oauth2-proxy.cfg"]
    assert caddy["command"] == ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
    assert oauth2["healthcheck"]["tests"] == ["NONE"]
    check = caddy["healthcheck"]
    assert check["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "--header", "Host: code.example.com", "http://127.0.0.1:8880/oauth2/ping"]
    assert (check["interval"], check["timeout"], check["retries"]) == ("30s", "5s", 3)


def test_no_secret_reaches_any_container_input(graph: list[Registered]) -> None:
    text = json.dumps([r.values for r in graph if r.type.startswith("docker:") or r.type == "pulumi:providers:docker"])
    for secret in (CLIENT_SECRET, cookie_secret(), base64.b64encode(COOKIE_RAW).decode()):
        assert secret not in text


def files(graph: list[Registered]) -> dict[str, Registered]:
    return {r.values["path"]: r for r in graph if r.type == "hcs:files:File"}


def test_every_file_is_recorded_with_owner_mode_and_secrecy(graph: list[Registered]) -> None:
    recorded = files(graph)
    base = "/opt/code-server/docker"
    expected = {f"{base}/caddy/Caddyfile": False, f"{base}/oauth2-proxy/oauth2-proxy.cfg": False,
                f"{base}/oauth2-proxy/client-secret": True, f"{base}/oauth2-proxy/cookie-secret": True}
    for path, secret in expected.items():
        reg = recorded[path]
        assert (reg.values["role"], reg.values["owner"], reg.values["group"], reg.values["mode"]) == ("vm", "codesvc", "codesvc", "0640")
        assert ("content" in reg.secret_inputs) is secret, path
    assert recorded[f"{base}/oauth2-proxy/client-secret"].values["content"] == CLIENT_SECRET
    assert recorded[f"{base}/oauth2-proxy/cookie-secret"].values["content"] == cookie_secret()
    front = recorded["/etc/caddy/sites/code.example.com.caddy"]
    assert front.values["role"] == "front-proxy" and "reverse_proxy https://192.0.2.10:8880" in front.values["content"]


def test_secret_files_decode_as_oauth2_proxy_reads_them(graph: list[Registered]) -> None:
    content = files(graph)["/opt/code-server/docker/oauth2-proxy/cookie-secret"].values["content"]
    assert render_oauth2_proxy.secret_bytes(content) == COOKIE_RAW


def test_config_files_are_the_rendered_ones(graph: list[Registered]) -> None:
    recorded = files(graph)
    cfg = tomllib.loads(recorded["/opt/code-server/docker/oauth2-proxy/oauth2-proxy.cfg"].values["content"])
    assert (cfg["client_id"], cfg["allowed_groups"], cfg["oidc_issuer_url"]) == (CLIENT_ID, [GROUP], ISSUER)
    caddyfile = recorded["/opt/code-server/docker/caddy/Caddyfile"].values["content"]
    assert "bind 192.0.2.10\n" in caddyfile and "bind 127.0.0.1\n" in caddyfile and "trusted_proxies static 192.0.2.5/32" in caddyfile


def test_files_are_installed_with_contents_on_stdin_only(graph: list[Registered]) -> None:
    install = one(graph, "command:remote:Command", "gateway-files-install")
    assert "stdin" in install.secret_inputs
    assert CLIENT_SECRET not in install.values["create"] and cookie_secret() not in install.values["create"]
    assert base64.b64encode(CLIENT_SECRET.encode()).decode() in install.values["stdin"]
    for d in ("/opt/code-server/docker/caddy", "/opt/code-server/docker/oauth2-proxy", "/var/log/caddy-gateway"):
        assert f"hcs_dir {d} codesvc codesvc 0750" in install.values["create"]


def test_containers_start_after_their_files(graph: list[Registered]) -> None:
    # depending on the HostFiles component means depending on its install command
    files_urn = one(graph, "command:remote:Command", "gateway-files-install").urn
    oauth2 = one(graph, "docker:index/container:Container", "gateway-oauth2-proxy")
    caddy = one(graph, "docker:index/container:Container", "gateway-caddy-gateway")
    assert files_urn in oauth2.dependencies and files_urn in caddy.dependencies
    assert oauth2.urn in caddy.dependencies


def test_config_hash_label_changes_with_any_file(graph: list[Registered]) -> None:
    """A changed file (the config, or a secret file the container reads) must restart the container:
    Docker only recreates it when an input changes, and the label is that input. Judged by
    evaluating the stack again with one file's source changed, not by re-hashing here."""
    label = container(graph, "oauth2-proxy")["labels"][0]["value"]
    assert container(evaluate(), "oauth2-proxy")["labels"][0]["value"] == label  # deterministic
    rotated = evaluate(client_secret=CLIENT_SECRET + "x")
    assert container(rotated, "oauth2-proxy")["labels"][0]["value"] != label
    regrouped = evaluate(group="99999999-8888-7777-6666-555555555555")
    assert files(regrouped)["/opt/code-server/docker/oauth2-proxy/oauth2-proxy.cfg"].values["content"] != \
        files(graph)["/opt/code-server/docker/oauth2-proxy/oauth2-proxy.cfg"].values["content"]
    assert container(regrouped, "oauth2-proxy")["labels"][0]["value"] != label


def test_cookie_secret_is_32_random_bytes_with_a_rotation_key(graph: list[Registered]) -> None:
    rnd = one(graph, "random:index/randomBytes:RandomBytes", "gateway-cookie-secret")
    assert rnd.values["length"] == 32 and rnd.values["keepers"] == {"rotation": "1"}


@pytest.mark.parametrize("stdout", ["", "0\n0\n", "codesvc\n", "999\n"])
def test_service_ids_refuses_anything_but_two_non_root_numbers(stdout: str) -> None:
    with pytest.raises(ValueError, match="uid and gid"):
        service_ids(stdout)


def test_the_deployed_caddyfiles_pass_caddy_validate(graph: list[Registered], caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    recorded = files(graph)
    hop_vm, hop_front = tmp_path / "hop-vm", tmp_path / "hop" / "code.example.com"
    for directory, prefix in ((hop_vm, f"{HOP_DIR}/"), (hop_front, f"{render_caddy.FRONT_HOP_HOME}/code.example.com/")):
        directory.mkdir(parents=True)
        for path, reg in recorded.items():
            if path.startswith(prefix):  # the hop's certificates and keys as the program made them
                (directory / path.removeprefix(prefix)).write_text(plain(reg.values["content"]))
    gateway = tmp_path / "Caddyfile"
    gateway.write_text(recorded["/opt/code-server/docker/caddy/Caddyfile"].values["content"].replace(render_caddy.ACCESS_LOG, str(tmp_path / "access.log"))
                       .replace(HOP_IN_CONTAINER, str(hop_vm)))
    site = tmp_path / "site.caddy"
    site.write_text(recorded["/etc/caddy/sites/code.example.com.caddy"].values["content"])
    front = tmp_path / "front"
    front.write_text(f"{{\n\tadmin off\n\tstorage file_system {tmp_path / 'storage'}\n}}\n\nimport {site}\n")
    for path in (gateway, front):
        result = subprocess.run([caddy_bin, "validate", "--config", str(path), "--adapter", "caddyfile"],
                                env={**caddy_env, "HCS_HOP_DIR": str(tmp_path / "hop")}, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_the_cloudflare_stacks_caddyfile_passes_caddy_validate(caddy_bin: str, caddy_env: dict[str, str], tmp_path: Path) -> None:
    """The gateway Caddyfile the whole program registers for the Cloudflare example stack (loopback
    only, cloudflared the only trusted proxy), judged by the real `caddy validate` as the dev one is."""
    plan = run_program(load_stack_config("cloudflare"))
    (caddyfile,) = [r for r in plan.of_type(FILE_TYPE) if r.values["path"] == "/opt/code-server/docker/caddy/Caddyfile"]
    text = caddyfile.values["content"]
    gateway = tmp_path / "Caddyfile"
    gateway.write_text(text.replace(render_caddy.ACCESS_LOG, str(tmp_path / "access.log")))
    result = subprocess.run([caddy_bin, "validate", "--config", str(gateway), "--adapter", "caddyfile"], env=caddy_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # No inbound web path with the Cloudflare edge: the gateway listens on loopback only (the design: docs/architecture.md, the two edges).
    assert "127.0.0.1" in text and load_stack_config("cloudflare").values["vmAddress"] not in text
