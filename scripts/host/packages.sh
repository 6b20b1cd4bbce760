# packages: the Debian packages every later step relies on (missing ones only), and the
# configurations their first start must already see. HCS_PACKAGES: space-separated package
# names. HCS_FILES, installed before the packages: the apt proxy configuration (with a locked
# egress the proxy is the only way to a mirror); ulogd2's configuration and drop-in (the
# firewall's refusals into the journal); Docker's daemon.json (without it the engine's first start
# turns on IP forwarding, makes a bridge and writes netfilter rules; on Debian 13 it fails in a
# container that cannot write /proc/sys, and gives up after three tries).
hcs_install_files
# systemd (Debian 13) loads libbpf when it starts: without it SocketBindDeny= and
# RestrictNetworkInterfaces= do nothing. Installed now, it takes effect after a re-exec (before
# the code-server step starts the unit that needs it).
libbpf_new=""
case " $HCS_PACKAGES " in
    *" libbpf1 "*) dpkg-query -W -f='${db:Status-Status}' libbpf1 2>/dev/null | grep -qx installed || libbpf_new=1 ;;
esac
# shellcheck disable=SC2086 # a word list by design
hcs_pkgs $HCS_PACKAGES
if [ -n "$libbpf_new" ] && hcs_systemd; then
    systemctl daemon-reexec
    hcs_changed "systemd re-executed to load libbpf1"
fi
hcs_validate python3 -c 'import json, sys; json.load(open(sys.argv[1]))' /etc/docker/daemon.json
hcs_unit_enabled docker.service
hcs_restart_if_changed docker.service /etc/docker/daemon.json
hcs_unit_enabled ulogd2.service
hcs_restart_if_changed ulogd2.service /etc/ulogd.conf /etc/systemd/system/ulogd2.service.d/10-hcs.conf
if hcs_systemd; then
    for unit in docker.service ulogd2.service; do
        if ! systemctl is-active --quiet "$unit"; then
            systemctl reset-failed "$unit" 2>/dev/null || true
            systemctl start "$unit"; hcs_changed "$unit started"
        fi
    done
    systemctl is-active --quiet ulogd2.service || hcs_fail "ulogd2.service is not active: the firewall's refusals would not be logged"
    systemctl is-active --quiet docker.service || hcs_fail "docker.service is not active: the gateway's containers could not run"
fi
hcs_done
