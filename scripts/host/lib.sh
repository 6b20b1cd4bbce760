# Shared functions of the host setup steps (prepended to every step script; no side effects).
# Every step runs as `sudo -n env HCS_…=… bash -c "<lib.sh><step>.sh" hcs-<step>` over SSH:
# non-secret parameters come as HCS_* variables, file contents and secrets only on stdin.
# A step prints one "changed: …" line per change and ends with "<step>: unchanged" or
# "<step>: N change(s)", so a converge that changes nothing is visible as such.
set -euo pipefail
umask 077
export LC_ALL=C DEBIAN_FRONTEND=noninteractive
HCS_STEP=${0##*/}
HCS_CHANGES=0
HCS_FILES_CHANGED=""
HCS_STAGE=""

hcs_changed() { HCS_CHANGES=$((HCS_CHANGES + 1)); printf 'changed: %s\n' "$*"; }
hcs_fail() { printf '%s: error: %s\n' "$HCS_STEP" "$*" >&2; exit 1; }
hcs_done() {
    if [ "$HCS_CHANGES" -eq 0 ]; then echo "$HCS_STEP: unchanged"; else echo "$HCS_STEP: $HCS_CHANGES change(s)"; fi
}
# systemd is PID 1 (a VM); in a bare root (image build, chroot) units are enabled but not started.
hcs_systemd() { [ -d /run/systemd/system ]; }
hcs_cleanup() { if [ -n "$HCS_STAGE" ]; then rm -rf -- "$HCS_STAGE"; fi; }
trap hcs_cleanup EXIT

# hcs_release: the VM runs the Debian release the stack names (HCS_DEBIAN_RELEASE, one of
# HCS_DEBIAN_RELEASES); every release-specific choice of the steps was made for it. Checked before
# anything is touched: an unknown release or a mismatch stops the step with the key to change.
hcs_release() {
    local id version
    id=$(. /etc/os-release && printf '%s' "${ID:-}")
    version=$(. /etc/os-release && printf '%s' "${VERSION_ID:-}")
    [ "$id" = debian ] || hcs_fail "this VM runs '${id:-an unknown system}', not Debian: the host setup knows Debian $HCS_DEBIAN_RELEASES only"
    case " $HCS_DEBIAN_RELEASES " in
        *" $version "*) ;;
        *) hcs_fail "this VM runs Debian '${version:-without a release number (testing or unstable)}', which the host setup does not know (it knows $HCS_DEBIAN_RELEASES)" ;;
    esac
    [ "$version" = "$HCS_DEBIAN_RELEASE" ] \
        || hcs_fail "this VM runs Debian $version but vmDebianRelease is $HCS_DEBIAN_RELEASE: set vmDebianRelease to $version, or use a Debian $HCS_DEBIAN_RELEASE VM"
}
if [ -n "${HCS_DEBIAN_RELEASE:-}" ]; then hcs_release; fi

# hcs_meta PATH OWNER GROUP MODE: fix ownership and mode, reporting a change only if needed.
hcs_meta() {
    local path=$1 owner=$2 group=$3 mode=$4 want have
    want="$owner:$group:$((8#$mode))"
    have=$(stat -c '%U:%G:%a' -- "$path")
    have="${have%:*}:$((8#${have##*:}))"
    if [ "$have" != "$want" ]; then
        chown "$owner:$group" -- "$path"
        chmod "$mode" -- "$path"
        hcs_changed "$path owner/mode $owner:$group $mode"
    fi
}

# hcs_dir PATH OWNER GROUP MODE: the directory exists with exactly this owner and mode.
hcs_dir() {
    if [ ! -d "$1" ]; then
        (umask 022 && install -d -o "$2" -g "$3" -m "$4" -- "$1")
        hcs_changed "$1 created ($2:$3 $4)"
    else
        hcs_meta "$@"
    fi
}

# hcs_apt ARG…: apt-get, one step at a time: steps run in parallel (code-server's package, the IDE's
# proxy, the vendor agents) and apt takes its locks without waiting; the lock's timeout also waits
# out the VM's own apt timers (unattended-upgrades).
hcs_apt() { flock -w 900 /run/hcs-apt.lock apt-get -q -o DPkg::Lock::Timeout=600 "$@"; }

# hcs_pkgs PKG…: install the Debian packages that are missing (apt-get update only then).
hcs_pkgs() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then missing+=("$p"); fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        hcs_apt update >/dev/null
        hcs_apt install -y --no-install-recommends -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
        hcs_changed "installed ${missing[*]}"
    fi
}

