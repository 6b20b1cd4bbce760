"""Files the program puts on machines, as data and as a visible record in the resource graph.

Renderers return `HostFile`s; whoever installs them also registers a `FileRecord` per file, so
every file a deployment writes is listed in the state and in the offline plan
(`build/plan/files/<role>/<path>`). A secret file's content is a secret Output and stays masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi

FILE_TYPE = "hcs:files:File"
_MODE = re.compile(r"^0[0-7]{3}$")


@dataclass(frozen=True)
class HostFile:
    """One file on one machine: where it goes, who owns it, and its exact content.

    `role` names the machine ("vm", "front-proxy"); `content` is text, an Output for text known
    only at deploy time (e.g. an Entra client ID), or a secret Output for files that hold secrets
    (then `secret=True`, so nothing renders it in plaintext).
    """

    role: str
    path: str
    content: Any  # str | pulumi.Output[str]
    owner: str = "root"
    group: str = "root"
    mode: str = "0644"
    secret: bool = False

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or "/../" in self.path or self.path.endswith("/"):
            raise ValueError(f"HostFile.path: expected an absolute file path, got {self.path!r}")
        if not _MODE.match(self.mode):
            raise ValueError(f"HostFile.mode: expected an octal mode such as 0640, got {self.mode!r}")
        if self.secret and not isinstance(self.content, pulumi.Output):
            raise ValueError(f"HostFile.content of {self.path}: a secret file takes a secret Output, not plain text")
        if not isinstance(self.content, (str, pulumi.Output)):
            raise ValueError(f"HostFile.content of {self.path}: expected text or an Output of text")


class FileRecord(pulumi.ComponentResource):
    """Records one `HostFile` in the graph (token `hcs:files:File`); installs nothing itself.

    Inputs: role, path, owner, group, mode, content (secret for secret files). Installation is the
    job of the component that owns the machine; the record is what `make plan` and reviewers see.
    """

    def __init__(self, name: str, file: HostFile, opts: pulumi.ResourceOptions | None = None) -> None:
        content = pulumi.Output.secret(file.content) if file.secret else file.content
        props = {
            "role": file.role,
            "path": file.path,
            "owner": file.owner,
            "group": file.group,
            "mode": file.mode,
            "content": content,
        }
        super().__init__(FILE_TYPE, name, props, opts)
        # The engine hands stack policies a component's *outputs*, not the props given here:
        # registering them again is what lets the policy pack see the file (e.g. the SSH drop-in).
        self.register_outputs(props)
