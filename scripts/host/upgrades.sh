# upgrades: unattended security upgrades, daily.
hcs_install_files
hcs_validate apt-config dump
hcs_unit_enabled apt-daily.timer
hcs_unit_enabled apt-daily-upgrade.timer
hcs_done
