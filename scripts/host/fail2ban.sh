# fail2ban: the sshd jail (journal; see render.fail2ban for why the gateway has none), checked with
# `fail2ban-client -t` before the service reloads them.
hcs_install_files
hcs_validate fail2ban-client -t
hcs_unit_enabled fail2ban.service
hcs_restart_if_changed fail2ban.service
hcs_done