# hcs_parents PATH OWNER GROUP: create PATH's missing ancestors top-down for the file's owner
# (0755 for root, 0700 for anyone else), so a user's ~/.config is never left to root.
hcs_parents() {
    local dir=${1%/*} missing=() d
    while [ -n "$dir" ] && [ ! -d "$dir" ]; do missing=("$dir" "${missing[@]}"); dir=${dir%/*}; done
    for d in "${missing[@]}"; do
        if [ "$2" = root ]; then install -d -m 0755 -- "$d"; else install -d -o "$2" -g "$3" -m 0700 -- "$d"; fi
        hcs_changed "$d created"
    done
}

# hcs_install_files: install the files listed in HCS_FILES ("MODE OWNER GROUP PATH" per line)
# with contents read from stdin (one base64 line per file, same order). A file is written only
# if its bytes differ; owner and mode are fixed either way. Missing parent directories are
# created for the file's owner (0755 for root, 0700 otherwise). Replaced files are kept in the
# stage until the step ends, so hcs_validate can roll back.
hcs_install_files() {
    local mode owner group path data n=0 staged
    HCS_STAGE=$(mktemp -d)
    HCS_ROLLBACK=()
    while read -r mode owner group path; do
        [ -n "$path" ] || continue
        n=$((n + 1))
        IFS= read -r data <&3 || hcs_fail "no content on stdin for $path"
        staged="$HCS_STAGE/$n"
        printf '%s' "$data" | base64 -d >"$staged" || hcs_fail "content of $path is not valid base64"
        if [ -f "$path" ] && cmp -s -- "$staged" "$path"; then
            hcs_meta "$path" "$owner" "$group" "$mode"
            continue
        fi
        hcs_parents "$path" "$owner" "$group"
        if [ -f "$path" ]; then cp -p -- "$path" "$staged.old"; HCS_ROLLBACK+=("$path:$staged.old"); else HCS_ROLLBACK+=("$path:"); fi
        install -o "$owner" -g "$group" -m "$mode" -- "$staged" "$path"
        HCS_FILES_CHANGED="$HCS_FILES_CHANGED $path"
        hcs_changed "$path written ($owner:$group $mode)"
    done 3<&0 <<<"${HCS_FILES:-}"
}

# hcs_files_changed [PATH]: true if any (or this) managed file was rewritten by this run.
hcs_files_changed() {
    if [ $# -eq 0 ]; then [ -n "$HCS_FILES_CHANGED" ]; else [[ " $HCS_FILES_CHANGED " == *" $1 "* ]]; fi
}

# hcs_previous PATH: the staged copy of PATH as it was before this run rewrote it (nothing if it
# was new or unchanged); valid until the step ends.
hcs_previous() {
    local entry
    for entry in "${HCS_ROLLBACK[@]}"; do
        if [ "${entry%%:*}" = "$1" ] && [ -n "${entry#*:}" ]; then printf '%s\n' "${entry#*:}"; fi
    done
}

# hcs_validate CMD…: run a checker of the new files; on failure restore the previous files.
hcs_validate() {
    local out entry
    if out=$("$@" 2>&1); then return 0; fi
    for entry in "${HCS_ROLLBACK[@]}"; do
        if [ -n "${entry#*:}" ]; then cp -p -- "${entry#*:}" "${entry%%:*}"; else rm -f -- "${entry%%:*}"; fi
    done
    printf '%s\n' "$out" >&2
    hcs_fail "validation failed ($*); previous files restored"
}

# hcs_unit_enabled UNIT: enable a unit (works without a running systemd, e.g. in an image root).
hcs_unit_enabled() {
    if ! systemctl is-enabled --quiet "$1" 2>/dev/null; then
        systemctl enable --quiet "$1" 2>/dev/null || systemctl --root=/ enable --quiet "$1"
        hcs_changed "$1 enabled"
    fi
}

# hcs_restart_if_changed UNIT [PATH…]: restart a running-system unit after its files (any managed
# file of the step, or one of PATHs) changed.
hcs_restart_if_changed() {
    local unit=$1 path changed=""
    shift
    if [ $# -eq 0 ]; then hcs_files_changed && changed=1; fi
    for path in "$@"; do if hcs_files_changed "$path"; then changed=1; fi; done
    if [ -n "$changed" ] && hcs_systemd; then
        systemctl daemon-reload
        systemctl restart "$unit"
        echo "restarted $unit"
    fi
}
