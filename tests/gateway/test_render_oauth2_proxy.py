"""The oauth2-proxy config: only options of the pinned release, and no door left open."""

from __future__ import annotations

import base64
import datetime as dt
import tomllib
from pathlib import Path

import pytest

from components import layout
from components.gateway import render_oauth2_proxy as o

TENANT = "11111111-2222-3333-4444-555555555555"
GROUP = "66666666-7777-8888-9999-aaaaaaaaaaaa"
PARAMS = o.OAuth2ProxyParams(
    hostname="code.example.com",
    issuer_url=f"https://login.microsoftonline.com/{TENANT}/v2.0",
    client_id="0f0f0f0f-1111-2222-3333-444444444444",
    allowed_group=GROUP,
    email_domains=("example.com",),
    cookie_expire=dt.timedelta(hours=12),
    cookie_refresh=dt.timedelta(minutes=30),
)


#: The oauth2-proxy release the option list comes from: the one the demo and the live path run.
RELEASE = "v7.15.6"


def release_options() -> set[str]:
    """The config-file keys of oauth2-proxy RELEASE (see the data file's header for the source)."""
    path = Path(__file__).parent / "data" / f"oauth2_proxy_{RELEASE}_options.txt"
    lines = [line.strip() for line in path.read_text().splitlines()]
    return {line for line in lines if line and not line.startswith("#")}


def rendered() -> dict:
    return tomllib.loads(o.render(PARAMS))


def test_option_list_is_the_release_list() -> None:
    keys = release_options()
    # spot checks that the list is the v7.15.x one (file secrets, trusted proxies, Entra, PKCE)
    assert {"client_secret_file", "cookie_secret_file", "trusted_proxy_ips", "entra_id_allowed_tenants", "code_challenge_method"} <= keys
    assert f"oauth2-proxy/v7@{RELEASE}" in (Path(__file__).parent / "data" / f"oauth2_proxy_{RELEASE}_options.txt").read_text()


def test_every_key_is_an_option_of_the_pinned_release() -> None:
    unknown = set(rendered()) - release_options()
    assert not unknown, f"not options of oauth2-proxy {RELEASE} (fatal at start): {sorted(unknown)}"


def test_rendered_config_is_the_intended_policy() -> None:
    cfg = rendered()
    assert cfg["provider"] == "entra-id"
    assert cfg["oidc_issuer_url"] == PARAMS.issuer_url
    assert cfg["client_id"] == PARAMS.client_id
    assert cfg["allowed_groups"] == [GROUP]
    assert cfg["email_domains"] == ["example.com"]
    assert cfg["upstreams"] == ["http://127.0.0.1:8080"]
    # oauth2-proxy v7.15.x: `unix://<path>` listens on a Unix socket (pkg/proxyhttp/server.go)
    assert cfg["http_address"] == "unix:///run/hcs-oauth2-proxy/oauth2-proxy.sock"
    assert cfg["reverse_proxy"] is True and cfg["trusted_proxy_ips"] == ["127.0.0.1"]
    assert cfg["cookie_name"].startswith("__Host-")
    assert (cfg["cookie_secure"], cfg["cookie_httponly"], cfg["cookie_samesite"]) == (True, True, "lax")
    assert "offline_access" in cfg["scope"].split()
    assert cfg["code_challenge_method"] == "S256"
    assert cfg["insecure_oidc_skip_nonce"] is False  # oauth2-proxy's default is true
    assert cfg["cookie_csrf_per_request"] is True and cfg["cookie_csrf_per_request_limit"] == 5
    assert cfg["skip_provider_button"] is True
    assert cfg["redirect_url"] == "https://code.example.com/oauth2/callback"
    assert cfg["whitelist_domains"] == ["login.microsoftonline.com"]  # rd to Entra's sign-out only
    assert cfg["proxy_websockets"] is True and cfg["pass_host_header"] is True
    assert cfg["client_secret_file"] == "/etc/oauth2-proxy/client-secret"
    assert cfg["cookie_secret_file"] == "/etc/oauth2-proxy/cookie-secret"


