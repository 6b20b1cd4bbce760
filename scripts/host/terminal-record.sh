# terminal-record: the IDE terminal's record in the journal (components/host/render_terminal.py says
# what it records and what it cannot). HCS_FILES: the hook, root-owned, checked by `bash -n`;
# HCS_RECORDER: its path, which Debian's /etc/bash.bashrc (every interactive bash reads it before the
# user's own ~/.bashrc) is made to source, once.
hcs_install_files
hcs_validate bash -n "$HCS_RECORDER"
line="[ -r $HCS_RECORDER ] && . $HCS_RECORDER  # hardened-code-server: the IDE terminal's record"
if ! grep -qxF -- "$line" /etc/bash.bashrc; then
    printf '%s\n' "$line" >>/etc/bash.bashrc
    hcs_changed "/etc/bash.bashrc sources $HCS_RECORDER"
fi
hcs_done
