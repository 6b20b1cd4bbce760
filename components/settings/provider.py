"""Where the DMZ VM comes from: an existing machine (the default), or one this program creates.

`vmProvider: existing` is the product as it always was: the VM is yours, and you pin its SSH host key
(`vmHostKey`). With `proxmox` or `digitalocean` the program is to create the VM itself, generate its
host key and hand it over in the VM's cloud-init user-data, so the pin is derived, never pasted: a
pasted `vmHostKey` is then refused, because it could only disagree with the generated one.

Each provider's keys are read whatever the provider (so a typo is caught in any stack), required only
for their own provider, and refused when set for another: a stack that names a Proxmox node but left
`vmProvider` at `existing` has forgotten the one line that matters. The API tokens are secrets,
checked for their documented form without echoing them.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from components.settings import checks, debian
from components.settings.reader import Reader

EXISTING, PROXMOX, DIGITALOCEAN = "existing", "proxmox", "digitalocean"
PROVIDERS = (EXISTING, PROXMOX, DIGITALOCEAN)

#: Proxmox node names are host names (one DNS label).
_NODE = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A Linux bridge is a network interface: at most 15 characters (IFNAMSIZ - 1).
_BRIDGE = r"[A-Za-z][A-Za-z0-9_.-]{0,14}"
#: A Proxmox storage ID (pvesm's own rule: a letter, then letters, digits, `-`, `_`, `.`).
_DATASTORE = r"[A-Za-z][A-Za-z0-9_.-]{0,63}"
#: A Proxmox API token as the provider takes it: `USER@REALM!TOKENID=SECRET` (the secret is a UUID).
_PVE_TOKEN = re.compile(r"^[^\s@!=:]+@[A-Za-z][A-Za-z0-9.-]*![A-Za-z][A-Za-z0-9_.-]*=(?P<secret>[0-9a-fA-F-]{36})$")
#: The Proxmox node's SSH account (a Linux account name).
_SSH_USER = r"[a-z_][a-z0-9_-]{0,31}"
_DO_REGION = r"[a-z]{3}[0-9]"
_DO_SIZE = r"[a-z0-9]+(?:-[a-z0-9]+)*"
#: A DigitalOcean personal access token (`dop_v1_` and 64 hex digits).
_DO_TOKEN = re.compile(r"^dop_v1_[0-9a-f]{64}$")


@dataclass(frozen=True)
class ProxmoxVm:
    """A VM cloned from a cloud-init template on the DMZ bridge (and VLAN), sized by config."""

    endpoint: str
    node: str
    template_vm_id: int
    bridge: str
    vlan_tag: int | None
    cores: int
    memory_mib: int
    disk_gib: int
    datastore: str
    api_token: Any  # pulumi.Output[str], secret
    #: The DMZ's router (the FortiGate's DMZ interface) and the prefix of the DMZ around `vmAddress`:
    #: the VM's static address is set by Proxmox's cloud-init drive, so the FortiGate's VIP never moves.
    gateway: ipaddress.IPv4Address
    prefix_length: int
    #: A storage with the `snippets` content type: where the user-data file lives on the node.
    snippet_datastore: str
    #: The node's SSH account the provider uploads the snippet with (the API cannot upload snippets).
    ssh_user: str
    ssh_private_key: Any  # pulumi.Output[str], secret


@dataclass(frozen=True)
class DigitalOceanDroplet:
    """A droplet in a VPC, of a Debian image that matches `vmDebianRelease`."""

    region: str
    size: str
    image: str
    vpc_uuid: str
    api_token: Any  # pulumi.Output[str], secret


@dataclass(frozen=True)
class VmProvider:
    """The provider and, for a created VM, its settings (exactly the one for `kind`)."""

    kind: str
    proxmox: ProxmoxVm | None = None
    digitalocean: DigitalOceanDroplet | None = None

    @property
    def creates_vm(self) -> bool:
        """Whether the program creates the VM (and so generates and pins its host key itself)."""
        return self.kind != EXISTING


def kind(r: Reader) -> str | None:
    """`vmProvider`, read first: the topology needs it to judge `vmHostKey`."""
    return r.string("vmProvider", checks.one_of(*PROVIDERS))


def _endpoint(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname or parts.username or parts.password or parts.query or parts.fragment \
            or parts.path not in ("", "/"):
        raise ValueError("expected the Proxmox VE API's https URL such as https://pve.example.com:8006/ "
                         "(https only: the API token crosses it)")
    return value.strip()


def _pve_token(value: str) -> None:
    found = _PVE_TOKEN.match(value.strip())
    try:
        ok = found is not None and str(uuid.UUID(found["secret"])) == found["secret"].lower()
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("expected a Proxmox API token as USER@REALM!TOKENID=UUID, e.g. pulumi@pve!hcs=<uuid>")


def _do_token(value: str) -> None:
    if not _DO_TOKEN.match(value.strip()):
        raise ValueError("expected a DigitalOcean personal access token (dop_v1_ and 64 hex digits)")


def _vpc(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError("expected the VPC's UUID such as 00000000-0000-0000-0000-000000000000 "
                         "(doctl vpcs list)") from None


def do_image(release: debian.DebianRelease) -> str:
    """DigitalOcean's slug of the Debian image of `release`."""
    return f"debian-{release.version}-x64"


