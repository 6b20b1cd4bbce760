"""A cached Debian root file system per supported release, built once per machine and copied fresh for every use.

`ensure_image(release)` builds a `debootstrap --variant=minbase` root of that release (Debian 13 by
default, as the product's `vmDebianRelease`) with the packages the host setup scripts need, brings
it up to date from the machine's own Debian mirror (the archives in /etc/apt/sources.list.d/ or
/etc/apt/sources.list, whichever release the machine itself runs; `HCS_DEBIAN_MIRROR` overrides
the main archive), and stores
it as a zstd tarball in `${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/`, outside the clone,
so CI runs on the same machine share it.

Why these choices:
- The image name carries a hash of suite + package list + recipe version: changing either makes
  a new image instead of silently reusing a wrong one.
- The build runs in a temporary directory inside the cache dir and is renamed into place only when
  complete (rename is atomic on one file system), under an exclusive lock: a killed or concurrent
  build never leaves, or reads, a half cache.
- The image has apt lists matching what is installed (installed after `apt-get upgrade`), so a host
  script's `apt-get install -y <already installed>` is a no-op rather than a download.
- `/usr/sbin/policy-rc.d` exits 101 so package maintainer scripts never start services.
- Host keys are removed from the image; each fresh copy generates its own (see `machine.py`).
- `extract()` unpacks a fresh copy per use: tests can never contaminate each other or the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from components.settings import debian
from scripts.lab.vm.prereq import RealRootError, require, run_checked

#: The release a test root runs unless a test asks for another: the product's default.
DEFAULT_RELEASE = debian.DEFAULT

# What the host setup scripts expect on a stock Debian VM, plus what the tests drive it with; each
# release adds its own (`DebianRelease.packages`: Debian 13's Docker CLI and systemd's libbpf).
COMMON_PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "curl",
    "docker.io",
    "fail2ban",
    "iproute2",
    "iptables",
    "login",
    "openssh-server",
    "passwd",
    "procps",
    "python3-systemd",
    "restic",
    "sudo",
    "systemd",
    "ufw",
    "ulogd2",
    "unattended-upgrades",
)


#: The cloud image's first-boot agent: `BootedVM(…).start(user_data=…)` boots from it, every other
#: booted VM has it switched off (scripts/lab/vm/nocloud.py). Installed by apt after debootstrap, not by
#: its --include: debootstrap configures its includes in one pass with the base system, and cloud-init's
#: Python dependencies failed there on Debian 13 ("Failure while configuring base packages … possibly
#: the package python3-cryptography is at fault"); apt orders their configuration itself.
APT_INSTALLED: tuple[str, ...] = ("cloud-init",)


def packages(release: int = DEFAULT_RELEASE) -> tuple[str, ...]:
    """The image's package list for `release`."""
    return COMMON_PACKAGES + debian.release(release).packages + APT_INSTALLED


def suite(release: int = DEFAULT_RELEASE) -> str:
    """The Debian suite (codename) of `release`."""
    return debian.release(release).codename


# Bump when the build steps below change in a way that changes the image.
RECIPE_VERSION = 3

DEFAULT_CACHE_DIR = "/var/cache/hardened-code-server"
_TAR_FLAGS = ("--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls")
_POLICY_RC_D = "#!/bin/sh\n# Test root: package scripts must not start services.\nexit 101\n"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class AptSource:
    """One Debian archive the host uses: base URI and the suites it serves."""

    uri: str
    suites: tuple[str, ...]


def cache_dir() -> Path:
    """The machine-wide cache directory (`HCS_CACHE_DIR`, default /var/cache/hardened-code-server)."""
    return Path(os.environ.get("HCS_CACHE_DIR") or DEFAULT_CACHE_DIR)


def image_key(codename: str, names: Sequence[str]) -> str:
    """A short hash of what determines the image's content."""
    text = f"recipe={RECIPE_VERSION}\nsuite={codename}\npackages={' '.join(sorted(set(names)))}\n"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def image_path(release: int = DEFAULT_RELEASE, names: Sequence[str] | None = None) -> Path:
    """Where the image of `release` (with its package list, or `names`) lives (it may not exist yet)."""
    codename = suite(release)
    return cache_dir() / f"debian-{codename}-minbase-{image_key(codename, names or packages(release))}.tar.zst"


def host_apt_sources(sources_dir: Path = Path("/etc/apt")) -> list[AptSource]:
    """The Debian archives this machine uses, from deb822 `.sources` files and one-line `.list` files."""
    found: list[AptSource] = []
    files = sorted((sources_dir / "sources.list.d").glob("*.sources"))
    for path in files:
        for paragraph in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in paragraph.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                found.append(AptSource(uri.rstrip("/"), tuple(fields.get("suites", "").split())))
    lists = [sources_dir / "sources.list", *sorted((sources_dir / "sources.list.d").glob("*.list"))]
    for path in lists:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                found.append(AptSource(words[1].rstrip("/"), (words[2],)))
    return found


def _archives() -> dict[str, list[str]]:
    """This machine's Debian archives: URI -> the suite suffixes it serves ("", "-updates", "-security"),
    for whichever supported release the machine runs, so an image of another release uses them too."""
    found: dict[str, list[str]] = {}
    for source in host_apt_sources():
        for s in source.suites:
            codename, dash, rest = s.partition("-")
            if codename in {r.codename for r in debian.RELEASES.values()} and rest in ("", "updates", "security"):
                suffix = dash + rest
                if suffix not in found.setdefault(source.uri, []):
                    found[source.uri].append(suffix)
    return found