def test_the_logs_say_who_and_never_a_credential() -> None:
    """Attribution: both logs carry the user, a request ID the gateway sets, and a tag to find them by;
    the callback (its URI holds the authorization code) stays out of the request log."""
    cfg = rendered()
    assert cfg["set_xauthrequest"] is True and cfg["pass_access_token"] is False
    assert cfg["auth_logging"] is True and cfg["request_logging"] is True
    for key in ("auth_logging_format", "request_logging_format"):
        assert cfg[key].startswith("hcs-oauth2-proxy ") and "user={{.Username}}" in cfg[key] and "request_id={{.RequestID}}" in cfg[key]
    assert "{{.Message}}" in cfg["auth_logging_format"]  # the session: email and the `sub` claim
    assert cfg["request_id_header"] == "X-Request-Id"
    assert cfg["exclude_logging_paths"] == ["/oauth2/callback"]


def test_no_secret_is_in_the_config() -> None:
    cfg = rendered()
    assert "client_secret" not in cfg and "cookie_secret" not in cfg


def test_refresh_is_shorter_than_expiry_and_than_entra_tokens() -> None:
    cfg = rendered()
    refresh, expire = o.parse_go_duration(cfg["cookie_refresh"]), o.parse_go_duration(cfg["cookie_expire"])
    assert refresh < expire and refresh < dt.timedelta(hours=1)
    assert (cfg["cookie_expire"], cfg["cookie_refresh"]) == ("12h", "30m")


@pytest.mark.parametrize(
    ("delta", "text"),
    [(dt.timedelta(hours=12), "12h"), (dt.timedelta(minutes=90), "1h30m"), (dt.timedelta(seconds=45), "45s")],
)
def test_go_durations_round_trip(delta: dt.timedelta, text: str) -> None:
    assert o.go_duration(delta) == text and o.parse_go_duration(text) == delta


def test_cookie_secret_decodes_to_32_bytes_as_oauth2_proxy_reads_it() -> None:
    # 32 bytes whose standard base64 has '+' and '/': the form RandomBytes.base64 produces
    raw = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFE, 0xFF])
    standard = base64.b64encode(raw).decode()
    assert "+" in standard and "/" in standard
    secret = o.cookie_secret(standard)
    assert "\n" not in secret and "=" not in secret and len(secret) == 43
    assert o.secret_bytes(secret) == raw
    # the standard form would be taken as a 44-byte raw key, which oauth2-proxy refuses
    assert len(o.secret_bytes(standard)) == 44


def test_cookie_secret_refuses_wrong_lengths() -> None:
    with pytest.raises(ValueError, match="32 random bytes"):
        o.cookie_secret(base64.b64encode(b"x" * 16).decode())
    with pytest.raises(ValueError, match="standard base64"):
        o.cookie_secret("not base64!")


