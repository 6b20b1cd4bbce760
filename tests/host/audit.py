"""Judging ssh-audit's JSON report: not one `fail` note or CVE, and no `warn` note outside an explicit allow-list.

ssh-audit exits 2 whenever it has any warning, so its exit code cannot tell a known, accepted
warning from a new one: the notes decide. The allow-list names each accepted warning exactly.
"""

from __future__ import annotations

from typing import Any

#: Accepted: OpenSSH 9.2 (Debian 12) offers curve25519 key exchange, which ssh-audit 3.9 flags as
#: not post-quantum. (section, algorithm, note).
ALLOWED_WARNINGS = frozenset({
    ("kex", "curve25519-sha256", "does not provide protection against post-quantum attacks"),
    ("kex", "curve25519-sha256@libssh.org", "does not provide protection against post-quantum attacks"),
})


def findings(report: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(section, algorithm, level, note) of every failure and every warning not allowed; CVEs too."""
    found = [("cves", str(cve.get("name")), "fail", str(cve.get("description", ""))) for cve in report.get("cves", [])]
    for section in ("kex", "key", "enc", "mac"):
        for alg in report.get(section, []):
            notes = alg.get("notes", {})
            found += [(section, alg["algorithm"], "fail", note) for note in notes.get("fail", [])]
            found += [(section, alg["algorithm"], "warn", note) for note in notes.get("warn", [])
                      if (section, alg["algorithm"], note) not in ALLOWED_WARNINGS]
    return found
