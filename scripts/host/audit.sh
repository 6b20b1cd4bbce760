# audit: Debian's auditd with the rules of the accounts and files that matter (HCS_FILES: the
# rules file and the `-e 2` that locks them), compiled into /etc/audit/audit.rules by augenrules.
# The kernel accepts audit rules and an audit daemon from its initial pid namespace only: in a
# container (the demo's nspawn VM) its units could only fail, so they are disabled there and
# the step says so; the compiled rules wait for a VM. On a VM the rules are loaded at once unless
# the running set is locked (`-e 2`): then they load at the next boot, which the step says.
hcs_pkgs auditd
hcs_install_files
augenrules >/dev/null || hcs_fail "augenrules could not compile /etc/audit/rules.d"
# Debian 13's auditd loads the rules from a unit of their own; Debian 12's from auditd.service.
units=""
for unit in audit-rules.service auditd.service; do
    if [ -e "/lib/systemd/system/$unit" ]; then units="$units $unit"; fi
done
if hcs_systemd && systemd-detect-virt --quiet --container; then
    for unit in $units; do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null; then
            systemctl disable --quiet "$unit"
            hcs_changed "$unit disabled (a container)"
        fi
        # The package's own start failed here (Debian 12's auditd then retries on its own): stopped,
        # which cancels a pending restart, and no failed unit is left on this VM.
        systemctl stop "$unit" 2>/dev/null || true
        systemctl reset-failed "$unit" 2>/dev/null || true
    done
    echo "auditd not running: this VM is a container ($(systemd-detect-virt --container)); its kernel takes audit only from its host. Rules compiled in /etc/audit/audit.rules."
else
    for unit in $units; do hcs_unit_enabled "$unit"; done
    if hcs_systemd; then
        if auditctl -s | grep -qx 'enabled 2'; then
            if hcs_files_changed; then echo "audit rules are locked (-e 2): the changed rules load at the next boot"; fi
        elif hcs_files_changed || ! auditctl -l | grep -q 'key=hcs-ide-exec'; then
            # augenrules --load stops at a line the kernel refuses: the step fails with it.
            augenrules --load >/dev/null
            hcs_changed "audit rules loaded"
        fi
        if ! systemctl is-active --quiet auditd.service; then systemctl start auditd.service; hcs_changed "auditd.service started"; fi
        auditctl -l | grep -q 'key=hcs-ide-exec' || hcs_fail "the kernel's audit rules lack the IDE user's commands"
    fi
fi
hcs_done
