# ide-proxy: the IDE user's one door off the VM, Debian's Squid allowlisting the names of
# ideEgressDomains (HCS_IDE_PROXY=on), or no proxy at all (off: a Squid left from before is stopped
# and disabled, so nothing listens where the IDE's tools would look). HCS_FILES: squid.conf and the
# unit's drop-in, installed before the package, so its first start already listens on loopback with
# the allowlist only (dpkg keeps the file: --force-confold); ready once it listens on
# 127.0.0.1:HCS_IDE_PROXY_PORT.
if [ "$HCS_IDE_PROXY" = on ]; then
    hcs_install_files
    hcs_pkgs squid
    hcs_validate squid -k parse -f /etc/squid/squid.conf
    hcs_unit_enabled squid.service
    hcs_restart_if_changed squid.service
    if hcs_systemd; then
        if ! systemctl is-active --quiet squid.service; then
            systemctl reset-failed squid.service 2>/dev/null || true
            systemctl start squid.service; hcs_changed "squid.service started"
        fi
        systemctl is-active --quiet squid.service || hcs_fail "squid.service is not active: the IDE has no way out"
        listening() { ss -Hltn "sport = :$HCS_IDE_PROXY_PORT" | grep -q "127.0.0.1:$HCS_IDE_PROXY_PORT"; }
        for _ in $(seq 100); do listening && break; sleep 0.2; done
        listening || hcs_fail "squid does not listen on 127.0.0.1:$HCS_IDE_PROXY_PORT within 20 s: the IDE has no way out"
    fi
elif dpkg-query -W -f='${db:Status-Status}' squid 2>/dev/null | grep -qx installed; then
    if systemctl is-enabled --quiet squid.service 2>/dev/null; then
        systemctl disable --quiet squid.service; hcs_changed "squid.service disabled (ideEgressDomains is empty)"
    fi
    if hcs_systemd && systemctl is-active --quiet squid.service; then
        systemctl stop squid.service; hcs_changed "squid.service stopped"
    fi
fi
hcs_done
