# baseline: what an auditor's Debian baseline expects of any server. HCS_FILES: the sysctls,
# the core dump limits (PAM, the systemd manager, systemd-coredump), the hidepid unit with
# systemd-logind's exception, the login banners. HCS_SYSCTLS: "key value" per line, read back
# after applying. HCS_PROC_GROUP: the group that still sees every process (hidepid's gid=).
# HCS_PACKAGES: libpam-tmpdir (its PAM profile enables itself) and needrestart (HCS_FILES: list only).
# Applied now only on a booted system (systemd is PID 1); an image root gets it all at its boot,
# and never writes the kernel of whatever machine builds it.
if ! getent group "$HCS_PROC_GROUP" >/dev/null; then
    groupadd --system "$HCS_PROC_GROUP"
    hcs_changed "group $HCS_PROC_GROUP created"
fi
hcs_install_files
# shellcheck disable=SC2086 # a word list by design
hcs_pkgs $HCS_PACKAGES
hcs_validate perl -c /etc/needrestart/conf.d/90-hcs.conf
hcs_validate systemd-analyze verify /etc/systemd/system/hcs-hidepid.service
hcs_unit_enabled hcs-hidepid.service
if hcs_systemd; then
    # The manager re-reads system.conf.d on a reload; a re-exec would also drop the bus connection
    # of any systemctl the steps running beside this one are waiting on.
    if hcs_files_changed /etc/systemd/system.conf.d/90-hcs-nocore.conf; then
        systemctl daemon-reload
        echo "systemd reloaded: units started from now on get no core files"
    fi
    [ "$(systemctl show -p DefaultLimitCORE --value)" = 0 ] || hcs_fail "the systemd manager's DefaultLimitCORE is not 0"
    if hcs_files_changed /etc/systemd/system/hcs-hidepid.service || ! systemctl is-active --quiet hcs-hidepid.service; then
        systemctl daemon-reload
        systemctl restart hcs-hidepid.service
        hcs_changed "/proc remounted (hidepid)"
    fi
    findmnt -n -o OPTIONS /proc | grep -q 'hidepid=invisible' || hcs_fail "/proc is not mounted with hidepid=invisible"
    if hcs_files_changed /etc/systemd/system/systemd-logind.service.d/90-hcs-proc.conf && systemctl is-active --quiet systemd-logind.service; then
        systemctl daemon-reload
        systemctl restart systemd-logind.service
        echo "restarted systemd-logind.service (it sees every session's processes again)"
    fi
    # systemd-sysctl ignores a key this kernel lacks or a read-only /proc/sys (a container, whose
    # kernel is its host's); the read-back says which settings hold and which do not.
    /lib/systemd/systemd-sysctl /etc/sysctl.d/90-hcs-baseline.conf
    readonly_sys=""
    case ",$(findmnt -n -o OPTIONS --target /proc/sys)," in *,ro,*) readonly_sys=1 ;; esac
    while read -r key value; do
        [ -n "$key" ] || continue
        file=/proc/sys/$(printf '%s' "$key" | tr . /)
        if [ ! -e "$file" ]; then
            echo "sysctl $key: not in this kernel"
        elif [ "$(cat "$file")" = "$value" ]; then
            :
        elif [ -n "$readonly_sys" ]; then
            echo "sysctl $key: $(cat "$file"), not $value (/proc/sys is read-only: a container, its host's kernel decides)"
        else
            hcs_fail "sysctl $key is $(cat "$file") after applying $value"
        fi
    done <<<"$HCS_SYSCTLS"
fi
hcs_done
