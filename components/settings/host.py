"""DMZ host settings: the pinned code-server package, the host firewall's egress stance, and the
secrets of the optional agents (Zabbix PSK, restic password).

Who the accounts are and where the neighbours live is `topology`; this layer only holds what the
host setup needs on top. code-server releases ship no checksum file, so the package is pinned by
version *and* SHA-256 here and the install refuses anything else.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from components.settings import calendar, checks, debian, ide, rules
from components.settings.reader import Reader
from components.settings.topology import Topology

_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[A-Za-z0-9._~/{}%+-]*$")
_PSK = re.compile(r"^[0-9a-f]{32,512}$")


@dataclass(frozen=True)
class CodeServerPackage:
    """The one code-server .deb the host may install: its version, its digest, where it comes from."""

    version: str
    sha256: str
    url: str


@dataclass(frozen=True)
class HostSettings:
    """What the host setup needs beyond `Topology`; secrets are secret Outputs (or None when unused)."""

    code_server: CodeServerPackage
    ufw_deny_outgoing: bool
    workspace_volume: str
    zabbix_psk: Any  # pulumi.Output[str] | None
    zabbix_psk_identity: str
    backup_password: Any  # pulumi.Output[str] | None
    backup_schedule: str
    #: The rest-server account of this VM (its htpasswd user) and password (secret Output or None).
    backup_rest_user: str = "code-server-vm"
    backup_rest_password: Any = None  # pulumi.Output[str] | None
    #: code-server's port proxy (/proxy/<port>, /absproxy/<port>) on: a local service is then
    #: served on the IDE's own origin (an XSS there runs same-origin with the workbench).
    code_server_port_proxy: bool = False
    #: The VM's Debian release: every release-specific choice of the host setup follows it.
    debian: debian.DebianRelease = debian.RELEASES[debian.DEFAULT]
    #: Where the IDE installs extensions from (through the proxy), and the VSIX files the converge installs.
    ide_gallery: ide.Gallery = ide.Gallery(ide.OPEN_VSX)
    ide_extensions: tuple[ide.Vsix, ...] = ()
    #: code-server's own download and upload actions off (`disable-file-downloads`, `disable-file-uploads`).
    #: The UI's actions only: the terminal can still print a file (cat, base64) and the editor's
    #: clipboard still copies text out and pastes it in.
    code_server_disable_downloads: bool = False
    code_server_disable_uploads: bool = False
    #: code-server exits after this long with no connection at all (every browser tab of the IDE
    #: closed); systemd starts a fresh one, and what the terminal left running dies with the old one.
    code_server_idle_timeout: dt.timedelta = dt.timedelta(hours=1)


def _package_url(value: str) -> str:
    if not _URL.match(value) or value.endswith("/"):
        raise ValueError("expected an http(s) URL of the .deb, e.g. https://mirror.example.com/code-server_{version}_amd64.deb")
    if set(re.findall(r"{([^}]*)}", value)) - {"version"}:
        raise ValueError("expected {version} as the only placeholder")
    return value


def _absolute_dir(value: str) -> str:
    parts = value.split("/")
    if not value.startswith("/") or value == "/" or value.endswith("/") or ".." in parts or "" in parts[1:]:
        raise ValueError("expected an absolute directory path such as /mnt/cs-workspace-volume")
    if not re.match(r"^[A-Za-z0-9._/-]+$", value):
        raise ValueError("expected a path of letters, digits, '.', '_', '-' and '/' only")
    if rules.system_path(value):
        raise rules.BY_NAME["workspace-system-path"].error()
    return value


def _zabbix_psk(value: str) -> None:
    if not _PSK.match(value.strip()):
        raise ValueError("expected a pre-shared key of 32 to 512 lower-case hex digits (openssl rand -hex 32)")


_identity = checks.matching(r"[A-Za-z0-9._-]{1,128}", "1-128 characters of letters, digits, '.', '_' or '-'")


#: code-server refuses `idle-timeout-seconds` of 60 or less (cli.js); a day is the longest a sign-in lasts.
MIN_IDLE_TIMEOUT = dt.timedelta(seconds=60)
MAX_IDLE_TIMEOUT = dt.timedelta(hours=24)

_idle_timeout = rules.guard(rules.duration, ("idle-timeout-short", lambda d: d <= MIN_IDLE_TIMEOUT),
                            ("idle-timeout-long", lambda d: d > MAX_IDLE_TIMEOUT))


def release(r: Reader) -> debian.DebianRelease | None:
    """`vmDebianRelease`, read once for the host steps and the VM provider's image."""
    version = r.integer("vmDebianRelease", lo=0, hi=999)
    if version is None:
        return None
    try:
        return debian.release(version)
    except ValueError as error:
        r.problem("vmDebianRelease", str(error))
        return None


