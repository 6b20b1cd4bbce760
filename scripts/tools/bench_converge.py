"""Measure the host converge on a fresh real root: first run, second run, SSH sessions per `pulumi up`.

    python -m scripts.tools.bench_converge                # needs root (see scripts/lab/vm); ~30 s
    python -m scripts.tools.bench_converge --release 12   # the same on a Debian 12 root (default: 13)

The steps are the `remote.Command`s of the program's mocked resource graph, run over real SSH in
dependency order, one session each, exactly as pulumi-command runs them. The root starts without
the packages a fresh VM lacks (Docker, fail2ban, UFW, restic, …), so the first converge installs
them from Debian through the VM's apt proxy, its only way out. Besides wall times it
prints how many sessions each kind of `pulumi up` opens: the first (every step), a no-op (none:
pulumi-command neither reads nor re-runs a command whose inputs are unchanged) and a change of
one setting (only the steps whose command or stdin hash changed).
"""

from __future__ import annotations

import argparse
import sys

from components.settings import debian
from scripts.lab.converge.realhost import host_under_test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", type=int, choices=sorted(debian.RELEASES), default=debian.DEFAULT,
                        help="the test root's Debian release (vmDebianRelease)")
    release = parser.parse_args().release
    with host_under_test(vmDebianRelease=str(release)) as host:
        print(f"Debian {release} test root ready in " + ", ".join(f"{k} {v:.1f} s" for k, v in host.root.timings.items()))
        runs = []
        for label in ("first", "second"):
            runner = host.root.runner()
            steps, seconds = host.converge(runner)
            changes = sum(r.result.stdout.count("changed: ") for r in steps)
            runs.append(seconds)
            fetched = host.apt_proxy.bytes
            print(f"{label} converge: {seconds:.2f} s, {runner.sessions} SSH sessions, {changes} changes, "
                  f"{fetched / 1e6:.1f} MB through the apt proxy so far ({sum(host.apt_proxy.requests.values())} requests)")
            for r in steps:
                print(f"    {r.name:<18} {r.result.seconds:5.2f} s  {r.result.stdout.strip().splitlines()[-1]}")
        print(f"second / first: {100 * runs[1] / runs[0]:.0f} %")
        base = {s.name: s for s in host.steps()}
        changed = {s.name for s in host.steps(gatewayPort="8881") if (s.create, s.stdin) != (base[s.name].create, base[s.name].stdin)}
        print(f"SSH sessions per pulumi up: first {len(base)}, no-op 0, gatewayPort change {len(changed)} ({', '.join(sorted(changed))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
