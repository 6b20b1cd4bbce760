"""The project's declarations agree with the code: Pulumi.yaml keys, settings reads, the README and docs/."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from components.settings import MappingSource, load
from scripts import REPOSITORY
from scripts.lab.example import KEY, TODAY
from scripts.tools import readme
from scripts.tools.offline import StackConfig


class _Recording(MappingSource):
    """A source that remembers every key the settings layer asks about."""

    asked: set[str]

    def raw(self, key: str) -> str | None:
        self.asked.add(key)
        return super().raw(key)


def test_settings_read_exactly_the_keys_pulumi_yaml_declares(dev_config: StackConfig) -> None:
    declared = set(yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())["config"])
    source = _Recording(dev_config.with_values(vmSshPrivateKey=KEY).values, dev_config.secret_keys)
    object.__setattr__(source, "asked", set())
    load(source, today=TODAY)
    assert source.asked == declared


def test_every_declared_key_has_a_type_and_a_description() -> None:
    """Typed, except an optional secret: the CLI refuses a typed secret left at its (plain) default."""
    declared = yaml.safe_load((REPOSITORY / "Pulumi.yaml").read_text())["config"]
    for key, decl in declared.items():
        if decl.get("secret") and "default" in decl:
            assert "type" not in decl and decl["default"] == "", key
        else:
            assert decl.get("type") in ("string", "integer", "boolean", "array"), key
        assert len(decl.get("description", "")) > 20, key


README = REPOSITORY / "README.md"
DOCS = REPOSITORY / "docs"
README_MAX_LINES = 150  # what it is, the layers, the demo, the two commands, deploying, links (issue 33)


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _prose(text: str) -> str:
    """`text` without fenced code blocks and inline code: what a reader sees as links and headings."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _links(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]+)\)", _prose(text))


def _anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces → '-'."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, n = slug, 0
        while anchor in found:
            n += 1
            anchor = f"{slug}-{n}"
        found.add(anchor)
    return found


def test_every_generated_section_is_current() -> None:
    """Every page holding a generated section is one `make readme` regenerates, and none is stale."""
    marked: dict[str, set[str]] = {}
    for page in _pages():
        sections = set(re.findall(r"<!-- (\S+):begin " + re.escape(readme.GENERATED), page.read_text()))
        if sections:
            marked[str(page.relative_to(REPOSITORY))] = sections
    assert marked == {page: set(sections) for page, sections in readme.PAGES.items()}
    for page in readme.PAGES:
        current, updated = readme.render_page(page)
        assert updated == current, f"{page} is stale: run make readme"


def test_readme_is_short_and_links_every_docs_page() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= README_MAX_LINES, "the README answers the first questions and links the rest (docs/)"
    linked = {(REPOSITORY / link.partition("#")[0]).resolve() for link in _links(text) if "://" not in link}
    assert [page.name for page in DOCS.glob("*.md") if page.resolve() not in linked] == []


def test_every_relative_link_of_the_readme_and_docs_resolves() -> None:
    broken = []
    for page in _pages():
        for link in _links(page.read_text()):
            if "://" in link or link.startswith("mailto:"):
                continue
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append((page.name, link, "no such file"))
            elif anchor and anchor not in _anchors(target.read_text()):
                broken.append((page.name, link, "no such heading"))
    assert broken == []


def test_the_mutant_list_applies_to_the_code_as_it_is() -> None:
    """`make mutants` would error on a rotten line; this says so in the fast suite: every mutant's text
    occurs exactly once where it says, its tests exist, and the list covers the posture's layers."""
    from scripts.tools import mutants

    found = mutants.parse(mutants.MUTANTS.read_text())
    assert len(found) >= 30
    assert [(m.line, problem) for m in found if (problem := mutants.check(m, REPOSITORY))] == []
    assert [t for m in found for t in m.tests if not (REPOSITORY / t.split("::")[0]).exists()] == []
    layers = {m.control.split(":")[0] for m in found}
    assert {"Network edge", "Transport", "Identity", "Host", "Detection", "Guardrails"} <= layers
    said = re.search(r"`tests/mutants.txt` \((\d+) mutants", (DOCS / "testing.md").read_text())
    assert said and int(said.group(1)) == len(found), "docs/testing.md's count of mutants is stale"


