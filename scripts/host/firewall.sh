# firewall: UFW to exactly the rendered rules. HCS_UFW_RULES holds them in the form
# `ufw show added` prints, so only the difference is deleted/added (never a reset that would
# leave the host open for a moment); HCS_UFW_DEFAULTS: "incoming=deny outgoing=… routed=deny".
# The files on stdin: ufw's after.init hook (the VM's traffic by identity), installed before ufw
# is enabled (enabling runs it) and re-run when it changed on an active firewall (the previous
# hook's `stop` first, so no chain of an older layout stays behind). Its refusals reach the
# journal through ulogd2 (the packages step).
hcs_install_files
current=$(ufw show added | grep '^ufw ' || true)
while IFS= read -r rule; do
    [ -n "$rule" ] || continue
    if ! grep -qxF -- "$rule" <<<"$HCS_UFW_RULES"; then
        eval "ufw delete ${rule#ufw }" >/dev/null; hcs_changed "removed: $rule"
    fi
done <<<"$current"
while IFS= read -r rule; do
    [ -n "$rule" ] || continue
    if ! grep -qxF -- "$rule" <<<"$current"; then
        eval "$rule" >/dev/null; hcs_changed "added: $rule"
    fi
done <<<"$HCS_UFW_RULES"
declare -A policy=([incoming]=DEFAULT_INPUT_POLICY [outgoing]=DEFAULT_OUTPUT_POLICY [routed]=DEFAULT_FORWARD_POLICY)
for setting in $HCS_UFW_DEFAULTS; do
    direction=${setting%=*} want=${setting#*=}
    have=$(sed -n "s/^${policy[$direction]}=\"\(.*\)\"/\1/p" /etc/default/ufw)
    if [ "$have" != "$( [ "$want" = deny ] && echo DROP || echo ACCEPT)" ]; then
        ufw default "$want" "$direction" >/dev/null; hcs_changed "default $want $direction"
    fi
done
if ! ufw status | grep -qx 'Status: active'; then
    # Where nothing has used connection tracking yet (a host without Docker running, a fresh
    # network namespace), the SSH session running this step is untracked: after `ufw enable`
    # its replies would be NEW rather than ESTABLISHED, default-deny outgoing would drop them,
    # and the step would hang. A conntrack rule makes the kernel pick the session up; the line
    # printed next and the client's ACK confirm it before the policies apply.
    iptables -w -I OUTPUT 1 -m conntrack --ctstate ESTABLISHED -j ACCEPT
    hcs_changed "ufw enabled"
    sleep 1
    ufw --force enable >/dev/null
    iptables -w -D OUTPUT -m conntrack --ctstate ESTABLISHED -j ACCEPT
elif hcs_files_changed /etc/ufw/after.init; then
    previous=$(hcs_previous /etc/ufw/after.init)
    if [ -n "$previous" ]; then sh "$previous" stop; fi
    /etc/ufw/after.init start; echo "ran /etc/ufw/after.init start"
elif ! /etc/ufw/after.init status >/dev/null 2>&1; then
    # The file is as rendered but its chains are gone (flushed by hand, `ufw reload` failed):
    # the accounts would all share UFW's per-host allowlist again.
    /etc/ufw/after.init start; hcs_changed "the hook's chains restored"
fi
hcs_done
