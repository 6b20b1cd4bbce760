"""What the repository runs besides the program itself.

`host/` (the steps run on the VM) and `policy/` (the CrossGuard pack) ship with every deployment;
`tools/` (the developer commands behind `make`) and `lab/` (the booted VM, its network, the stand-ins
and the demo built from them) stay on the developer's machine and in CI.
"""

from pathlib import Path

#: The repository's root, which tools and the lab read the program's files from.
REPOSITORY = Path(__file__).resolve().parent.parent
