"""The demo's own certificate authority: one CA, and a server certificate per test-network service.

The registry (which the VM's Docker pulls from over HTTPS) and the identity-provider stand-in
(which oauth2-proxy and the browser reach over HTTPS) need certificates the machines can verify,
as internal services have in production. Made with `openssl` (Debian), EC P-256, names and IP
addresses as subjectAltNames; the keys never leave the demo's work directory (mode 0600).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def _openssl(*argv: str) -> None:
    proc = subprocess.run(["openssl", *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {argv[0]} failed: {proc.stderr.strip()}")


class DemoCA:
    """A CA in `directory` (created on first use, reused afterwards)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert = directory / "ca.pem"
        self._key = directory / "ca.key"
        if not self.cert.exists():
            directory.mkdir(parents=True, exist_ok=True)
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", str(self._key), "-out", str(self.cert), "-days", "30",
                     "-subj", "/CN=hardened-code-server demo CA",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
            self._key.chmod(0o600)

    def issue(self, name: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()) -> Certificate:
        """A server certificate for `dns` names and `ips` (reused if already issued)."""
        cert, key = self.directory / f"{name}.pem", self.directory / f"{name}.key"
        if cert.exists():
            return Certificate(cert, key)
        csr = self.directory / f"{name}.csr"
        sans = ",".join([*(f"DNS:{d}" for d in dns), *(f"IP:{i}" for i in ips)])
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key),
                 "-out", str(csr), "-subj", f"/CN={(dns or ips)[0]}")
        key.chmod(0o600)
        extensions = self.directory / f"{name}.ext"
        extensions.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self._key), "-CAcreateserial",
                 "-out", str(cert), "-days", "30", "-extfile", str(extensions))
        csr.unlink()
        return Certificate(cert, key)