OPEN_DOORS = [
    ({"http_address": "0.0.0.0:4180"}, "http_address"),
    ({"http_address": ":4180"}, "http_address"),
    ({"http_address": "[::]:4180"}, "http_address"),
    # loopback TCP: any local uid can connect, or bind it while oauth2-proxy is down
    ({"http_address": "127.0.0.1:4180"}, "http_address"),
    ({"http_address": "unix:///tmp/oauth2-proxy.sock"}, "http_address"),
    ({"email_domains": ["*"], "allowed_groups": []}, "email_domains = *"),
    ({"insecure_oidc_skip_issuer_verification": True}, "insecure_oidc_skip_issuer_verification"),
    ({"ssl_insecure_skip_verify": True}, "ssl_insecure_skip_verify"),
    ({"insecure_oidc_skip_nonce": True}, "insecure_oidc_skip_nonce"),
    ({"ssl_upstream_insecure_skip_verify": True}, "ssl_upstream_insecure_skip_verify"),
    ({"cookie_samesite": "strict"}, "cookie_samesite"),
    ({"cookie_samesite": "none"}, "cookie_samesite"),
    ({"trusted_proxy_ips": []}, "trusted_proxy_ips"),
    ({"trusted_proxy_ips": ["0.0.0.0/0"]}, "trusted_proxy_ips"),
    ({"skip_auth_routes": ["GET=^/"]}, "skip_auth_routes"),
    ({"skip_jwt_bearer_tokens": True}, "skip_jwt_bearer_tokens"),
    ({"client_secret": "inline"}, "client_secret must not be inline"),
    ({"cookie_secret": "inline"}, "cookie_secret must not be inline"),
    ({"cookie_secure": False}, "cookie_secure"),
    ({"cookie_name": "_oauth2_proxy"}, "__Host-"),
    ({"cookie_domains": ["example.com"]}, "cookie_domains"),
    ({"cookie_refresh": "12h"}, "shorter than cookie_expire"),
    ({"cookie_refresh": "1h", "cookie_expire": "8h"}, "1h token lifetime"),
    ({"scope": "openid email profile"}, "offline_access"),
    ({"code_challenge_method": "plain"}, "S256"),
    ({"oidc_issuer_url": "https://login.microsoftonline.com/common/v2.0"}, "single tenant"),
    ({"upstreams": ["http://10.0.0.5:8080"]}, "upstreams"),
    ({"allowed_groups": ["code-server-users"]}, "GUIDs"),
    ({"redirect_url": "http://code.example.com/oauth2/callback"}, "redirect_url"),
    ({"whitelist_domains": [".microsoftonline.com"]}, "open redirect"),
    ({"whitelist_domains": ["login.microsoftonline.com", "evil.example"]}, "open redirect"),
    ({"whitelist_domains": ["login.microsoftonline.com:*"]}, "open redirect"),
    # oauth2-proxy's own defaults for these (docs: provider "google", cookie_httponly true, no client):
    # each guard is refused on its own
    ({"provider": "oidc"}, "provider must be entra-id"),
    ({"client_id": ""}, "client_id is required"),
    ({"client_secret_file": "/tmp/client-secret"}, "client_secret_file must be"),
    ({"cookie_secret_file": "/home/coder/cookie-secret"}, "cookie_secret_file must be"),
    ({"https_address": ":443"}, "TLS listener"),
    ({"tls_cert_file": "/etc/ssl/cert.pem"}, "TLS listener"),
    ({"email_domains": []}, "email_domains is required"),
    ({"cookie_httponly": False}, "cookie_httponly must be true"),
    ({"pass_access_token": True}, "access token in a response header"),
    ({"auth_logging": False}, "auth_logging and request_logging must stay on"),
    ({"request_logging": False}, "auth_logging and request_logging must stay on"),
    ({"exclude_logging_paths": []}, "authorization code"),
]


@pytest.mark.parametrize(("change", "reason"), OPEN_DOORS, ids=[r for _, r in OPEN_DOORS])
def test_misconfigurations_that_open_the_door_are_refused(change: dict, reason: str) -> None:
    opts = {**o.options(PARAMS), **change}
    with pytest.raises(o.UnsafeConfig) as err:
        o.check_options(opts)
    assert any(reason in r for r in err.value.reasons), err.value.reasons


def test_star_domain_with_an_allowed_group_is_accepted() -> None:
    o.check_options({**o.options(PARAMS), "email_domains": ["*"]})


def test_every_problem_is_reported_at_once() -> None:
    opts = {**o.options(PARAMS), "http_address": "0.0.0.0:4180", "cookie_samesite": "strict", "ssl_insecure_skip_verify": True}
    with pytest.raises(o.UnsafeConfig) as err:
        o.check_options(opts)
    assert len(err.value.reasons) == 3


def test_render_refuses_unsafe_params() -> None:
    with pytest.raises(o.UnsafeConfig, match="1h token lifetime"):
        o.render(o.OAuth2ProxyParams(**{**PARAMS.__dict__, "cookie_refresh": dt.timedelta(hours=2), "cookie_expire": dt.timedelta(hours=12)}))


def test_sign_out_url_clears_the_session_then_ends_entras() -> None:
    url = layout.sign_out_url("code.example.com", TENANT)
    assert url == ("https://code.example.com/oauth2/sign_out?rd="
                   f"https%3A%2F%2Flogin.microsoftonline.com%2F{TENANT}%2Foauth2%2Fv2.0%2Flogout")


def test_nonce_left_at_oauth2_proxys_default_is_refused() -> None:
    opts = o.options(PARAMS)
    del opts["insecure_oidc_skip_nonce"]
    with pytest.raises(o.UnsafeConfig, match="insecure_oidc_skip_nonce must be set to false"):
        o.check_options(opts)
