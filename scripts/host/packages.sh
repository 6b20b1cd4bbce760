# packages: the Debian packages every later step relies on (missing ones only).
# HCS_PACKAGES: space-separated package names. HCS_FILES: optional apt proxy configuration,
# installed first because with a locked egress the proxy is the only way to a mirror.
hcs_install_files
# shellcheck disable=SC2086 # a word list by design
hcs_pkgs $HCS_PACKAGES
hcs_done
