"""Judging ssh-audit's JSON report: not one `fail` note or CVE, and no `warn` note outside an explicit allow-list.

ssh-audit exits 2 whenever it has any warning, so its exit code cannot tell a known, accepted
warning from a new one: the notes decide. The allow-list names each accepted warning exactly.
"""

from __future__ import annotations

from typing import Any

#: Each release's key exchange as `sshd -T` must report it, written from its OpenSSH's `ssh -Q kex` and the
#: design: the post-quantum hybrids first, curve25519-sha256 last (Pulumi's Go SSH client), no NIST curve,
#: no SHA-1; OpenSSH 10.0 (13) without the libssh alias.
KEX = {
    12: "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org",
    13: "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com,curve25519-sha256",
}
_NOT_PQ = "does not provide protection against post-quantum attacks"
#: Accepted, per Debian release: the classical curve25519 key exchange, offered last after the
#: post-quantum hybrids because Pulumi's SSH client (Go's x/crypto/ssh in pulumi-command) has no
#: post-quantum exchange before x/crypto v0.40; ssh-audit 3.9 flags it as not post-quantum. Debian
#: 12's OpenSSH 9.2 also keeps the libssh alias of the same exchange. (section, algorithm, note).
ALLOWED_WARNINGS: dict[int, frozenset[tuple[str, str, str]]] = {
    12: frozenset({("kex", "curve25519-sha256", _NOT_PQ), ("kex", "curve25519-sha256@libssh.org", _NOT_PQ)}),
    13: frozenset({("kex", "curve25519-sha256", _NOT_PQ)}),
}


def findings(report: dict[str, Any], release: int) -> list[tuple[str, str, str, str]]:
    """(section, algorithm, level, note) of every failure and every warning not allowed; CVEs too."""
    found = [("cves", str(cve.get("name")), "fail", str(cve.get("description", ""))) for cve in report.get("cves", [])]
    for section in ("kex", "key", "enc", "mac"):
        for alg in report.get(section, []):
            notes = alg.get("notes", {})
            found += [(section, alg["algorithm"], "fail", note) for note in notes.get("fail", [])]
            found += [(section, alg["algorithm"], "warn", note) for note in notes.get("warn", [])
                      if (section, alg["algorithm"], note) not in ALLOWED_WARNINGS[release]]
    return found
