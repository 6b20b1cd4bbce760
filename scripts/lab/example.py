"""What several test modules share: a fixed date, test-only secrets, and the example stack's
config as the engine would pass it (Pulumi.yaml defaults, then Pulumi.dev.yaml, then overrides)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from components.gateway import render_caddy
from components.settings import MappingSource, Settings, load
from scripts.tools import mock_tls
from scripts.tools.offline import load_stack_config

#: Fixed "today" for settings tests, so date checks don't depend on when the suite runs.
TODAY = dt.date(2026, 11, 23)
#: A private key of the right shape; never a real key.
KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA-not-a-real-key\n-----END OPENSSH PRIVATE KEY-----\n"
#: Test-only values for every secret setting; each is unique, so a leak can be searched for.
TEST_SECRETS: dict[str, str] = {
    "vmSshPrivateKey": KEY,
    "fortigateApiToken": "tok-plan-Wm3Qz8Lr5Xv2Nc7Ks4Pd9Hf6",
    "zabbixPsk": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "backupPassword": "correct horse battery staple",
    "backupRestPassword": "rest-only-Zq7Wm2Kx9Pv4Ns6Td",
}


def dev_values(**overrides: Any) -> dict[str, str]:
    """The dev stack's raw config with test secrets; an override of None removes the key."""
    return load_stack_config("dev").with_values(**{**TEST_SECRETS, **overrides}).values


def dev_source(**overrides: Any) -> MappingSource:
    """`dev_values` as a settings source, secret keys marked as the stack would store them."""
    values = dev_values(**overrides)
    return MappingSource(values, frozenset(load_stack_config("dev").secret_keys & set(values)))


def dev_settings(**overrides: Any) -> Settings:
    """Validated settings of the dev stack (with `overrides`)."""
    return load(dev_source(**overrides), today=TODAY)


def hop_pki(directory: Path, hostname: str = "code.example.com", vm_address: str = "192.0.2.10", more_names: tuple[str, ...] = ()) -> dict[str, Path]:
    """Files of a DMZ hop PKI, made exactly as the program's pulumi-tls stand-in makes them (real
    Ed25519 keys and X.509 certificates): ca.crt/.key, gateway.crt/.key, front.crt/.key in `directory`.
    The gateway's certificate names `hostname` and `more_names` (a team VM's other workspace hosts)."""
    def make(kind: str, name: str, **inputs: Any) -> dict[str, Any]:
        return mock_tls.answer(f"{mock_tls.PREFIX}{kind}", name, inputs)

    ca_key = make("privateKey:PrivateKey", f"{directory}-ca", algorithm="ED25519")["privateKeyPem"]
    ca = make("selfSignedCert:SelfSignedCert", "ca", privateKeyPem=ca_key, isCaCertificate=True, subject={"commonName": "test hop CA"},
              validityPeriodHours=48, allowedUses=["cert_signing"])["certPem"]
    out = {"ca.crt": ca, "ca.key": ca_key}
    for role, uses, dns, ips in (("gateway", "server_auth", [hostname, *more_names], [vm_address]), ("front", "client_auth", [], [])):
        key = make("privateKey:PrivateKey", f"{directory}-{role}", algorithm="ED25519")["privateKeyPem"]
        request = make("certRequest:CertRequest", role, privateKeyPem=key, subject={"commonName": role}, dnsNames=dns, ipAddresses=ips)
        out[f"{role}.key"] = key
        out[f"{role}.crt"] = make("locallySignedCert:LocallySignedCert", f"{directory}-{role}", certRequestPem=request["certRequestPem"],
                                  caCertPem=ca, caPrivateKeyPem=ca_key, validityPeriodHours=24,
                                  allowedUses=["digital_signature", uses])["certPem"]
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in out.items():
        (directory / name).write_text(text)
        paths[name] = directory / name
    return paths


def front_hop_dir(root: Path, hostname: str, pki: dict[str, Path]) -> Path:
    """`root` as the central Caddy's HCS_HOP_DIR: the hop's CA and the front's certificate and key
    of `pki` (from `hop_pki`) under <hostname>/, with the names the site block reads (0600)."""
    hop = root / hostname
    hop.mkdir(parents=True, exist_ok=True)
    for name, source in ((render_caddy.HOP_CA, "ca.crt"), (render_caddy.HOP_CERT, "front.crt"), (render_caddy.HOP_KEY, "front.key")):
        (hop / name).write_text(pki[source].read_text())
        (hop / name).chmod(0o600)
    return root
