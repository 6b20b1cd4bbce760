# packages: the Debian packages every later step relies on (missing ones only).
# HCS_PACKAGES: space-separated package names. HCS_FILES: the apt proxy configuration (with a
# locked egress the proxy is the only way to a mirror) and ulogd2's configuration and drop-in
# (the firewall's refusals into the journal), installed first: the package starts its unit.
hcs_install_files
# shellcheck disable=SC2086 # a word list by design
hcs_pkgs $HCS_PACKAGES
hcs_unit_enabled ulogd2.service
hcs_restart_if_changed ulogd2.service
if hcs_systemd; then
    if ! systemctl is-active --quiet ulogd2.service; then
        systemctl start ulogd2.service; hcs_changed "ulogd2.service started"
    fi
    systemctl is-active --quiet ulogd2.service || hcs_fail "ulogd2.service is not active: the firewall's refusals would not be logged"
fi
hcs_done
