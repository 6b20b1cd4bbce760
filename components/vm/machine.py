"""What every provider's machine is made from (one shape for `ProxmoxClone` and `DropletVm`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from components.settings.topology import Topology

S = TypeVar("S")


@dataclass(frozen=True)
class MachineArgs(Generic[S]):
    """The deployment's hostname, the provider's settings `S`, the topology and the (secret) user-data."""

    hostname: str
    settings: S
    topology: Topology
    user_data: Any  # pulumi.Output[str], secret