def debian_mirror() -> str:
    """The main Debian archive of this machine (`HCS_DEBIAN_MIRROR` overrides it)."""
    override = os.environ.get("HCS_DEBIAN_MIRROR")
    if override:
        return override.rstrip("/")
    for uri, suffixes in _archives().items():
        if "" in suffixes:
            return uri
    raise RealRootError(
        "no Debian archive (a bookworm or trixie suite) in /etc/apt/sources.list(.d); "
        "set HCS_DEBIAN_MIRROR to a Debian mirror URL"
    )


def _root_sources(codename: str) -> str:
    """deb822 sources for the image: this machine's archives for the codename, -updates and -security."""
    by_uri = {uri: [codename + suffix for suffix in suffixes] for uri, suffixes in _archives().items()}
    if not by_uri:
        by_uri[debian_mirror()] = [codename]
    return "\n".join(
        f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        for uri, suites in by_uri.items() if suites
    )


def _stream(argv: Sequence[str], what: str, progress: Progress, log: Path) -> None:
    """Run a long build command, passing its lines to `progress` and keeping them in `log`."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(argv)}\n")
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            progress(f"{what}: {line.rstrip()}")
        code = proc.wait()
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise RealRootError(f"{what} failed (exit {code}); last lines of {log}:\n{tail}")


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the cache's build lock, so only one process builds and nobody reads half a build."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(target: Path, codename: str, names: Sequence[str], progress: Progress) -> None:
    """Build the image into a temporary directory next to `target`, then rename it into place."""
    work = target.parent / f".build-{target.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    root = work / "root"
    root.mkdir(parents=True)
    log = target.parent / f"{target.name}.build.log"
    log.write_text("")
    mirror = debian_mirror()
    try:
        progress(f"debootstrap {codename} from {mirror} into {root} (log: {log})")
        included = sorted(set(names) - set(APT_INSTALLED))
        _stream(["debootstrap", "--variant=minbase", f"--include={','.join(included)}",
                 codename, str(root), mirror], "debootstrap", progress, log)
        (root / "usr/sbin/policy-rc.d").write_text(_POLICY_RC_D)
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        (root / "etc/apt/sources.list.d/debian.sources").write_text(_root_sources(codename))
        # Mounts are not needed: apt and dpkg work in a bare chroot for these steps.
        # The listed packages are installed by request, as on a VM someone set up: removing the
        # ones the product installs (`BootedVM(purge=…)`, with --auto-remove) must not take them along.
        for argv in (["apt-get", "update"],
                     ["apt-get", "-y", "-o", "Dpkg::Options::=--force-confold", "upgrade"],
                     ["apt-get", "-y", "--no-install-recommends", "install", *sorted(set(names) & set(APT_INSTALLED))],
                     ["apt-mark", "manual", *sorted(set(names))],
                     ["apt-get", "clean"]):
            _stream(["chroot", str(root), *argv], f"chroot {argv[0]} {argv[-1]}", progress, log)
        for key in (root / "etc/ssh").glob("ssh_host_*"):
            key.unlink()
        (root / "etc/machine-id").write_text("")
        progress(f"packing {target.name}")
        tmp_tar = work / target.name
        run_checked(["tar", *_TAR_FLAGS, "-I", "zstd -T0 -3", "-C", str(root), "-cf", str(tmp_tar), "."],
                    "packing the image", timeout=600)
        with tmp_tar.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp_tar.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_image(release: int = DEFAULT_RELEASE, *, refresh: bool = False,
                 progress: Progress = lambda _line: None) -> Path:
    """Return the cached image of `release`, building it first when missing (or when `refresh` is set).

    Safe to call from several processes at once: they wait on one lock and one build.
    """
    require()
    target = image_path(release)
    if target.is_file() and not refresh:
        return target
    with _locked(target.parent):
        for stale in target.parent.glob(".build-*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        if refresh or not target.is_file():
            started = time.monotonic()
            _build(target, suite(release), packages(release), progress)
            progress(f"built {target} in {time.monotonic() - started:.0f} s")
    return target


def extract(image: Path, destination: Path) -> Path:
    """Unpack a fresh copy of `image` into the (new or empty) directory `destination`."""
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise RealRootError(f"{destination} is not empty; a fresh root needs an empty directory")
    run_checked(["tar", *_TAR_FLAGS, "-I", "zstd -T0", "-C", str(destination), "-xf", str(image)],
                f"unpacking {image.name}", timeout=600)
    return destination


def stale_images() -> list[Path]:
    """Images in the cache that the current recipe no longer uses (for any supported release)."""
    current = {image_path(release) for release in debian.RELEASES}
    return [p for p in cache_dir().glob("debian-*.tar.zst") if p not in current]


def os_release(root: Path) -> int:
    """The Debian release (`VERSION_ID`) of the root file system at `root`."""
    text = (root / "etc/os-release").read_text()
    for line in text.splitlines():
        if line.startswith("VERSION_ID="):
            return int(line.partition("=")[2].strip().strip('"'))
    raise RealRootError(f"{root}/etc/os-release has no VERSION_ID")
