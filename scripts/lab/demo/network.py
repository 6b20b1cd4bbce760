"""The demo's test network: who lives at which address, and the stack values that point there.

One peer namespace plays every neighbour of the VM, each at the address the example stack
(`Pulumi.dev.yaml`) gives it, so the VM's UFW rules, the FortiGate objects and the gateway's
trusted proxies are exactly the ones the example stack renders:

    VM            192.0.2.10     booted with systemd; sshd, Docker, the gateway, code-server
    gateway       192.0.2.1      the VM's default route (FortiGate's inside address)
    front proxy   192.0.2.5      the central Caddy (:443), the only peer of the gateway
    admin         198.51.100.7   an SSH client in the management subnet
    apt proxy     192.0.2.40     :3142, Debian's mirror and the package site, nothing else
    registry      192.0.2.41     :443, the OCI registry the VM pulls the gateway images from
    identity      192.0.2.60     :443, the Entra stand-in (`entraEgress` points here)
    DNS / NTP     192.0.2.53 / 192.0.2.123, Wazuh 192.0.2.20, Zabbix 192.0.2.21
    backup        192.0.2.30     :8000, backup.demo.test: restic's REST protocol (rclone), append-only
    IDE's hosts   192.0.2.70 code.demo.test (listed), 192.0.2.71 code.elsewhere.test (not listed),
                  192.0.2.72 gallery.demo.test (listed): a git code host, another, an Open VSX stand-in
    outsiders     192.0.2.99 (on the DMZ, not allowlisted), 203.0.113.50 (an internet client)
"""

from __future__ import annotations

from scripts.lab.vm.machine import RootConfig
from scripts.lab.vm.netns import NetworkPlan

VM = "192.0.2.10"
GATEWAY = "192.0.2.1"
FRONT_PROXY = "192.0.2.5"
ADMIN = "198.51.100.7"
APT_PROXY = ("192.0.2.40", 3142)
#: The package site, reached only through the apt proxy (as an internal mirror would be).
PACKAGE_SITE = "192.0.2.40:8000"
REGISTRY = "192.0.2.41"
IDENTITY = "192.0.2.60"
DNS = "192.0.2.53"
NTP = "192.0.2.123"
WAZUH = "192.0.2.20"
ZABBIX = "192.0.2.21"
BACKUP = ("192.0.2.30", 8000)
#: The backup server's name (its certificate's), resolved by the VM from /etc/hosts.
BACKUP_HOST = "backup.demo.test"
DMZ_OUTSIDER = "192.0.2.99"
#: The IDE user's destinations (name, address), reached only through its proxy on the VM; the VM
#: resolves the names from /etc/hosts (the demo's DNS address answers no queries).
CODE_HOST = ("code.demo.test", "192.0.2.70")
OTHER_CODE_HOST = ("code.elsewhere.test", "192.0.2.71")
GALLERY = ("gallery.demo.test", "192.0.2.72")
#: The demo stack's ideEgressDomains: the code host and the gallery, not the other code host.
IDE_EGRESS = (CODE_HOST[0], GALLERY[0])
INTERNET_CLIENT = "203.0.113.50"
#: The demo stack's Proxmox VE (`vmProvider: proxmox`): the booted VM stands in for the clone and its API is
#: never called (`live.LiveMocks`), so the endpoint is an address of the test network where nothing listens;
#: the bridge names the VM's link to the peer namespace, the token has only the documented form.
PROXMOX_ENDPOINT = "https://192.0.2.2:8006/"
PROXMOX_NODE = "demo-pve"
PROXMOX_BRIDGE = "vmbr1"
PROXMOX_API_TOKEN = "demo@pve!hcs-demo=00000000-0000-4000-8000-000000000000"

#: What the demo VM may reach, written out from Pulumi.dev.yaml and the demo's overrides (apt proxy,
#: backup, registry, the Entra stand-in; Wazuh and Zabbix are off in the demo), with who may open it.
ALLOWED = [
    ("dns", "udp", DNS, 53, ("root", "codesvc", "proxy")), ("dns", "tcp", DNS, 53, ("root", "codesvc", "proxy")),
    ("ntp", "udp", NTP, 123, ("root",)),
    ("apt proxy", "tcp", APT_PROXY[0], APT_PROXY[1], ("root",)), ("backup", "tcp", *BACKUP, ("root",)),
    ("registry", "tcp", REGISTRY, 443, ("root",)), ("entra (stand-in)", "tcp", IDENTITY, 443, ("codesvc",)),
    ("IDE proxy (Squid: any address, listed names)", "tcp", CODE_HOST[1], 443, ("proxy",)),
]
#: IPv6 on the demo network, added by the attacker suite (the stack's allowlist is IPv4 only).
VM6, GATEWAY6, OUTSIDE6 = "2001:db8::10", "2001:db8::1", "2001:db8::53"

PEERS = (FRONT_PROXY, ADMIN, APT_PROXY[0], REGISTRY, IDENTITY, DNS, NTP, WAZUH, ZABBIX, BACKUP[0], DMZ_OUTSIDER,
         INTERNET_CLIENT, CODE_HOST[1], OTHER_CODE_HOST[1], GALLERY[1])


def root_config() -> RootConfig:
    """The VM's network: every neighbour above owned by the peer namespace."""
    prefix = {ADMIN: 24, INTERNET_CLIENT: 24}
    plan = NetworkPlan(vm_address=f"{VM}/24", gateway_address=f"{GATEWAY}/24",
                       peer_addresses=tuple(f"{a}/{prefix.get(a, 24)}" for a in PEERS))
    return RootConfig(network=plan, client_address=ADMIN)