# --- one Python minor (pulumi#2900) ------------------------------------------------------------

_STAND_IN = """#!/bin/sh
# A stand-in interpreter: reports Python {minor} to the Makefile's check, refuses anything else.
case "$*" in *version_info*) echo {minor} ;; *) echo "stand-in asked to run: $*" >&2; exit 3 ;; esac
"""


def _pinned_minor() -> str:
    return (REPOSITORY / ".python-version").read_text().strip()


def _make_runtime(tmp_path: Path, python: str) -> subprocess.CompletedProcess[str]:
    """`make .venv/.runtime` in a copy of the Makefile's inputs (never the clone's own .venv)."""
    for name in ("Makefile", ".python-version", "requirements.txt"):
        shutil.copy(REPOSITORY / name, tmp_path / name)
    return subprocess.run(["make", "--no-print-directory", "-C", str(tmp_path), f"PYTHON={python}", ".venv/.runtime"],
                          capture_output=True, text=True, timeout=60)


def _stand_in(path: Path, minor: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_STAND_IN.format(minor=minor))
    path.chmod(0o755)
    return path


def test_python_version_is_one_minor_the_venv_and_the_workflows_use() -> None:
    """.python-version names a minor (no patch: any 3.11.x reads a 3.11 pickle); the venv runs it; every
    setup-python step reads that file; the test job's Debian image ships that minor as python3."""
    minor = _pinned_minor()
    assert re.fullmatch(r"3\.\d+", minor), minor
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == minor, "the venv runs another minor than .python-version"
    makefile = (REPOSITORY / "Makefile").read_text()
    assert "PYTHON_MINOR := $(strip $(shell cat .python-version))" in makefile and "pulumi#2900" in makefile
    debian_python3 = {"bookworm": "3.11", "trixie": "3.13"}  # Debian's python3 per release
    setups = 0
    for workflow in sorted((REPOSITORY / ".github" / "workflows").glob("*.yml")):
        for name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            steps = job.get("steps", [])
            for step in steps:
                if str(step.get("uses", "")).startswith("actions/setup-python@"):
                    setups += 1
                    assert step.get("with") == {"python-version-file": ".python-version"}, (workflow.name, name)
            if not any(str(s.get("uses", "")).startswith("actions/setup-python@") for s in steps):
                image = str((job.get("container") or {}).get("image", ""))
                release = image.removeprefix("debian:")
                assert debian_python3.get(release) == minor, (workflow.name, name, image)
    assert setups >= 3


def test_make_refuses_another_python_minor_naming_the_reason_and_the_fix(tmp_path: Path) -> None:
    minor = _pinned_minor()
    other = _stand_in(tmp_path / "bin" / "python-other", "3.99")
    result = _make_runtime(tmp_path, str(other))
    assert result.returncode != 0
    assert f"Python {minor} required (.python-version), but {other} is 3.99" in result.stderr
    assert "pulumi#2900" in result.stderr and f"pyenv install {minor}" in result.stderr
    assert "stand-in asked to run" not in result.stderr  # refused before any venv is made
    assert not (tmp_path / ".venv").exists()


def test_make_takes_the_pinned_minor_and_refuses_a_venv_of_another(tmp_path: Path) -> None:
    minor = _pinned_minor()
    pinned = _stand_in(tmp_path / "bin" / "python-pinned", minor)
    result = _make_runtime(tmp_path, str(pinned))
    assert "required" not in result.stderr
    assert "stand-in asked to run: -m venv .venv" in result.stderr  # the check passed; the venv comes next
    _stand_in(tmp_path / ".venv" / "bin" / "python", "3.99")  # a venv left by another minor
    result = _make_runtime(tmp_path, str(pinned))
    assert result.returncode != 0 and "but .venv/bin/python is 3.99" in result.stderr and "rm -rf .venv" in result.stderr


