# code-server: the pinned package (refused unless its SHA-256 matches), its loopback-only config
# and the systemd sandbox drop-in, then code-server@IDE_USER enabled.
# HCS_CS_VERSION, HCS_CS_SHA256, HCS_CS_URL, HCS_IDE_USER; HCS_PROXY optional (http://addr:port).
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
unit="code-server@$HCS_IDE_USER.service"
hcs_unit_enabled "$unit"
hcs_restart_if_changed "$unit"
hcs_done
