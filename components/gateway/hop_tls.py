"""The DMZ hop's private PKI: a CA for this hop only, the gateway's server certificate and the
central Caddy's client certificate (pulumi-tls; keys live in state as secrets)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.settings.gateway import HopLifetimes
from components.settings.topology import IPv4

#: Ed25519: small keys, deterministic signatures, TLS 1.3 in Caddy and curl.
ALGORITHM = "ED25519"
HOURS_PER_DAY = 24


@dataclass(frozen=True)
class HopPkiArgs:
    """Who the certificates are for: the public hostname (the name the central Caddy verifies)
    and the VM's address, and how long they live."""

    hostname: str
    vm_address: IPv4
    lifetimes: HopLifetimes
    #: More names the gateway's certificate carries (a team VM: its other workspace hosts; the
    #: central Caddy sends each host as the server name of its own connection).
    other_names: tuple[str, ...] = ()


class HopPki(pulumi.ComponentResource):
    """A private CA and two leaf certificates for the hop central Caddy → gateway (token `hcs:gateway:HopPki`).

    Children: three `PrivateKey`s, the CA's `SelfSignedCert`, two `CertRequest`s and two
    `LocallySignedCert`s (the gateway's: server auth, names the hostname and the VM's address;
    the central Caddy's: client auth). Outputs: `ca_cert`, `server_cert`, `server_key` (secret),
    `client_cert`, `client_key` (secret), `server_not_after`, `client_not_after`.

    Why a CA of its own and not the system roots: only certificates this stack issued may speak on
    either end of the hop, so neither a public certificate nor a local impostor is believed. The
    leaves are renewed by the first `pulumi up` inside their renewal window (`early_renewal_hours`):
    a routine `up` replaces them before expiry and the containers reload with the new files.
    """

    ca_cert: pulumi.Output[str]
    server_cert: pulumi.Output[str]
    server_key: pulumi.Output[str]
    client_cert: pulumi.Output[str]
    client_key: pulumi.Output[str]
    server_not_after: pulumi.Output[str]
    client_not_after: pulumi.Output[str]

    def __init__(self, name: str, args: HopPkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("hcs:gateway:HopPki", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        life = args.lifetimes

        def key(role: str) -> pulumi.Output[str]:
            made = tls.PrivateKey(f"{name}-{role}-key", algorithm=ALGORITHM,
                                  opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["private_key_pem"]))
            return pulumi.Output.secret(made.private_key_pem)

        ca_key = key("ca")
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key,
            is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"hardened-code-server hop CA {args.hostname}"),
            validity_period_hours=life.ca_days * HOURS_PER_DAY,
            early_renewal_hours=life.renew_days * HOURS_PER_DAY,
            allowed_uses=["cert_signing", "crl_signing"],
            opts=child,
        )

        def leaf(role: str, uses: list[str], dns: list[str], ips: list[str]) -> tuple[tls.LocallySignedCert, pulumi.Output[str]]:
            private = key(role)
            request = tls.CertRequest(
                f"{name}-{role}-request",
                private_key_pem=private,
                subject=tls.CertRequestSubjectArgs(common_name=f"hardened-code-server {role} {args.hostname}"),
                dns_names=dns,
                ip_addresses=ips,
                opts=child,
            )
            cert = tls.LocallySignedCert(
                f"{name}-{role}",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key,
                ca_cert_pem=ca.cert_pem,
                validity_period_hours=life.cert_days * HOURS_PER_DAY,
                early_renewal_hours=life.renew_days * HOURS_PER_DAY,
                allowed_uses=uses,
                opts=child,
            )
            return cert, private

        server, server_key = leaf("gateway", ["digital_signature", "server_auth"], [args.hostname, *args.other_names], [str(args.vm_address)])
        client, client_key = leaf("front-proxy", ["digital_signature", "client_auth"], [], [])
        self.ca_cert = ca.cert_pem
        self.server_cert = server.cert_pem
        self.server_key = server_key
        self.client_cert = client.cert_pem
        self.client_key = client_key
        self.server_not_after = server.validity_end_time
        self.client_not_after = client.validity_end_time
        self.register_outputs({
            "ca_cert": self.ca_cert, "server_cert": self.server_cert, "server_key": self.server_key,
            "client_cert": self.client_cert, "client_key": self.client_key,
            "server_not_after": self.server_not_after, "client_not_after": self.client_not_after,
        })
