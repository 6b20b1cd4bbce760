"""The sign-in parts of the live path: the Entra stand-in and the real oauth2-proxy's test overrides.

The real oauth2-proxy runs the config the product renders, with exactly these keys changed
(`TEST_OVERRIDES`, nothing else, checked by `with_test_overrides`):

- the endpoints, because Entra is not reachable: `skip_oidc_discovery`, `login_url` (still
  `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/authorize`; the test browser maps that
  host to the stand-in with a host-resolver rule), `redeem_url` and `oidc_jwks_url` (the stand-in's
  address, dialled by oauth2-proxy from the VM), `provider_ca_files` (the stand-in's test CA only; the option the issue calls `provider_ca_file` is the flag `--provider-ca-file`, its config key is the list `provider_ca_files`);
- `cookie_refresh`, shortened so a refresh happens within the test run.

The ID tokens keep Entra's issuer (`oidc_issuer_url` is the product's), so oauth2-proxy's
`entra-id` provider validates them exactly as it would Entra's.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import tomli_w
import tomllib

from components import layout
from components.gateway import render_oauth2_proxy
from scripts import REPOSITORY
from scripts.lab.demo import network
from scripts.lab.idp import setup as idp_setup

#: The stand-in's address in the peer namespace ("the internet" around the VM), port 443 as Entra's.
IDP_ADDRESS = network.IDENTITY
#: Short enough that a refresh happens in a test; every other session setting is the product's.
TEST_COOKIE_REFRESH = dt.timedelta(seconds=15)
TEST_OVERRIDES = frozenset({"skip_oidc_discovery", "login_url", "redeem_url", "oidc_jwks_url", "provider_ca_files", "cookie_refresh"})
#: Where the stand-in's CA sits for oauth2-proxy, beside the rendered config (as the container sees it).
PROVIDER_CA_FILE = f"{render_oauth2_proxy.CONFIG_DIR}/idp-ca.crt"


def with_test_overrides(rendered: str, tenant_id: str) -> str:
    """The rendered config with the test's endpoint keys and `cookie_refresh` replaced (see module doc)."""
    options = tomllib.loads(rendered)
    base = f"https://{IDP_ADDRESS}/{tenant_id}"
    overrides = {
        "skip_oidc_discovery": True,
        "login_url": f"https://{layout.ENTRA_HOST}/{tenant_id}/oauth2/v2.0/authorize",
        "redeem_url": f"{base}/oauth2/v2.0/token",
        "oidc_jwks_url": f"{base}/discovery/v2.0/keys",
        "provider_ca_files": [PROVIDER_CA_FILE],
        "cookie_refresh": render_oauth2_proxy.go_duration(TEST_COOKIE_REFRESH),
    }
    if set(overrides) != TEST_OVERRIDES or not TEST_OVERRIDES.isdisjoint(set(options) - {"cookie_refresh"}):
        raise ValueError("the live path may override only the endpoint keys and cookie_refresh")
    header = "# The product's rendered oauth2-proxy config; the live path overrides only: " + ", ".join(sorted(TEST_OVERRIDES)) + "\n"
    return header + tomli_w.dumps({**options, **overrides})


#: The app registration as `components.identity.EntraApp` declares it (tests/idp/test_idp.py checks
#: the program's plan gives the same): groups claim limited to the groups assigned to the app, the
#: allowed group the only one assigned.
GROUP_MEMBERSHIP_CLAIMS = ("ApplicationGroup",)


def write_idp_files(workdir: Path, tenant_id: str, client_id: str, group_id: str, hostname: str, email_domain: str) -> idp_setup.IdpFiles:
    registration = idp_setup.AppRegistration(GROUP_MEMBERSHIP_CLAIMS, (group_id,))
    return idp_setup.write(workdir / "idp", tenant_id=tenant_id, client_id=client_id, group_id=group_id,
                           redirect_uris=idp_setup.redirect_uris(hostname), registration=registration, email_domain=email_domain,
                           address=IDP_ADDRESS)


def idp_argv(files: idp_setup.IdpFiles) -> list[str]:
    """The stand-in as a host program (run in the peer namespace); its secrets are read from files."""
    return ["env", f"PYTHONPATH={REPOSITORY}", "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1", sys.executable, "-m", "scripts.lab.idp",
            "--listen", f"{IDP_ADDRESS}:443", "--cert", str(files.tls.cert), "--key", str(files.tls.key),
            "--users", str(files.users_file), "--admin-token-file", str(files.admin_token_file)]


def idp_admin(peer_argv: list[str], files: idp_setup.IdpFiles, path: str, revoke: str | None = None) -> object:
    """Call a stand-in control (`events`, `revoke`) from the peer namespace; the token goes by stdin."""
    argv = [sys.executable, "-m", "scripts.lab.idp.admin", f"https://{IDP_ADDRESS}/stand-in/{path}", "--cafile", str(files.tls.ca_cert)]
    if revoke:
        argv += ["--revoke", revoke]
    proc = subprocess.run([*peer_argv, *argv], input=files.admin_token, capture_output=True, text=True, timeout=60, check=False, cwd=REPOSITORY)
    if proc.returncode != 0:
        raise RuntimeError(f"stand-in control {path} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)
