# fail2ban: the sshd jail (journal) and the gateway jail (Caddy's JSON access log), checked with
# `fail2ban-client -t` before the service reloads them.
hcs_install_files
hcs_validate fail2ban-client -t
hcs_unit_enabled fail2ban.service
hcs_restart_if_changed fail2ban.service
hcs_done