def _image(value: str) -> str:
    images = [do_image(r) for _, r in sorted(debian.RELEASES.items())]
    if value.strip() not in images:
        raise ValueError("expected one of DigitalOcean's Debian image slugs " + ", ".join(images))
    return value.strip()


def _unused(r: Reader, owner: str, provider: str | None, keys: dict[str, bool]) -> None:
    """Keys of another provider, set: refused (the stack most likely forgot to set vmProvider)."""
    for key, is_set in keys.items():
        if is_set and provider is not None:
            r.problem(key, f"only applies with vmProvider {owner}; unset it, or set vmProvider {owner} (now {provider})")


def _proxmox(r: Reader, provider: str | None, vm_address: ipaddress.IPv4Address | None) -> ProxmoxVm | None:
    used = provider == PROXMOX
    need: dict[str, Any] = {} if used else {"default": None}
    endpoint = r.string("proxmoxEndpoint", _endpoint, **need)
    node = r.string("proxmoxNode", checks.matching(_NODE, "a Proxmox node name such as pve1"), **need)
    # 0, Pulumi.yaml's default, means not set: the CLI has no empty value for an integer key
    template = r.integer("proxmoxTemplateVmId", lo=0, hi=999_999_999)
    if template == 0 and used:
        r.problem("proxmoxTemplateVmId", "is required with vmProvider proxmox (the VM id of a Debian cloud-init template)")
    elif template is not None and 0 < template < 100:
        r.problem("proxmoxTemplateVmId", f"expected a Proxmox VM id from 100 to 999999999, got {template}")
    bridge = r.string("proxmoxBridge", checks.matching(_BRIDGE, "the DMZ's Linux bridge such as vmbr1"), **need)
    vlan = r.integer("proxmoxVlanTag", lo=0, hi=4094)  # 0: untagged (802.1Q tags are 1-4094)
    cores = r.integer("proxmoxCores", lo=1, hi=128)
    memory = r.integer("proxmoxMemoryMib", lo=2048, hi=1_048_576)  # code-server and the gateway need 2 GiB
    disk = r.integer("proxmoxDiskGib", lo=10, hi=65_536)
    datastore = r.string("proxmoxDatastore", checks.matching(_DATASTORE, "a Proxmox storage ID such as local-lvm"))
    token = r.secret("proxmoxApiToken", _pve_token if used else None, required=used)
    gateway = r.string("proxmoxGateway", checks.ipv4_address, **need)
    prefix = r.integer("proxmoxPrefixLength", lo=8, hi=30)
    snippets = r.string("proxmoxSnippetDatastore", checks.matching(_DATASTORE, "a Proxmox storage ID such as local"))
    ssh_user = r.string("proxmoxSshUser", checks.matching(_SSH_USER, "the node's SSH account such as root"), **need)
    ssh_key = r.secret("proxmoxSshPrivateKey", checks.openssh_private_key if used else None, required=used)
    if not used:
        _unused(r, PROXMOX, provider, {"proxmoxEndpoint": r.is_set("proxmoxEndpoint"), "proxmoxNode": r.is_set("proxmoxNode"),
                                       "proxmoxBridge": r.is_set("proxmoxBridge"), "proxmoxTemplateVmId": bool(template),
                                       "proxmoxVlanTag": bool(vlan), "proxmoxGateway": r.is_set("proxmoxGateway"),
                                       "proxmoxSshUser": r.is_set("proxmoxSshUser")})
        return None
    if gateway is not None and prefix is not None and vm_address is not None:
        dmz = ipaddress.IPv4Network(f"{vm_address}/{prefix}", strict=False)
        if gateway not in dmz or gateway in (dmz.network_address, dmz.broadcast_address, vm_address):
            r.problem("proxmoxGateway", f"expected the DMZ router's address inside {dmz} (vmAddress {vm_address} with "
                                        f"proxmoxPrefixLength {prefix}), other than the VM's own, got {gateway}")
            gateway = None
    if None in (endpoint, node, template, bridge, vlan, cores, memory, disk, datastore, token, gateway, prefix, snippets,
                ssh_user, ssh_key) or template < 100:
        return None
    return ProxmoxVm(endpoint, node, template, bridge, vlan or None, cores, memory, disk, datastore, token,
                     gateway, prefix, snippets, ssh_user, ssh_key)


