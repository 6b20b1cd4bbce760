"""Stand-in answers for pulumi-tls under the mock runtime: real Ed25519 keys and X.509 certificates.

The offline plan and the demo evaluate the program without the tls provider, but the gateway and
the central Caddy need material that really works (the demo runs both). So each answer is what
the provider would produce for the same inputs, made with `cryptography`: keys derived from the
resource's name (the same on every run, so a second converge changes nothing), certificates valid
from the start of the current UTC day for `validityPeriodHours`, with the inputs' names, uses and
CA flag, signed by the key or CA the inputs name. Ed25519 signatures are deterministic.

Only ED25519 keys are answered (the program asks for no other). Not modelled: early renewal
(`readyForRenewal` is always false here), RSA/ECDSA, URIs.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PREFIX = "tls:index/"
_EXTENDED = {"server_auth": ExtendedKeyUsageOID.SERVER_AUTH, "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH}


def _key(pem: str) -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("the tls stand-in answers ED25519 keys only")
    return key


def _name(subject: dict[str, Any] | None) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str((subject or {}).get("commonName") or "hcs"))])


def _times(hours: int) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + dt.timedelta(hours=hours)


def _rfc3339(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _certificate(name: str, subject: x509.Name, public_key: Any, issuer: x509.Name, signer: ed25519.Ed25519PrivateKey,
                 inputs: dict[str, Any], sans: list[x509.GeneralName]) -> dict[str, str]:
    start, end = _times(int(inputs["validityPeriodHours"]))
    uses = set(inputs.get("allowedUses") or ())
    is_ca = bool(inputs.get("isCaCertificate"))
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(int.from_bytes(hashlib.sha256(f"serial:{name}:{start}".encode()).digest()[:16], "big") >> 1)
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature="digital_signature" in uses, content_commitment=False,
                                            key_encipherment="key_encipherment" in uses, data_encipherment=False,
                                            key_agreement=False, key_cert_sign="cert_signing" in uses,
                                            crl_sign="crl_signing" in uses, encipher_only=False, decipher_only=False), critical=True))
    extended = [_EXTENDED[u] for u in sorted(uses) if u in _EXTENDED]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    pem = builder.sign(signer, None).public_bytes(serialization.Encoding.PEM).decode()
    return {"certPem": pem, "validityStartTime": _rfc3339(start), "validityEndTime": _rfc3339(end), "readyForRenewal": False}


def _sans(dns: list[str] | None, ips: list[str] | None) -> list[x509.GeneralName]:
    return [x509.DNSName(d) for d in dns or ()] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or ()]


def _fixed_check(openssh: str, name: str) -> str:
    """An OpenSSH private key with its two check integers fixed per resource name instead of random.

    pulumi-tls generates a key's text once and keeps it in state; this stand-in has no state, so it must
    give the same text on every run: the text reaches a created VM's user-data, whose digest names the
    Proxmox snippet and replaces the VM when it changes (the demo checks the booted seed against it).
    """
    lines = openssh.strip().splitlines()
    width = len(lines[1])
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    offset = len(b"openssh-key-v1\0")
    for _ in range(3):  # cipher name, KDF name, KDF options
        offset += 4 + int.from_bytes(blob[offset:offset + 4], "big")
    offset += 4  # number of keys
    offset += 4 + int.from_bytes(blob[offset:offset + 4], "big")  # the public key
    offset += 4  # the private section's length; the section starts with checkint, checkint
    blob[offset:offset + 8] = hashlib.sha256(f"mock-tls-check:{name}".encode()).digest()[:4] * 2
    body = base64.b64encode(bytes(blob)).decode()
    return "\n".join([lines[0], *(body[i:i + width] for i in range(0, len(body), width)), lines[-1]]) + "\n"


def answer(type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs pulumi-tls would give resource `name` of `type_token` for these (plain) inputs."""
    kind = type_token.removeprefix(PREFIX)
    if kind == "privateKey:PrivateKey":
        if inputs.get("algorithm") != "ED25519":
            raise ValueError(f"{name}: the tls stand-in answers algorithm ED25519 only, got {inputs.get('algorithm')!r}")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"mock-tls-key:{name}".encode()).digest())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        openssh = _fixed_check(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                 serialization.NoEncryption()).decode(), name)
        public_openssh = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + "\n"
        return {"privateKeyPem": pem, "privateKeyPemPkcs8": pem, "publicKeyPem": public,
                "privateKeyOpenssh": openssh, "publicKeyOpenssh": public_openssh}
    if kind == "selfSignedCert:SelfSignedCert":
        key = _key(inputs["privateKeyPem"])
        subject = _name(inputs.get("subject"))
        return _certificate(name, subject, key.public_key(), subject, key, inputs, _sans(inputs.get("dnsNames"), inputs.get("ipAddresses")))
    if kind == "certRequest:CertRequest":
        key = _key(inputs["privateKeyPem"])
        builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
        sans = _sans(inputs.get("dnsNames"), inputs.get("ipAddresses"))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return {"certRequestPem": builder.sign(key, None).public_bytes(serialization.Encoding.PEM).decode()}
    if kind == "locallySignedCert:LocallySignedCert":
        request = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
        ca = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
        try:
            sans = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
        return _certificate(name, request.subject, request.public_key(), ca.subject, _key(inputs["caPrivateKeyPem"]), inputs, sans)
    raise ValueError(f"{name}: no tls stand-in answer for {type_token}")
