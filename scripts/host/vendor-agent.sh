# vendor-agent: an agent from its vendor's apt repository (Wazuh, Zabbix), then its config.
# HCS_REPO_NAME, HCS_REPO_KEY_URL, HCS_REPO_LINE ("URI SUITE COMPONENT"), HCS_AGENT_PACKAGE,
# HCS_AGENT_UNIT, HCS_PROXY (optional); extra HCS_AGENT_ENV ("K=V …") for the package's postinst.
# The repository key is fetched over HTTPS once and pinned in /etc/apt/keyrings (signed-by).
keyring=/etc/apt/keyrings/$HCS_REPO_NAME.asc
if [ ! -s "$keyring" ]; then
    install -d -m 0755 /etc/apt/keyrings
    curl -fsSL --proto '=https' ${HCS_PROXY:+--proxy "$HCS_PROXY"} -o "$keyring.new" "$HCS_REPO_KEY_URL" \
        || hcs_fail "cannot fetch $HCS_REPO_KEY_URL"
    chmod 0644 "$keyring.new"; mv "$keyring.new" "$keyring"
    hcs_changed "$keyring fetched"
fi
read -r uri suite component <<<"$HCS_REPO_LINE"
sources="Types: deb
URIs: $uri
Suites: $suite
Components: $component
Signed-By: $keyring"
if [ "$(cat "/etc/apt/sources.list.d/$HCS_REPO_NAME.sources" 2>/dev/null)" != "$sources" ]; then
    printf '%s\n' "$sources" >"/etc/apt/sources.list.d/$HCS_REPO_NAME.sources"
    chmod 0644 "/etc/apt/sources.list.d/$HCS_REPO_NAME.sources"
    hcs_changed "apt source $HCS_REPO_NAME written"
fi
if ! dpkg-query -W -f='${db:Status-Status}' "$HCS_AGENT_PACKAGE" 2>/dev/null | grep -qx installed; then
    hcs_apt update >/dev/null
    # shellcheck disable=SC2086 # K=V words for the package's postinst
    (export ${HCS_AGENT_ENV:-}; hcs_apt install -y "$HCS_AGENT_PACKAGE" >/dev/null)
    hcs_changed "$HCS_AGENT_PACKAGE installed"
fi
hcs_install_files
hcs_unit_enabled "$HCS_AGENT_UNIT"
hcs_restart_if_changed "$HCS_AGENT_UNIT"
hcs_done