def parse(r: Reader, topology: Topology | None, today: dt.date, release: debian.DebianRelease | None) -> HostSettings | None:
    """Read the host keys; the agents' secrets are required only when their agent is enabled.

    `release` is `vmDebianRelease` as `release()` read it (None if it is wrong).
    """
    start = len(r.problems)
    version = r.string("codeServerVersion", checks.version)
    sha256 = r.string("codeServerSha256", checks.sha256_hex)
    url = r.string("codeServerPackageUrl", _package_url)
    deny_out = r.boolean("ufwDenyOutgoing")
    volume = r.string("workspaceVolumePath", _absolute_dir)
    zabbix_on = bool(topology and topology.zabbix.enabled)
    backup_on = bool(topology and topology.backup.enabled)
    psk = r.secret("zabbixPsk", _zabbix_psk, required=zabbix_on)
    identity = r.string("zabbixPskIdentity", _identity)
    password = r.secret("backupPassword", checks.min_length(16), required=backup_on)
    schedule = r.string("backupSchedule", lambda v: calendar.schedule(v, today))
    port_proxy = r.boolean("codeServerPortProxy")
    no_downloads = r.boolean("codeServerDisableFileDownloads")
    no_uploads = r.boolean("codeServerDisableFileUploads")
    idle_timeout = r.string("codeServerIdleTimeout", _idle_timeout)
    rest_user = r.string("backupRestUser", _identity)
    rest_password = r.secret("backupRestPassword", checks.min_length(16), required=backup_on)
    gallery = r.string("ideExtensionGallery", ide.gallery)
    extensions = r.strings("ideExtensions", ide.vsix)
    if gallery is not None and topology is not None and topology.ide_proxy and gallery.base != ide.OPEN_VSX \
            and not any(d.covers(gallery.host) for d in topology.ide_egress):
        r.problem("ideExtensionGallery", f"expected a gallery the IDE can reach: add {gallery.host} to ideEgressDomains "
                  "(the proxy is the IDE's only way out)")
    repository = topology.backup.repository if topology is not None and backup_on else None
    if repository is not None and not re.match(r"^rest:https?://[^/@]+/", repository):
        r.problem("backupRepository", "expected rest:https://host:port/path without credentials: only restic's rest-server "
                  "enforces an append-only repository (--append-only); the account goes in backupRestUser/backupRestPassword")
    if topology is not None and not backup_on and r.is_set("backupRestPassword"):
        r.problem("backupRestPassword", "only applies when backupEnabled is true; unset it")
    if topology is not None and not zabbix_on and r.is_set("zabbixPsk"):
        r.problem("zabbixPsk", "only applies when zabbixEnabled is true; unset it")
    if topology is not None and not backup_on and r.is_set("backupPassword"):
        r.problem("backupPassword", "only applies when backupEnabled is true; unset it")
    if len(r.problems) > start or topology is None or None in (version, sha256, url, deny_out, volume, identity, schedule, port_proxy, rest_user, release, gallery, extensions,
                                                                                  no_downloads, no_uploads, idle_timeout):
        return None
    return HostSettings(
        code_server=CodeServerPackage(version, sha256, url.replace("{version}", version)),
        ufw_deny_outgoing=deny_out,
        workspace_volume=volume,
        zabbix_psk=psk if zabbix_on else None,
        zabbix_psk_identity=identity,
        backup_password=password if backup_on else None,
        backup_schedule=schedule,
        code_server_port_proxy=port_proxy,
        backup_rest_user=rest_user,
        backup_rest_password=rest_password if backup_on else None,
        debian=release,
        ide_gallery=gallery,
        ide_extensions=extensions,
        code_server_disable_downloads=no_downloads,
        code_server_disable_uploads=no_uploads,
        code_server_idle_timeout=idle_timeout,
    )
