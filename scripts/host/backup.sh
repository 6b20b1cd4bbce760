# backup: restic's env file (0600), password file (0600, content from stdin), units and the
# operator's restore command; the timers are enabled and started (an enabled timer that is not
# started waits for the next boot), the first backup runs on schedule.
# HCS_BACKUP_TIMERS (optional): the timers to run, one per workspace on a team VM (instances of the
# templated hcs-backup@.timer); hcs-backup.timer, the IDE user's, without it.
timers=${HCS_BACKUP_TIMERS:-hcs-backup.timer}
unit=/etc/systemd/system/hcs-backup${HCS_BACKUP_TIMERS:+@}
hcs_install_files
hcs_validate systemd-analyze verify "$unit.service" "$unit.timer"
if hcs_files_changed && hcs_systemd; then systemctl daemon-reload; fi
for timer in $timers; do
    hcs_unit_enabled "$timer"
    if hcs_systemd && ! systemctl is-active --quiet "$timer"; then
        systemctl start "$timer"
        hcs_changed "$timer started"
    fi
done
hcs_done