#: The layers of the program (a package or a module under components/) and what lies below them all.
LAYERS = ("host", "gateway", "cloudflare", "fortigate", "identity", "vm")
BELOW = ("settings", "layout", "files", "installer")
#: Composition, not reach-through: the Cloudflare edge registers its own Entra app (Access's identity
#: provider) with the identity layer's component, as `EntraAccess` does for oauth2-proxy.
USES = {("cloudflare", "identity")}


def _imported_components(path: Path) -> set[str]:
    """The `components.<name>` modules a file imports (`import` and `from … import`, at any depth)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = name.split(".")
            if parts[0] == "components" and len(parts) > 1:
                found.add(parts[1])
            elif name == "components" and isinstance(node, ast.ImportFrom):
                found.update(a.name for a in node.names)
    return found


def test_no_layer_imports_another_layer() -> None:
    """Each layer imports only itself and what lies below the layers (settings, the VM's layout, the
    file records and the installer); the one exception is the wiring, `__main__.py`."""
    crossings = []
    for layer in LAYERS:
        package = REPOSITORY / "components" / layer
        files = sorted(package.rglob("*.py")) if package.is_dir() else [package.with_suffix(".py")]
        for path in files:
            for imported in _imported_components(path) - {layer, *BELOW} - {used for user, used in USES if user == layer}:
                crossings.append(f"{path.relative_to(REPOSITORY)} imports components.{imported}")
    for below in BELOW:
        package = REPOSITORY / "components" / below
        for path in sorted(package.rglob("*.py")) if package.is_dir() else [package.with_suffix(".py")]:
            for imported in _imported_components(path) & set(LAYERS):
                crossings.append(f"{path.relative_to(REPOSITORY)} (below the layers) imports components.{imported}")
    assert crossings == []


def test_nothing_in_the_repository_edits_the_import_path() -> None:
    """Modules are imported as packages from the repository root (`python -m …`), never by inserting a
    directory into `sys.path` or pytest's `pythonpath`."""
    sources = [REPOSITORY / "__main__.py", *(p for d in ("components", "scripts", "tests") for p in (REPOSITORY / d).rglob("*.py"))]
    edits = [f"{p.relative_to(REPOSITORY)}: {line.strip()}" for p in sources if ".venv" not in p.parts and "venv" not in p.parts
             for line in p.read_text().splitlines() if re.search(r"\bsys\.path\.(insert|append|extend)\b|\bsys\.path\s*=", line)]
    ini = (REPOSITORY / "tests" / "pytest.ini").read_text()
    assert edits == [] and not re.search(r"(?m)^pythonpath\s*=", ini)


def _imports(path: Path) -> set[str]:
    """Every module name a file imports (`import a.b`, `from a.b import c` as a.b and a.b.c)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
    return found


def test_tests_stay_tests_and_what_ships_imports_no_developer_tool() -> None:
    """Nothing outside tests/ imports from it (the lab is `scripts/lab`); the program imports nothing of
    scripts/; what ships (the policy pack, the host steps) reaches neither the tools nor the lab."""
    def reaching(paths: list[Path], *roots: str) -> list[str]:
        return [f"{p.relative_to(REPOSITORY)} imports {name}" for p in paths for name in sorted(_imports(p))
                if any(name == root or name.startswith(root + ".") for root in roots)]

    program = [REPOSITORY / "__main__.py", *sorted((REPOSITORY / "components").rglob("*.py"))]
    scripts = sorted((REPOSITORY / "scripts").rglob("*.py"))
    shipped = sorted((REPOSITORY / "scripts" / "policy").rglob("*.py"))
    host_steps = sorted((REPOSITORY / "scripts" / "host").iterdir())
    assert reaching(program + scripts, "tests") == []
    assert reaching(program, "scripts") == []
    assert reaching(shipped, "scripts.tools", "scripts.lab", "tests") == []
    assert [p.name for p in host_steps if p.suffix != ".sh" or re.search(r"scripts[./](tools|lab)|\btests/", p.read_text())] == []
