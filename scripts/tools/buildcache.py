"""One way to build something expensive once per machine and trust it afterwards.

Every cached build (code-server from npm, Go binaries from their modules, the demo's images) lives
in `${HCS_CACHE_DIR:-/var/cache/hardened-code-server}/`, outside the clone, so CI runs and fresh
clones on the same machine share it. A build happens in a temporary sibling directory that is
renamed into place only when complete (a rename is atomic on one file system), under an exclusive
lock, so an interrupted or concurrent run never leaves, or trusts, a half-built tree. A complete
entry carries a JSON marker describing what was built.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

DEFAULT_CACHE_DIR = "/var/cache/hardened-code-server"
COMPLETE_MARKER = "BUILD-INFO.json"


class CacheError(RuntimeError):
    """A cached build cannot be made or is unusable; the message says why."""


def cache_dir() -> Path:
    """The machine's cache directory (HCS_CACHE_DIR overrides the default)."""
    return Path(os.environ.get("HCS_CACHE_DIR") or DEFAULT_CACHE_DIR)


def progress(component: str, message: str) -> None:
    """One progress line on stderr, flushed, so long builds show where they are."""
    print(f"[{component} cache] {message}", file=sys.stderr, flush=True)


def build_info(entry: Path) -> dict[str, str] | None:
    """The marker of a complete entry, or None if the entry is missing or incomplete."""
    marker = entry / COMPLETE_MARKER
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def cached_build(name: str, build: Callable[[Path], dict[str, str]], component: str) -> Path:
    """Return `cache_dir()/name`, calling `build(tmpdir)` (which fills tmpdir, returns its marker) if absent."""
    root = cache_dir()
    final = root / name
    if build_info(final) is not None:
        return final
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w", encoding="utf-8") as lock:
        progress(component, f"waiting for the cache lock {root / '.lock'}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        if build_info(final) is not None:  # another run finished it while we waited
            return final
        if final.exists():
            raise CacheError(f"{final} exists without {COMPLETE_MARKER} (not built by this project); delete it")
        progress(component, f"building {name} into {final}")
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
        try:
            info = build(tmp)
            (tmp / COMPLETE_MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
            tmp.chmod(0o755)  # mkdtemp makes 0700; unprivileged users (the IDE user) run what is cached
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
