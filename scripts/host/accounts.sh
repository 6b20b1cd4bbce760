# accounts: the design's split of duties.
# HCS_SERVICE_USER: system account for the proxy stack (no login shell, no home, no sudo, no extra
# groups: its containers run with its numeric uid:gid and the admin drives Docker, so it needs no
# `docker` membership, which would be root-equivalent)
# HCS_IDE_USER: interactive IDE account (home, bash, no sudo, no extra groups); empty on a team VM
# HCS_WORKSPACES / HCS_WORKSPACE_UIDS (a team VM): the workspace accounts, each like the IDE account,
# made in the uid (and gid) range "FIRST LAST" that the firewall hook and the audit rules match; an
# account found outside it stops the step (those rules would not hold for it)
# HCS_ADMIN_GROUP / HCS_ADMIN_USER: the only group sshd admits, and the admin Pulumi logs in as
# (also in docker, for the Docker provider's SSH transport).
# The root password is locked: root is reachable only through sudo of an admin.
svc=$HCS_SERVICE_USER ide=$HCS_IDE_USER admins=$HCS_ADMIN_GROUP admin=$HCS_ADMIN_USER

for group in "$admins" docker; do
    if ! getent group "$group" >/dev/null; then groupadd --system "$group"; hcs_changed "group $group created"; fi
done
# The admin also joins docker: Pulumi's Docker provider runs `docker system dial-stdio` over SSH
# as this user and cannot use sudo. It grants nothing new: the admin has passwordless sudo already.
for group in "$admins" docker; do
    if ! id -nG "$admin" | tr ' ' '\n' | grep -qx "$group"; then
        usermod -aG "$group" "$admin"; hcs_changed "$admin added to $group"
    fi
done

if ! getent passwd "$svc" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$svc"
    hcs_changed "service account $svc created"
fi
if [ "$(getent passwd "$svc" | cut -d: -f7)" != /usr/sbin/nologin ]; then
    usermod --shell /usr/sbin/nologin "$svc"; hcs_changed "$svc shell set to nologin"
fi
if [ "$(id -nG "$svc")" != "$svc" ]; then
    usermod -G "" "$svc"; hcs_changed "$svc supplementary groups removed"
fi

people=()
if [ -n "$ide" ]; then
    if ! getent passwd "$ide" >/dev/null; then
        useradd --user-group --create-home --shell /bin/bash "$ide"
        hcs_changed "IDE account $ide created"
    fi
    people+=("$ide")
fi
if [ -n "${HCS_WORKSPACES:-}" ]; then
    read -r first last <<<"$HCS_WORKSPACE_UIDS"
    for ws in $HCS_WORKSPACES; do
        if ! getent passwd "$ws" >/dev/null; then
            useradd --user-group --create-home --shell /bin/bash \
                -K UID_MIN="$first" -K UID_MAX="$last" -K GID_MIN="$first" -K GID_MAX="$last" "$ws"
            hcs_changed "workspace account $ws created"
        fi
        for id in "$(id -u "$ws")" "$(id -g "$ws")"; do
            [ "$id" -ge "$first" ] && [ "$id" -le "$last" ] \
                || hcs_fail "$ws has uid/gid $id outside $first-$last: the workspaces' firewall and audit rules would not hold for it"
        done
        people+=("$ws")
    done
fi
for user in "${people[@]}"; do
    if [ "$(id -nG "$user")" != "$user" ]; then
        usermod -G "" "$user"; hcs_changed "$user supplementary groups removed"
    fi
done

# No account of the design may hold a password or any sudo rule.
for user in "$svc" "${people[@]}"; do
    if [ "$(passwd -S "$user" | cut -d' ' -f2)" != L ]; then passwd -q -l "$user" >/dev/null; hcs_changed "$user password locked"; fi
    if sudo -n -l -U "$user" 2>/dev/null | grep -q '^    '; then hcs_fail "$user has sudo rules; remove them from /etc/sudoers(.d)"; fi
done
if [ "$(passwd -S root | cut -d' ' -f2)" != L ]; then passwd -q -l root >/dev/null; hcs_changed "root password locked"; fi
hcs_done
