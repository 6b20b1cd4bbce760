"""`make mutants`: weaken one security control at a time and check that a test fails.

    python -m scripts.tools.mutants              # every mutant of tests/mutants.txt; exit 1 if one survives
    python -m scripts.tools.mutants -k hsts      # only the mutants whose control or file mentions "hsts"

Each line of `tests/mutants.txt` names a file, a text that must occur in it exactly once, its
replacement, the tests that should catch the change and the control it weakens. The mutant is
applied to a copy of the repository's tracked files (the clone is never touched), those tests run
there, and the mutant is *caught* when pytest reports a failing test (exit status 1). Any other
outcome is loud: a pattern that no longer matches, a collection error or a usage error is an
error, not a catch, so a list that rots cannot pass.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scripts import REPOSITORY

MUTANTS = REPOSITORY / "tests" / "mutants.txt"


@dataclass(frozen=True)
class Mutant:
    """One weakened control: in `path`, `pattern` (exactly once) becomes `replacement`."""

    line: int
    path: str
    pattern: str
    replacement: str
    tests: tuple[str, ...]
    control: str


def _unescape(text: str) -> str:
    """`\\n` a newline, `\\t` a tab, `\\\\` one backslash (for a `\\n` written in source code)."""
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "\\": "\\"}.get(m.group(1), m.group(0)), text)


def parse(text: str) -> list[Mutant]:
    """The mutants of a list: tab-separated `path, pattern, replacement, tests, control` per line
    (`\\n`, `\\t` and `\\\\` stand for a newline, a tab and a backslash; `#` starts a comment line)."""
    found = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.split("\t")
        if len(fields) != 5 or not all(f.strip() for f in (fields[0], fields[1], fields[3], fields[4])):
            raise ValueError(f"tests/mutants.txt:{number}: expected 5 tab-separated fields "
                             "(path, pattern, replacement, tests, control)")
        path, pattern, replacement, tests, control = fields
        found.append(Mutant(number, path.strip(), _unescape(pattern), _unescape(replacement), tuple(tests.split()), control.strip()))
    return found


def check(mutant: Mutant, root: Path) -> str:
    """Why `mutant` cannot be applied under `root` ("" when it can)."""
    target = root / mutant.path
    if not target.is_file():
        return f"{mutant.path} does not exist"
    count = target.read_text().count(mutant.pattern)
    if count != 1:
        return f"the pattern occurs {count} times in {mutant.path} (expected exactly once)"
    if mutant.pattern == mutant.replacement:
        return "the replacement equals the pattern"
    return ""


def _pytest(tests: tuple[str, ...], copy: Path) -> tuple[int, str]:
    """Run `tests` in `copy`, stopping at the first failure: (exit status, pytest's last line)."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-c", "tests/pytest.ini", "-x", "-q", "-p", "no:cacheprovider", *tests],
                          cwd=copy, capture_output=True, text=True, timeout=900)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return done.returncode, lines[-1] if lines else f"pytest exit {done.returncode}"


def run(mutant: Mutant, copy: Path) -> tuple[str, float, str]:
    """Apply `mutant` in `copy`, run its tests, restore the file: (verdict, seconds, pytest's last line)."""
    problem = check(mutant, copy)
    if problem:
        return "error", 0.0, problem
    target = copy / mutant.path
    original = target.read_text()
    target.write_text(original.replace(mutant.pattern, mutant.replacement))
    started = time.monotonic()
    try:
        status, last = _pytest(mutant.tests, copy)
    finally:
        target.write_text(original)
    return {0: "SURVIVED", 1: "caught"}.get(status, "error"), time.monotonic() - started, last


def _copy_of_repository(into: Path) -> Path:
    """The tracked files (as they are in the working tree) and the venv link, under `into`."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPOSITORY,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = REPOSITORY / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    (into / ".venv").symlink_to(REPOSITORY / ".venv")
    return into


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only mutants whose control or path contains this text")
    args = parser.parse_args()
    mutants = [m for m in parse(MUTANTS.read_text()) if args.k.lower() in (m.control + m.path).lower()]
    if not mutants:
        print(f"no mutant matches {args.k!r}", file=sys.stderr)
        return 2
    broken = [(m, problem) for m in mutants if (problem := check(m, REPOSITORY))]
    for m, problem in broken:
        print(f"tests/mutants.txt:{m.line}: {problem}", file=sys.stderr)
    if broken:
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="hcs-mutants-") as work:
        Path(work).chmod(0o755)  # tests run scripts as other local accounts (the netfilter lab's IDE user)
        copy = _copy_of_repository(Path(work))
        # Unmutated, every selection passes: a failure that is not the mutant's is not a catch.
        for tests in dict.fromkeys(tuple(sorted(m.tests)) for m in mutants):
            status, last = _pytest(tests, copy)
            print(f"baseline {'ok' if status == 0 else 'FAILS'}: {' '.join(tests)} ({last})", flush=True)
            if status != 0:
                print(f"the tests of {' '.join(tests)} fail without a mutant: fix that first", file=sys.stderr)
                return 2
        for number, m in enumerate(mutants, 1):
            verdict, seconds, last = run(m, copy)
            results.append((m, verdict))
            print(f"[{number:2}/{len(mutants)}] {verdict:8} {seconds:5.1f} s  {m.control}  ({m.path}; {last})", flush=True)
    survived = [m for m, v in results if v != "caught"]
    print(f"\n{len(results) - len(survived)} of {len(results)} mutants caught")
    for m in survived:
        print(f"NOT CAUGHT: {m.control} ({m.path}: {shlex.quote(m.pattern[:60])}); tests: {' '.join(m.tests)}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
