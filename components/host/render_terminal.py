"""The IDE terminal's record in the journal (pure: settings in, file text out; no Pulumi, no I/O).

Why a bash hook and not tlog or auditd (checked December 2026):
- Debian's `tlog` (12.1, Debian 12) is not in Debian 13, the product's default release; on 12 it
  would record the terminal's bytes (escape sequences and all), not commands.
- auditd (execve with the login uid) is exact for every program, but the kernel refuses audit inside
  a container, so the demo could not show it; the auditor's baseline adds its rules on real VMs,
  which complement this record (every exec, not only what was typed).
- So the IDE user's interactive bash, which is what code-server's terminal starts, writes one journal
  line when it opens, one per command typed, and one when it closes. journald stamps each line with
  the sender's uid and unit (`_UID`, `_SYSTEMD_UNIT`: code-server@<ideUser>.service) itself, from the
  kernel: the account and the unit are exact whatever the line says.

What it is not: a control the user cannot switch off. The shell is the user's own process: another
terminal profile (sh, python), `bash --norc`, `unset PROMPT_COMMAND`, a command typed with a leading
space under Debian's default `HISTCONTROL=ignoreboth` (not in the history, so not recorded), or a
repeat of the last command, all go unrecorded. It is a record of cooperative use; auditd is the one
that is not the user's to stop. And who typed it is correlation, not fact: the Unix account is shared
by everyone of the allowed group; the person is the one the gateway and oauth2-proxy logged for the
IDE's connection at that time (exact only once each person has an account). Per command, not per
terminal: code-server keeps a terminal running when the browser goes, and whoever signs in next
reattaches to it (seen on the demo), so the person who opened a terminal need not be who typed in it.
"""

from __future__ import annotations

from components.host.render import HEADER

#: The hook, root-owned; Debian's /etc/bash.bashrc (read by every interactive bash, VS Code's shell
#: integration included, before the user's own ~/.bashrc) sources it.
TERMINAL_RECORDER = "/etc/code-server/hcs-terminal.bash"
#: The journal's syslog identifier of the record (`journalctl -t hcs-terminal`).
TERMINAL_LOG_TAG = "hcs-terminal"


def terminal_recorder(ide_user: str | tuple[int, int]) -> str:
    """`TERMINAL_RECORDER`: for `ide_user`'s interactive bash only (for a team: any account of the
    workspaces' uid range), a journal line at open, per command, at close.

    Each line names the session (`<shell pid>-<start time>`), so the commands of one terminal can
    be read together; one `logger` per shell sends them (see the comment inside); the open line carries the terminal device and the parent (code-server's pty host).
    The first prompt only notes the history's position (the last line of ~/.bash_history is not this
    session's command).
    """
    tag = TERMINAL_LOG_TAG
    if isinstance(ide_user, str):
        who, test = ide_user, f"$(id -un) == {ide_user}"
    else:
        who, test = f"a workspace account (uid {ide_user[0]}-{ide_user[1]})", f"$(id -u) -ge {ide_user[0]} && $(id -u) -le {ide_user[1]}"
    return f"""{HEADER}# The IDE terminal's record: one journal line ({tag}) when an interactive bash of {who} opens,
# one per command typed, one when it closes. journald adds the account and unit itself (_UID,
# _SYSTEMD_UNIT). The user's own shell runs it: a record of cooperative use, not a control.
if [[ $- == *i* && {test} && -z ${{__hcs_terminal_session:-}} ]]; then
    __hcs_terminal_session="$$-$(date +%s)"
    __hcs_terminal_last=""
    # One logger per shell, alive as long as it is: journald reads the sender's unit from /proc, which a
    # logger started per line has often left already (its lines then lack _SYSTEMD_UNIT).
    exec {{__hcs_terminal_fd}}> >(exec logger -t {tag} --id=$$ 2>/dev/null)
    __hcs_terminal_log() {{ printf 'session=%s %s\\n' "$__hcs_terminal_session" "$*" >&"$__hcs_terminal_fd" 2>/dev/null || true; }}
    __hcs_terminal_record() {{
        local number=0 command=""
        if [[ $(HISTTIMEFORMAT='' builtin history 1) =~ ^[[:space:]]*([0-9]+)[*]?[[:space:]]+(.*)$ ]]; then
            number=${{BASH_REMATCH[1]}} command=${{BASH_REMATCH[2]}}
        fi
        if [[ -z $__hcs_terminal_last ]]; then __hcs_terminal_last=$number; return 0; fi
        [[ $number != "$__hcs_terminal_last" ]] || return 0
        __hcs_terminal_last=$number
        __hcs_terminal_log "command: ${{command//$'\\n'/ ; }}"
    }}
    __hcs_terminal_log "opened tty=$(tty) parent=$PPID cwd=$PWD"
    trap '__hcs_terminal_log closed' EXIT
    PROMPT_COMMAND="__hcs_terminal_record${{PROMPT_COMMAND:+; $PROMPT_COMMAND}}"
fi
"""
