# sshd: the hardening drop-in, checked with `sshd -t` before sshd ever reloads it; a config sshd
# rejects is rolled back so the admin path is never cut.
mkdir -p /run/sshd
hcs_install_files
hcs_validate sshd -t
if hcs_files_changed; then
    if hcs_systemd; then systemctl reload ssh; echo "reloaded ssh"
    elif [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then kill -HUP "$(cat /run/sshd.pid)"; echo "reloaded sshd"
    else echo "sshd not running: the configuration applies at its next start"; fi
fi
hcs_done
