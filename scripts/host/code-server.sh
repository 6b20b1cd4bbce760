# code-server: the pinned package (refused unless its SHA-256 matches), its loopback-only config
# and the systemd sandbox drop-in, then code-server@IDE_USER enabled.
# HCS_CS_VERSION, HCS_CS_SHA256, HCS_CS_URL, HCS_IDE_USER; HCS_PROXY optional (http://addr:port).
# On a team VM (HCS_IDE_USER empty, HCS_WORKSPACES the accounts): no code-server is enabled; each
# workspace's gateway socket (hcs-ws-proxy@ACCOUNT.socket) is, and starts its code-server on demand;
# a running workspace is restarted when the files changed (its next request starts it again).
installed=$(dpkg-query -W -f='${db:Status-Status} ${Version}' code-server 2>/dev/null || true)
if [ "$installed" != "installed $HCS_CS_VERSION" ]; then
    deb=$(mktemp --suffix=.deb)
    curl -fsSL --proto '=https,http' --max-time 600 ${HCS_PROXY:+--proxy "$HCS_PROXY"} -o "$deb" "$HCS_CS_URL" \
        || { rm -f "$deb"; hcs_fail "download of $HCS_CS_URL failed (with a locked egress the URL must be reachable via the allowlist)"; }
    actual=$(sha256sum "$deb" | cut -d' ' -f1)
    if [ "$actual" != "$HCS_CS_SHA256" ]; then
        rm -f "$deb"
        hcs_fail "SHA-256 mismatch for $HCS_CS_URL: expected $HCS_CS_SHA256, got $actual; package refused"
    fi
    name=$(dpkg-deb -f "$deb" Package) version=$(dpkg-deb -f "$deb" Version)
    if [ "$name $version" != "code-server $HCS_CS_VERSION" ]; then
        rm -f "$deb"; hcs_fail "package is $name $version, expected code-server $HCS_CS_VERSION; refused"
    fi
    hcs_apt install -y --no-install-recommends "$deb" >/dev/null
    rm -f "$deb"
    hcs_changed "code-server $HCS_CS_VERSION installed"
fi
hcs_install_files
if [ -n "$HCS_IDE_USER" ]; then
    unit="code-server@$HCS_IDE_USER.service"
    hcs_unit_enabled "$unit"
    hcs_restart_if_changed "$unit"
else
    hcs_validate systemd-analyze verify /etc/systemd/system/hcs-ws-proxy@.socket /etc/systemd/system/hcs-ws-proxy@.service
    if hcs_files_changed && hcs_systemd; then
        systemctl daemon-reload
        systemctl try-restart 'code-server@ws-*.service'
    fi
    for ws in $HCS_WORKSPACES; do
        socket="hcs-ws-proxy@$ws.socket"
        hcs_unit_enabled "$socket"
        if hcs_systemd && ! systemctl is-active --quiet "$socket"; then
            systemctl start "$socket"; hcs_changed "$socket listening"
        fi
    done
fi
hcs_done
