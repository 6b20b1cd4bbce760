"""Account and group names that already exist on the VM (Debian 13 or 12, plus what the host setup installs).

The host setup changes a named account in place (groups replaced, shell set to nologin, password
locked), so naming one of these as a stack's account would rewrite a system account: `nobody` in
the docker group is root for every process running as nobody. Sources, read on Debian 12:

- base-passwd 3.6.1 (Debian 12's), `/usr/share/base-passwd/passwd.master` and `group.master`: the
  global static users and groups of every Debian system (described in the package's
  `users-and-groups` document);
- systemd 252 and dbus in `/usr/lib/sysusers.d/*.conf` (systemd-network, systemd-timesync,
  systemd-journal, messagebus; polkitd when polkit is present);
- openssh-server's postinst (`adduser --system … sshd`); docker.io's `docker` group, which the
  accounts step also creates itself; ulogd2's `ulog` account (the packages step installs it);
- Debian 13 adds openssh-client's `_ssh` group (read off a debootstrapped trixie root: its
  /etc/passwd, /etc/group, sysusers.d and base-passwd 3.6.7's master files name nothing else new);
- a Debian 13 cloud image: cloud-init 25.1 depends on dhcpcd-base, whose package creates the
  `dhcpcd` account and group (read off a debootstrapped trixie root with cloud-init installed, the
  image a created VM boots from in the tests; Debian 12's cloud-init 22.4 uses isc-dhcp-client,
  which creates none);
- the baseline step's own `hcs-proc` group (hidepid's exception, components/host/render_baseline.py);
- the vendor agents the stack may install: wazuh-agent (`wazuh`) and zabbix-agent2 (`zabbix`), as
  their packages create them (from the vendors' documentation; not checked on this machine).

`tests/test_settings_rules.py` reads the real files again and fails if one of their names is missing.
"""

from __future__ import annotations

#: base-passwd 3.6.1 passwd.master.
BASE_USERS = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "_apt", "nobody",
})
#: base-passwd 3.6.1 group.master.
BASE_GROUPS = frozenset({
    "root", "daemon", "bin", "sys", "adm", "tty", "disk", "lp", "mail", "news", "uucp", "man", "proxy",
    "kmem", "dialout", "fax", "voice", "cdrom", "floppy", "tape", "sudo", "audio", "dip", "www-data",
    "backup", "operator", "list", "irc", "src", "shadow", "utmp", "video", "sasl", "plugdev", "staff",
    "games", "users", "nogroup",
})
#: Created by packages of the VM (sysusers.d, postinst scripts, vendor agents) and by the baseline step.
PACKAGE_ACCOUNTS = frozenset({
    "systemd-network", "systemd-timesync", "systemd-journal", "messagebus", "polkitd", "sshd",
    "docker", "ulog", "_ssh", "dhcpcd", "wazuh", "zabbix", "hcs-proc",
})

#: Every name a stack account or group must not take.
SYSTEM_NAMES = BASE_USERS | BASE_GROUPS | PACKAGE_ACCOUNTS
