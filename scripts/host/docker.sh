# docker: the engine's daemon.json (no-new-privileges for every container, bounded logs).
hcs_install_files
hcs_validate python3 -c 'import json, sys; json.load(open(sys.argv[1]))' /etc/docker/daemon.json
hcs_unit_enabled docker.service
hcs_restart_if_changed docker.service
hcs_done
