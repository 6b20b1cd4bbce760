"""The gateway stack on the VM: Caddy and oauth2-proxy containers, their files, their secrets."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_random as random
from pulumi_command import remote

from components.files import HostFile
from components.gateway import docker_ssh
from components.gateway import render_caddy as caddy
from components.gateway import render_oauth2_proxy as oauth2
from components.gateway.hop_tls import HopPki, HopPkiArgs
from components.installer import HostFiles, HostFilesArgs, record_files
from components.layout import GATEWAY_LOG_DIR, OAUTH2_PROXY_SOCKET_DIR, PROXY_STACK_DIR, WORKSPACE_GATEWAY_SOCKET_DIR
from components.settings.gateway import GatewaySettings
from components.settings.topology import Topology
from components.settings.workspaces import PRIMARY_VM, Team, resource_name

CADDY_DIR = f"{PROXY_STACK_DIR}/caddy"
OAUTH2_PROXY_DIR = f"{PROXY_STACK_DIR}/oauth2-proxy"
CLOUDFLARED_DIR = f"{PROXY_STACK_DIR}/cloudflared"
#: The hop's certificate, key and client CA on the VM, and where the gateway container sees them.
HOP_DIR = f"{CADDY_DIR}/hop"
HOP_IN_CONTAINER = "/etc/caddy/hop"
#: cloudflared's metrics/readiness server, on loopback only (never the VM's address).
CLOUDFLARED_METRICS = "127.0.0.1:20241"
#: Mode of every file of the stack, secrets included: the design's 640 for the service account
#: (its group has no other member), inside 750 directories.
FILE_MODE = "0640"
DIR_MODE = "0750"
CONFIG_HASH_LABEL = "org.hardened-code-server.config-sha256"
#: The journal: every container's output (oauth2-proxy's auth and request lines with the user, the
#: gateway's own messages) lands where Wazuh already reads, beside the host's, with the container's
#: name as its syslog identifier (`journalctl -t oauth2-proxy`) and journald's own rate limits and
#: rotation. Options explicit, because kreuzwerker/docker diffs unset log options forever (#473).
LOG_DRIVER = "journald"
#: An admin's `docker stop` during an incident sticks; anything else restarts.
RESTART = "unless-stopped"
#: A replaced container is stopped (SIGTERM) before it is removed: without this the provider removes
#: it by force (SIGKILL), and oauth2-proxy, killed, leaves its socket file behind, so its successor
#: fails with "address already in use" (seen on the demo when the config changed).
DESTROY_GRACE_SECONDS = 10
NO_NEW_PRIVILEGES = "no-new-privileges:true"


def hardened(**settings: Any) -> dict[str, Any]:
    """Container arguments every container of the stack gets, plus its own `settings`.

    Host network (UFW, not Docker's NAT which bypasses it, guards the ports), a read-only root,
    every capability dropped, `no-new-privileges`, the restart policy, a clean stop before removal,
    and the journal, tagged with the container's name.
    One place, so a new container cannot forget one of them.
    """
    return {
        "network_mode": "host",
        "read_only": True,
        "capabilities": docker.ContainerCapabilitiesArgs(drops=["ALL"]),
        "security_opts": [NO_NEW_PRIVILEGES],
        "restart": RESTART,
        "destroy_grace_seconds": DESTROY_GRACE_SECONDS,
        "log_driver": LOG_DRIVER,
        "log_opts": {"tag": settings["name"]},
        **settings,
    }


@dataclass(frozen=True)
class TunnelConnector:
    """The Cloudflare edge's connector: a pinned cloudflared image and the tunnel token (secret)."""

    image: str
    token: pulumi.Input[str]


@dataclass(frozen=True)
class GatewayStackArgs:
    """What the stack needs: settings, the VM connection, and the Entra app's values.

    The Entra values are Outputs of `EntraAccess` (`client_secret` a secret Output). `after`
    holds the resources the host setup must finish first (accounts, directories, Docker).
    With `team`, the gateway of VM `vm` (`topology` being that VM's) serving its workspace hosts;
    `hostname` and `group_object_id` are then unused (each workspace has its host and its role).
    """

    hostname: str
    topology: Topology
    gateway: GatewaySettings
    connection: remote.ConnectionArgs
    client_id: pulumi.Input[str]
    issuer_url: pulumi.Input[str]
    group_object_id: pulumi.Input[str | None]
    client_secret: pulumi.Input[str]
    after: Sequence[pulumi.Resource] = ()
    tunnel: TunnelConnector | None = None
    team: Team | None = None
    vm: str = PRIMARY_VM

    def __post_init__(self) -> None:
        if self.team is not None and self.tunnel is not None:
            raise ValueError("GatewayStackArgs: a team is served through the FortiGate edge, not a tunnel")


def content_hash(*parts: str) -> str:
    """SHA-256 over the files a container reads, as a label that replaces it when they change."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part.encode()).digest())
    return digest.hexdigest()


def caddy_params(hostname: str, topology: Topology) -> caddy.GatewayParams:
    """The production gateway: bound to loopback, and to the VM's own address only for the front
    proxy, with mutual TLS there (the FortiGate edge; the Cloudflare edge has no network peer)."""
    hop = f"{HOP_IN_CONTAINER}/"
    return caddy.GatewayParams(
        hostname=hostname,
        port=topology.gateway_port,
        listen=topology.gateway_listen,
        front_proxies=topology.trusted_proxies,
        tls=caddy.HopTls(hop + caddy.HOP_CERT, hop + caddy.HOP_KEY, hop + caddy.HOP_CA) if topology.gateway_peers else None,
    )


def service_ids(stdout: str) -> str:
    """`uid:gid` from the two lines `id -u; id -g` print; anything else is a failed lookup."""
    lines = stdout.split()
    if len(lines) != 2 or not all(x.isdigit() and int(x) > 0 for x in lines):
        raise ValueError(f"expected the service account's numeric uid and gid, got {stdout!r}")
    return f"{lines[0]}:{lines[1]}"


def caddy_tmpfs(user: str) -> dict[str, str]:
    """Caddy's two scratch directories, private to the container and owned by `uid:gid`."""
    uid, gid = user.split(":")
    owner = f"uid={uid},gid={gid},mode=0700"
    return {"/data": f"rw,noexec,nosuid,nodev,size=16m,{owner}", "/config": f"rw,noexec,nosuid,nodev,size=1m,{owner}"}


def hop_name(args: GatewayStackArgs) -> str:
    """The name of the hop's directory and site file on the central Caddy's host: the hostname, or
    for a team VM `<vm>.<workspace domain>` (one hop, one site block per VM)."""
    return f"{args.vm}.{args.team.domain}" if args.team else args.hostname


def _file(role: str, path: str, content: Any, owner: str, secret: bool = False) -> HostFile:
    return HostFile(role=role, path=path, content=content, owner=owner, group=owner, mode=FILE_MODE, secret=secret)


class GatewayStack(pulumi.ComponentResource):
    """Caddy gateway and oauth2-proxy on the VM's Docker (token `hcs:gateway:Stack`).

    Children: a `RandomBytes` cookie secret; a `remote.Command` reading the service account's
    uid/gid; `HostFiles` writing the Caddyfile, the oauth2-proxy config and its two secret files
    under /opt/code-server/docker (service account, 0640 in 0750 dirs, contents on stdin);
    a `FileRecord` of the central Caddy's site block (recorded, not installed; FortiGate edge
    only); a Docker provider over pinned `ssh://`; two digest-pinned `RemoteImage`s; two
    `Container`s. With the Cloudflare edge (`tunnel`), also the tunnel token as a secret file
    and a third container, cloudflared, which dials out to Cloudflare and reaches the gateway
    on loopback: it reads its token from that file (`--token-file`), never from its command
    line or environment, and serves metrics on 127.0.0.1 only.
    With the FortiGate edge, a `HopPki` (the hop's CA and certificates): the gateway's certificate,
    key and client CA go to the VM like the other files, the central Caddy's client certificate,
    key and the CA are recorded for its host and exported.
    Outputs: `front_site` (the site block for the central Caddy, or None), `hop_ca_cert`,
    `front_proxy_hop_cert`, `front_proxy_hop_key` (secret), `hop_not_after` (the earlier
    expiry of the two leaves; all None with the Cloudflare edge), `caddy_container_id`,
    `oauth2_proxy_container_id`, `cookie_secret_urn` (`pulumi up --replace <urn>` rotates it).

    Why: both containers run as the service account with a read-only root, every capability
    dropped and `no-new-privileges`; they share the host network so Caddy sees the front
    proxy's real address and UFW (not Docker's NAT, which bypasses it) guards the port, while
    oauth2-proxy listens only on a Unix socket in a directory of the service account (no other
    uid can connect to it, or bind it while oauth2-proxy is down) and code-server on 127.0.0.1. Secrets reach oauth2-proxy only as
    read-only files: nothing secret is in an environment, a command line or a label in clear
    (the label is a hash, so a rotated secret restarts the container).
    """

    front_site: pulumi.Output[str]
    hop_ca_cert: pulumi.Output[str]
    front_proxy_hop_cert: pulumi.Output[str]
    front_proxy_hop_key: pulumi.Output[str]
    hop_not_after: pulumi.Output[str]
    caddy_container_id: pulumi.Output[str]
    oauth2_proxy_container_id: pulumi.Output[str]
    cookie_secret_urn: pulumi.Output[str]

    def __init__(self, name: str, args: GatewayStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:gateway:Stack", name, None, opts)
        topo, settings, team = args.topology, args.gateway, args.team
        svc = topo.accounts.service_user
        # A team VM's gateway answers its workspace hosts; the first is the health check's Host.
        hosts = caddy.team_hosts(team, args.vm) if team else (args.hostname,)
        gateway_params = caddy_params(hosts[0], topo)
        after = list(args.after)
        machine = resource_name("vm", args.vm)  # the files' machine role, as the VM's own files have

        cookie = random.RandomBytes(
            f"{name}-cookie-secret",
            length=oauth2.COOKIE_SECRET_BYTES,
            keepers={"rotation": settings.cookie_secret_rotation},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["base64", "hex"]),
        )
        cookie_secret = pulumi.Output.secret(cookie.base64.apply(oauth2.cookie_secret))
        client_secret = pulumi.Output.secret(args.client_secret)
        if team is not None:
            oauth2_config = pulumi.Output.all(args.issuer_url, args.client_id).apply(
                lambda v: oauth2.render_team(oauth2.TeamOAuth2ProxyParams(
                    issuer_url=v[0], client_id=v[1], team=team, vm=args.vm, email_domains=settings.email_domains,
                    cookie_expire=settings.cookie_expire, cookie_refresh=settings.cookie_refresh)))
            caddyfile = caddy.team_gateway(caddy.TeamGatewayParams(gateway_params, team, args.vm))
        else:
            oauth2_config = pulumi.Output.all(args.issuer_url, args.client_id, args.group_object_id).apply(
                lambda v: oauth2.render(
                    oauth2.OAuth2ProxyParams(
                        hostname=args.hostname,
                        issuer_url=v[0],
                        client_id=v[1],
                        allowed_group=v[2],
                        email_domains=settings.email_domains,
                        cookie_expire=settings.cookie_expire,
                        cookie_refresh=settings.cookie_refresh,
                    )
                )
            )
            caddyfile = caddy.gateway(gateway_params)

        tunnel_token = pulumi.Output.secret(args.tunnel.token) if args.tunnel else None
        stack_files = [
            _file(machine, f"{CADDY_DIR}/Caddyfile", caddyfile, svc),
            _file(machine, f"{OAUTH2_PROXY_DIR}/oauth2-proxy.cfg", oauth2_config, svc),
            _file(machine, f"{OAUTH2_PROXY_DIR}/client-secret", client_secret, svc, secret=True),
            _file(machine, f"{OAUTH2_PROXY_DIR}/cookie-secret", cookie_secret, svc, secret=True),
        ]
        directories = [PROXY_STACK_DIR, CADDY_DIR, OAUTH2_PROXY_DIR, GATEWAY_LOG_DIR]
        gateway_inputs: list[pulumi.Input[str]] = [caddyfile]
        self.hop_ca_cert = self.front_proxy_hop_cert = self.front_proxy_hop_key = self.hop_not_after = pulumi.Output.from_input(None)
        if topo.gateway_peers:
            pki = HopPki(f"{name}-hop", HopPkiArgs(hosts[0], topo.vm.address, settings.hop, hosts[1:]), pulumi.ResourceOptions(parent=self))
            stack_files += [
                _file(machine, f"{HOP_DIR}/{caddy.HOP_CA}", pki.ca_cert, svc),
                _file(machine, f"{HOP_DIR}/{caddy.HOP_CERT}", pki.server_cert, svc),
                _file(machine, f"{HOP_DIR}/{caddy.HOP_KEY}", pki.server_key, svc, secret=True),
            ]
            directories.append(HOP_DIR)
            gateway_inputs += [pki.ca_cert, pki.server_cert, pki.server_key]
            front = f"{caddy.FRONT_HOP_HOME}/{hop_name(args)}"
            record_files(self, [
                HostFile(role="front-proxy", path=f"{front}/{caddy.HOP_CA}", content=pki.ca_cert),
                HostFile(role="front-proxy", path=f"{front}/{caddy.HOP_CERT}", content=pki.client_cert),
                HostFile(role="front-proxy", path=f"{front}/{caddy.HOP_KEY}", content=pki.client_key, mode="0600", secret=True),
            ])
            self.hop_ca_cert, self.front_proxy_hop_cert, self.front_proxy_hop_key = pki.ca_cert, pki.client_cert, pki.client_key
            self.hop_not_after = pulumi.Output.all(pki.server_not_after, pki.client_not_after).apply(min)
        if tunnel_token is not None:
            stack_files.append(_file(machine, f"{CLOUDFLARED_DIR}/token", tunnel_token, svc, secret=True))
            directories.append(CLOUDFLARED_DIR)
        files = HostFiles(
            f"{name}-files",
            HostFilesArgs(
                connection=args.connection,
                files=stack_files,
                before="".join(f"hcs_dir {d} {svc} {svc} {DIR_MODE}\n" for d in directories),
            ),
            pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        if topo.gateway_peers:
            front_site = (caddy.team_front_site(team, args.vm, topo.vm.address, topo.gateway_port, hop_name(args)) if team
                          else caddy.front_site(args.hostname, topo.vm.address, topo.gateway_port))
            record_files(self, [HostFile(role="front-proxy", path=f"/etc/caddy/sites/{hop_name(args)}.caddy", content=front_site)])
            self.front_site = pulumi.Output.from_input(front_site)
        else:
            self.front_site = pulumi.Output.from_input(None)

        ids = remote.Command(
            f"{name}-service-ids",
            remote.CommandArgs(
                connection=args.connection,
                create=f"id -u {svc} && id -g {svc}",
                triggers=[svc],
                add_previous_output_in_env=False,
            ),
            pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        user = ids.stdout.apply(service_ids)

        provider = docker.Provider(
            f"{name}-docker",
            host=docker_ssh.docker_host(topo.vm),
            ssh_opts=docker_ssh.ssh_options(topo.vm),
            opts=pulumi.ResourceOptions(parent=self),
        )
        on_vm = pulumi.ResourceOptions(parent=self, provider=provider)
        oauth2_image = docker.RemoteImage(f"{name}-oauth2-proxy-image", name=settings.oauth2_proxy_image, keep_locally=True,
                                          opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=after)))
        caddy_image = docker.RemoteImage(f"{name}-caddy-image", name=settings.caddy_image, keep_locally=True,
                                         opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=after)))

        oauth2_hash = pulumi.Output.all(oauth2_config, client_secret, cookie_secret).apply(lambda v: content_hash(*v))
        oauth2_proxy = docker.Container(
            f"{name}-oauth2-proxy",
            **hardened(
                name="oauth2-proxy",
                image=oauth2_image.image_id,
                command=[f"--config={oauth2.CONFIG_FILE}"],
                user=user,
                mounts=[
                    docker.ContainerMountArgs(type="bind", source=OAUTH2_PROXY_DIR, target=oauth2.CONFIG_DIR, read_only=True),
                    # Where it creates its listening socket (the host's 0750 service-account directory).
                    docker.ContainerMountArgs(type="bind", source=OAUTH2_PROXY_SOCKET_DIR, target=OAUTH2_PROXY_SOCKET_DIR, read_only=False),
                ],
                labels=[docker.ContainerLabelArgs(label=CONFIG_HASH_LABEL, value=oauth2_hash)],
                # distroless image: nothing inside can probe; the gateway's check covers oauth2-proxy
                healthcheck=docker.ContainerHealthcheckArgs(tests=["NONE"]),
            ),
            opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=[files])),
        )
        gateway = docker.Container(
            f"{name}-caddy-gateway",
            **hardened(
                name="caddy-gateway",
                image=caddy_image.image_id,
                command=["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"],
                user=user,
                # The image's caddy binary carries the file capability cap_net_bind_service=+ep, and
                # exec fails (EPERM) when that capability is outside the bounding set, even for a
                # port >= 1024 (caddyserver/caddy-docker#396). Keeping it in the bounding set grants
                # nothing here: a non-root user under no-new-privileges gains no file capability.
                capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"], adds=["NET_BIND_SERVICE"]),
                mounts=[
                    docker.ContainerMountArgs(type="bind", source=CADDY_DIR, target="/etc/caddy", read_only=True),
                    docker.ContainerMountArgs(type="bind", source=GATEWAY_LOG_DIR, target=caddy.ACCESS_LOG.rsplit("/", 1)[0], read_only=False),
                    # oauth2-proxy's socket; connecting needs no write access to the mount.
                    docker.ContainerMountArgs(type="bind", source=OAUTH2_PROXY_SOCKET_DIR, target=OAUTH2_PROXY_SOCKET_DIR, read_only=True),
                    # A team VM: the router's way to each workspace (hcs-ws-proxy@.socket, root:service account 0660).
                    *([docker.ContainerMountArgs(type="bind", source=WORKSPACE_GATEWAY_SOCKET_DIR,
                                                 target=WORKSPACE_GATEWAY_SOCKET_DIR, read_only=True)] if team else []),
                ],
                # Caddy's storage housekeeping (instance id, clean stamp) is all it writes besides the log.
                # Owned by the service account: a tmpfs is root's 0755 otherwise, and Caddy could not write.
                tmpfs=user.apply(caddy_tmpfs),
                # the hop's certificate and key included: a renewed certificate restarts the gateway
                labels=[docker.ContainerLabelArgs(label=CONFIG_HASH_LABEL, value=pulumi.Output.all(*gateway_inputs).apply(lambda v: content_hash(*v)))],
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=["CMD", *caddy.health_check(gateway_params)], interval="30s", timeout="5s", retries=3, start_period="10s"
                ),
            ),
            opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=[files, oauth2_proxy])),
        )

        if args.tunnel is not None and tunnel_token is not None:
            cloudflared_image = docker.RemoteImage(f"{name}-cloudflared-image", name=args.tunnel.image, keep_locally=True,
                                                   opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=after)))
            docker.Container(
                f"{name}-cloudflared",
                **hardened(
                    name="cloudflared",
                    image=cloudflared_image.image_id,
                    command=["tunnel", "--no-autoupdate", "--metrics", CLOUDFLARED_METRICS,
                             "run", "--token-file", "/etc/cloudflared/token"],
                    user=user,
                    mounts=[docker.ContainerMountArgs(type="bind", source=CLOUDFLARED_DIR, target="/etc/cloudflared", read_only=True)],
                    labels=[docker.ContainerLabelArgs(label=CONFIG_HASH_LABEL, value=tunnel_token.apply(content_hash))],
                    # distroless image: nothing inside can probe; the tunnel's health shows at Cloudflare
                    healthcheck=docker.ContainerHealthcheckArgs(tests=["NONE"]),
                ),
                opts=pulumi.ResourceOptions.merge(on_vm, pulumi.ResourceOptions(depends_on=[files, gateway])),
            )

        self.caddy_container_id = gateway.id
        self.oauth2_proxy_container_id = oauth2_proxy.id
        self.cookie_secret_urn = cookie.urn
        self.register_outputs(
            {
                "front_site": self.front_site,
                "hop_ca_cert": self.hop_ca_cert,
                "front_proxy_hop_cert": self.front_proxy_hop_cert,
                "front_proxy_hop_key": self.front_proxy_hop_key,
                "hop_not_after": self.hop_not_after,
                "caddy_container_id": self.caddy_container_id,
                "oauth2_proxy_container_id": self.oauth2_proxy_container_id,
                "cookie_secret_urn": self.cookie_secret_urn,
            }
        )
