"""What each sandboxed unit deliberately leaves open, as `systemd-analyze security` names it, and why.

Written from the design (components/host/render.py), not read from the renderer: every other
directive the scorer knows must be set, so dropping one (NoNewPrivileges=, a capability, a
namespace) fails a test even where the unit's total score would still pass.
"""

from __future__ import annotations

#: code-server's unit (the IDE): what its workbench, terminal and extensions need.
CODE_SERVER_OPEN = {
    "MemoryDenyWriteExecute=": "Node's JIT needs writable executable pages",
    "PrivateUsers=": "the terminal's tools read the user's groups",
    "ProcSubset=": "the terminal's tools read /proc",
    "ProtectHome=": "read-only, with the IDE user's home writable",
    "PrivateNetwork=": "code-server listens on loopback (IPAddressDeny= keeps the unit there)",
    "IPAddressDeny=": "an allow list of localhost only, which the scorer counts as a small exposure",
    "RestrictAddressFamilies=~AF_UNIX": "the workbench's own sockets",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "IPv4 for the loopback listener (IPv6 is refused)",
    "RootDirectory=/RootImage=": "code-server runs from the package in the VM's root",
    "DeviceAllow=": "PrivateDevices= leaves the pseudo devices",
    "SystemCallFilter=~@privileged": "@system-service includes chown for the user's files",
    "SystemCallFilter=~@resources": "@system-service includes setrlimit and friends",
}

#: The workspace proxy (systemd-socket-proxyd as the workspace account, components/host/render_workspaces.py):
#: it only passes bytes between two Unix sockets.
PROXY_OPEN = {
    "RestrictAddressFamilies=~AF_UNIX": "both its sockets are Unix sockets",
    "RootDirectory=/RootImage=": "the proxy from the VM's systemd",
    "DeviceAllow=": "PrivateDevices= leaves the pseudo devices",
    "SystemCallFilter=~@privileged": "@system-service; a narrower filter is not proven on a booted VM here",
    "SystemCallFilter=~@resources": "@system-service; a narrower filter is not proven on a booted VM here",
}

#: restic's backup unit: root reading every file it backs up, and the rest-server on the network.
BACKUP_OPEN = {
    "User=/DynamicUser=": "root: it reads every file of the backup set",
    "CapabilityBoundingSet=~CAP_(DAC_*|FOWNER|IPC_OWNER)": "reading files whatever their owner",
    "IPAddressDeny=": "the rest-server is off the VM (the firewall hook limits root's flows)",
    "PrivateNetwork=": "the rest-server is off the VM",
    "RestrictAddressFamilies=~AF_(INET|INET6)": "the rest-server over TCP",
    "RestrictAddressFamilies=~AF_UNIX": "the journal and name resolution",
    "PrivateUsers=": "file owners must map as they are",
    "ProtectHome=": "home directories are in the backup set (read-only)",
    "ProcSubset=": "restic reads /proc for its own limits",
    "RootDirectory=/RootImage=": "restic from the VM's root",
    "DeviceAllow=": "PrivateDevices= leaves the pseudo devices",
    "SystemCallFilter=~@privileged": "@system-service includes chown and friends",
    "SystemCallFilter=~@resources": "@system-service includes setrlimit and friends",
}

#: Seen only by the offline analysis (`--offline=yes`, no running manager): a booted VM's systemd
#: counts the mount namespace ProtectSystem= and friends imply.
OFFLINE_ONLY = {"PrivateMounts=": "implied by ProtectSystem=strict at run time; the offline scorer does not see it"}
