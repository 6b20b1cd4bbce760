"""Fast checks of the real-root library's own logic: apt sources, cache keys, step order, prerequisites."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.lab.vm import rootfs
from scripts.lab.vm.machine import RootConfig
from scripts.lab.vm.netns import NetworkPlan
from scripts.lab.vm.prereq import RealRootError, require
from scripts.lab.vm.runner import Step, order_steps


def test_mirror_comes_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example.org/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example.org/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://off.example.org/debian\nSuites: bookworm\nEnabled: no\n"
    )
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example.org/debian bookworm main\n"
        "deb [signed-by=/k.gpg] http://security.example.org/debian-security bookworm-security main\n"
    )
    sources = rootfs.host_apt_sources(tmp_path)
    assert sources == [
        rootfs.AptSource("http://mirror.example.org/debian", ("bookworm", "bookworm-updates")),
        rootfs.AptSource("http://security.example.org/debian-security", ("bookworm-security",)),
    ]


def test_this_machine_has_a_debian_mirror() -> None:
    assert rootfs.debian_mirror().startswith("http")


def test_an_image_of_another_release_uses_this_machines_archives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://security.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: https://vendor.example.org/apt\nSuites: nodistro\nComponents: main\n"
    )
    real = rootfs.host_apt_sources
    monkeypatch.setattr(rootfs, "host_apt_sources", lambda: real(tmp_path))
    sources = rootfs._root_sources("trixie")
    assert "URIs: http://mirror.example.org/debian\nSuites: trixie trixie-updates\n" in sources
    assert "URIs: http://security.example.org/debian-security\nSuites: trixie-security\n" in sources
    assert "vendor.example.org" not in sources
    assert rootfs.debian_mirror() == "http://mirror.example.org/debian"


def test_the_mirror_can_be_overridden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCS_DEBIAN_MIRROR", "http://mirror.example.org/debian/")
    assert rootfs.debian_mirror() == "http://mirror.example.org/debian"


def test_image_name_follows_suite_and_packages_not_their_order(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("HCS_CACHE_DIR", str(tmp_path))
    base = rootfs.image_path()
    assert base.parent == tmp_path and "-trixie-" in base.name
    assert rootfs.image_path(names=tuple(reversed(rootfs.packages()))) == base
    assert rootfs.image_path(names=(*rootfs.packages(), "nftables")) != base
    assert "-bookworm-" in rootfs.image_path(12).name


def test_steps_are_ordered_by_dependencies_keeping_the_given_order_for_ties() -> None:
    steps = [Step("c", "x", depends_on=("a",)), Step("b", "x"), Step("a", "x"), Step("d", "x", depends_on=("c", "b"))]
    assert [s.name for s in order_steps(steps)] == ["b", "a", "c", "d"]


def test_bad_step_graphs_are_reported() -> None:
    with pytest.raises(ValueError, match="cycle"):
        order_steps([Step("a", "x", depends_on=("b",)), Step("b", "x", depends_on=("a",))])
    with pytest.raises(ValueError, match="not steps: urn:random"):
        order_steps([Step("a", "x", depends_on=("urn:random",))])
    assert [s.name for s in order_steps([Step("a", "x", depends_on=("urn:random",))],
                                        ignore_unknown_dependencies=True)] == ["a"]
    with pytest.raises(ValueError, match="two steps are named 'a'"):
        order_steps([Step("a", "x"), Step("a", "y")])


def test_a_step_never_shows_its_stdin() -> None:
    assert "hunter2" not in repr(Step("secret", "cat", stdin="hunter2"))


def test_a_missing_tool_fails_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RealRootError, match="apt-get install .*debootstrap.*iproute2"):
        require()


def test_network_plan_rejects_a_bad_address() -> None:
    with pytest.raises(ValueError, match="192.0.2.300"):
        NetworkPlan(vm_address="192.0.2.300/24")


def test_the_default_client_must_be_a_peer_address() -> None:
    assert RootConfig().client_address == "198.51.100.7"
    with pytest.raises(ValueError, match="client_address 203.0.113.9 is not one of the peer addresses"):
        RootConfig(client_address="203.0.113.9")
