# layout: the ownership map of the design (and the gateway's log directory Wazuh ships, and the
# socket directories of oauth2-proxy and code-server, also written as a tmpfiles.d file so they
# come back after a reboot empties /run).
# HCS_PATHS: lines "KIND MODE OWNER GROUP PATH" with KIND dir or file; a missing file is created
# empty so its mode holds before the gateway writes it, and never truncated afterwards.
while read -r kind mode owner group path; do
    [ -n "$path" ] || continue
    case $kind in
        dir) hcs_dir "$path" "$owner" "$group" "$mode" ;;
        file)
            if [ ! -e "$path" ]; then
                install -o "$owner" -g "$group" -m "$mode" /dev/null "$path"; hcs_changed "$path created empty ($owner:$group $mode)"
            else
                hcs_meta "$path" "$owner" "$group" "$mode"
            fi ;;
        *) hcs_fail "unknown kind $kind for $path" ;;
    esac
done <<<"$HCS_PATHS"
hcs_install_files
hcs_done
