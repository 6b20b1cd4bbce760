"""Cloudflare edge settings: the account, zone and Access team, and the connector image.

They are validated whenever they are set, so one stack file can carry both edges and switch
with `edge` alone; they are required only when `edge` is `cloudflare`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from components.settings import checks, rules
from components.settings.reader import Reader

#: `cloudflared tunnel run --token-file` exists since 2025.4.0; older images would need the
#: token on the command line or in the environment, which this project never does.
MIN_CLOUDFLARED = (2025, 4, 0)
#: Access sessions longer than a working day defeat re-checking identity at the edge.
MAX_SESSION = dt.timedelta(hours=24)


@dataclass(frozen=True)
class CloudflareSettings:
    """What the Cloudflare edge needs."""

    account_id: str
    zone_id: str
    team_name: str
    session_duration: dt.timedelta
    cloudflared_image: str

    @property
    def session_duration_text(self) -> str:
        """The session length in the `<hours>h<minutes>m` form Cloudflare accepts."""
        minutes = int(self.session_duration.total_seconds() // 60)
        return f"{minutes // 60}h{minutes % 60}m"


_hex32 = checks.matching(r"[0-9a-f]{32}", "a Cloudflare ID of 32 lower-case hex characters")
_team = checks.matching(r"(?!-)[a-z0-9-]{1,63}(?<!-)", "the Zero Trust team name (the <team> of <team>.cloudflareaccess.com)")


def _cloudflared_image(value: str) -> str:
    image = checks.pinned_image(value)
    tag = image.split("@", 1)[0].rsplit("/", 1)[-1].partition(":")[2]
    parts = tag.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or tuple(map(int, parts)) < MIN_CLOUDFLARED:
        raise ValueError("expected a cloudflared image tagged 2025.4.0 or newer (for --token-file), pinned by digest")
    return image


def _session(value: str) -> dt.timedelta:
    length = rules.duration(value)
    if length > MAX_SESSION or length < dt.timedelta(minutes=15):
        raise ValueError("expected an Access session between 15m and 24h")
    if length.total_seconds() % 60:
        raise rules.BY_NAME["session-whole-minutes"].error()
    return length


def parse(r: Reader, edge: str | None) -> CloudflareSettings | None:
    """Read the `cloudflare*` keys; a missing one is a problem only when `edge` is cloudflare."""
    start = len(r.problems)
    required = edge == "cloudflare"
    unless_required: dict[str, None] = {} if required else {"default": None}
    values = {
        "account_id": r.string("cloudflareAccountId", _hex32, **unless_required),
        "zone_id": r.string("cloudflareZoneId", _hex32, **unless_required),
        "team_name": r.string("cloudflareTeamName", _team, **unless_required),
        "session_duration": r.string("cloudflareAccessSessionDuration", _session),
        "cloudflared_image": r.string("cloudflaredImage", _cloudflared_image, **unless_required),
    }
    if not required or len(r.problems) > start:
        return None
    return CloudflareSettings(**values)
