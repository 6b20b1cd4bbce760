# backup: restic's env file (0600), password file (0600, content from stdin), units and the
# operator's restore command; the timer is enabled and started (an enabled timer that is not
# started waits for the next boot), the first backup runs on schedule.
hcs_install_files
hcs_validate systemd-analyze verify /etc/systemd/system/hcs-backup.service /etc/systemd/system/hcs-backup.timer
if hcs_files_changed && hcs_systemd; then systemctl daemon-reload; fi
hcs_unit_enabled hcs-backup.timer
if hcs_systemd && ! systemctl is-active --quiet hcs-backup.timer; then
    systemctl start hcs-backup.timer
    hcs_changed "hcs-backup.timer started"
fi
hcs_done
