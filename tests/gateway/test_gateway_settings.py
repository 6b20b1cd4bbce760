"""Gateway settings: the example stack loads, and each bad value is reported against its key."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import yaml

from components.settings import gateway
from components.settings.reader import Reader
from components.settings.source import MappingSource

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "hardened-code-server"
CADDY = "docker.io/library/caddy:2.11.7-alpine@sha256:" + "a" * 64
OAUTH2_PROXY = "quay.io/oauth2-proxy/oauth2-proxy:v7.15.3@sha256:" + "b" * 64
GOOD = {
    "caddyImage": CADDY,
    "oauth2ProxyImage": OAUTH2_PROXY,
    "cookieExpire": "12h",
    "cookieRefresh": "30m",
    "emailDomains": json.dumps(["example.com"]),
    "cookieSecretRotation": "1",
    "hopCertValidityDays": "90",
    "hopCertRenewDays": "30",
    "hopCaValidityDays": "1825",
}


def _raw(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def example_stack() -> dict[str, str]:
    """Pulumi.yaml defaults overlaid with Pulumi.dev.yaml, as the engine passes them (strings)."""
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    values = {k: _raw(v["default"]) for k, v in project.items() if "default" in v}
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    values.update({k.split(":", 1)[1]: _raw(v) for k, v in stack.items()})
    return values


def parse(values: dict[str, str]) -> tuple[gateway.GatewaySettings | None, dict[str, str]]:
    r = Reader(MappingSource(values))
    result = gateway.parse(r)
    return result, {p.key: p.message for p in r.problems}


def test_example_stack_gives_valid_gateway_settings() -> None:
    g, problems = parse(example_stack())
    assert problems == {} and g is not None
    assert g.caddy_image.startswith("docker.io/library/caddy:2.11.7-alpine@sha256:")
    assert g.oauth2_proxy_image.startswith("quay.io/oauth2-proxy/oauth2-proxy:v7.15.3@sha256:")
    assert (g.cookie_expire, g.cookie_refresh) == (dt.timedelta(hours=12), dt.timedelta(minutes=30))
    assert g.email_domains == ("example.com",)
    assert g.cookie_secret_rotation == "1"


def test_every_gateway_key_is_declared_in_pulumi_yaml() -> None:
    declared = set(yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"])
    assert set(GOOD) <= declared


def test_good_values_parse() -> None:
    result, problems = parse(GOOD)
    assert problems == {}
    assert result == gateway.GatewaySettings(CADDY, OAUTH2_PROXY, dt.timedelta(hours=12), dt.timedelta(minutes=30), ("example.com",), "1",
                                             gateway.HopLifetimes(90, 30, 1825))


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("caddyImage", "caddy:2.11.7-alpine", "pinned by digest"),
        ("caddyImage", "caddy:latest@sha256:" + "a" * 64, "Caddy 2.x"),
        ("caddyImage", "caddy:1.0.4@sha256:" + "a" * 64, "Caddy 2.x"),
        ("caddyImage", "caddy:2.7.6-alpine@sha256:" + "a" * 64, "2.8 or later"),
        ("oauth2ProxyImage", "quay.io/oauth2-proxy/oauth2-proxy:v7.15.3", "pinned by digest"),
        ("oauth2ProxyImage", "quay.io/oauth2-proxy/oauth2-proxy:v7.15.2@sha256:" + "b" * 64, "v7.15.3 or later"),
        ("oauth2ProxyImage", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0@sha256:" + "b" * 64, "v7.15.3 or later"),
        ("oauth2ProxyImage", "quay.io/oauth2-proxy/oauth2-proxy:latest@sha256:" + "b" * 64, "release tag"),
        ("cookieExpire", "12 hours", "duration"),
        ("cookieRefresh", "1h", "less than 1h"),
        ("cookieRefresh", "90m", "less than 1h"),
        ("emailDomains", json.dumps(["*", "example.com"]), "not both"),
        ("emailDomains", json.dumps(["not a domain"]), "e-mail domain"),
        ("emailDomains", json.dumps([]), "non-empty"),
        ("cookieSecretRotation", " ", "non-empty label"),
    ],
)
def test_bad_values_are_reported_against_their_key(key: str, value: str, expected: str) -> None:
    result, problems = parse({**GOOD, key: value})
    assert result is None
    messages = " ".join(m for k, m in problems.items() if k.split("[")[0] == key)
    assert expected in messages, problems


def test_refresh_must_be_shorter_than_expiry() -> None:
    result, problems = parse({**GOOD, "cookieExpire": "20m", "cookieRefresh": "30m"})
    assert result is None and "less than cookieExpire" in problems["cookieRefresh"]


def test_later_releases_and_untagged_digests_are_accepted() -> None:
    newer = {**GOOD, "oauth2ProxyImage": "quay.io/oauth2-proxy/oauth2-proxy:v7.16.0-alpine@sha256:" + "b" * 64,
             "caddyImage": "caddy@sha256:" + "a" * 64}
    result, problems = parse(newer)
    assert problems == {} and result is not None


def test_all_problems_are_reported_at_once() -> None:
    _, problems = parse({**GOOD, "caddyImage": "caddy:2", "oauth2ProxyImage": "oauth2-proxy:v7.6.0", "cookieRefresh": "2h"})
    assert {"caddyImage", "oauth2ProxyImage", "cookieRefresh"} <= set(problems)


@pytest.mark.parametrize(("changes", "key"), [
    ({"hopCertRenewDays": "90"}, "hopCertRenewDays"),  # renewed on every up
    ({"hopCaValidityDays": "60"}, "hopCaValidityDays"),  # a leaf outliving its CA
    ({"hopCertValidityDays": "400"}, "hopCertValidityDays"),
])
def test_hop_lifetimes_that_cannot_work_are_refused(changes: dict[str, str], key: str) -> None:
    result, problems = parse({**GOOD, **changes})
    assert result is None and key in problems, problems