def _digitalocean(r: Reader, provider: str | None, release: debian.DebianRelease | None) -> DigitalOceanDroplet | None:
    used = provider == DIGITALOCEAN
    need: dict[str, Any] = {} if used else {"default": None}
    region = r.string("digitaloceanRegion", checks.matching(_DO_REGION, "a DigitalOcean region slug such as fra1"), **need)
    size = r.string("digitaloceanSize", checks.matching(_DO_SIZE, "a DigitalOcean size slug such as s-2vcpu-4gb"), **need)
    image = r.string("digitaloceanImage", _image, **need)
    if image is not None and release is not None and image != do_image(release):
        r.problem("digitaloceanImage", f"expected {do_image(release)}, the image of vmDebianRelease {release.version} "
                                       f"(every host step refuses a VM of another release), got {image!r}")
        image = None
    vpc = r.string("digitaloceanVpcUuid", _vpc, **need)
    token = r.secret("digitaloceanToken", _do_token if used else None, required=used)
    if not used:
        _unused(r, DIGITALOCEAN, provider, {key: r.is_set(key) for key in (
            "digitaloceanRegion", "digitaloceanSize", "digitaloceanImage", "digitaloceanVpcUuid")})
        return None
    if None in (region, size, image, vpc, token):
        return None
    return DigitalOceanDroplet(region, size, image, vpc, token)


def parse(r: Reader, provider: str | None, release: debian.DebianRelease | None,
          vm_address: ipaddress.IPv4Address | None) -> VmProvider | None:
    """Read every provider's keys; the chosen one's are required, another's refused when set.

    `vm_address` (`vmAddress`, None when it is itself wrong) is the created VM's address too: set
    statically on Proxmox, a reserved IP assigned to the droplet on DigitalOcean.
    """
    start = len(r.problems)
    proxmox = _proxmox(r, provider, vm_address)
    droplet = _digitalocean(r, provider, release)
    if provider is None or len(r.problems) > start:
        return None
    return VmProvider(provider, proxmox, droplet)
