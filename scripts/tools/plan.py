"""Offline plan: evaluate the real program for a stack, without the Pulumi CLI or credentials.

    python -m scripts.tools.plan --stack dev [--out build/plan]

Prints the resource tree and the layered posture, and writes `resources.json`, `outputs.json`,
`posture.md` and `files/<role>/<path>` (every file the program would put on a machine). Secrets, including the marked placeholders
used for secrets the stack file does not hold, appear only as "[secret]". A bad stack config
exits with status 2 and one `config error: <key>: <what is expected>` line per problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

from components.files import FILE_TYPE
from components.settings import ConfigError
from scripts import REPOSITORY
from scripts.tools import posture
from scripts.tools.offline import PlanResult, Registered, load_stack_config, run_program


def render_tree(resources: list[Registered]) -> str:
    """The registrations as an indented tree: `type  name` under their parent."""
    children: dict[str | None, list[Registered]] = defaultdict(list)
    for resource in resources:
        children[resource.parent].append(resource)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for resource in children.get(parent, []):
            note = f"  (read {resource.read_id})" if resource.read_id else ""
            lines.append(f"{'  ' * depth}{resource.type}  {resource.name}{note}")
            walk(resource.urn, depth + 1)

    walk(None, 0)
    return "\n".join(lines)


def write_plan(result: PlanResult, out: Path) -> list[Path]:
    """Write resources.json, outputs.json and files/ under `out` (replacing an older plan)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "files").mkdir(parents=True)
    resources = [
        {k: v for k, v in dataclasses.asdict(r).items() if k in ("urn", "type", "name", "parent", "inputs")}
        | {"dependencies": sorted(r.dependencies)} | ({"readId": r.read_id} if r.read_id else {})
        for r in result.resources
    ]
    (out / "resources.json").write_text(json.dumps(resources, indent=2, sort_keys=True) + "\n")
    (out / "outputs.json").write_text(json.dumps(result.outputs, indent=2, sort_keys=True) + "\n")
    written: list[Path] = []
    for record in result.of_type(FILE_TYPE):
        target = out / "files" / record.inputs["role"] / record.inputs["path"].lstrip("/")
        if target in written:
            raise ValueError(f"two files for {record.inputs['role']}:{record.inputs['path']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(record.inputs["content"])
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--out", type=Path, default=REPOSITORY / "build" / "plan", help="output directory")
    parser.add_argument("--project-dir", type=Path, default=REPOSITORY, help="where Pulumi.yaml and the stack file are")
    args = parser.parse_args(argv)

    try:
        config = load_stack_config(args.stack, args.project_dir)
    except FileNotFoundError as err:
        print(f"plan: {err}", file=sys.stderr)
        return 2
    try:
        result = run_program(config, args.project_dir)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 2

    # Outputs resolve concurrently, so the registration order varies from run to run; in URN order,
    # two plans of one config compare byte for byte (a review diffs them).
    result = PlanResult(sorted(result.resources, key=lambda r: r.urn), result.outputs)
    print(f"Stack {config.project}/{config.stack}: {len(result.resources)} resources\n")
    print(render_tree(result.resources))
    files = write_plan(result, args.out)
    edge = config.values["edge"]
    rows = posture.posture(result, edge)
    (args.out / "posture.md").write_text(posture.markdown(rows, config.stack, edge, posture.egress_flows(result)))
    print(f"\nPosture (edge: {edge}):\n{posture.terminal(rows)}")
    print(f"\nOutputs: {json.dumps(result.outputs, sort_keys=True)}")
    if config.placeholders:
        print(
            "\nNOTE: secrets not set in the stack file were replaced by marked placeholders "
            f"(shown as [secret]): {', '.join(config.placeholders)}"
        )
    print(f"\nWrote {args.out}/resources.json, outputs.json, posture.md and {len(files)} file(s) under files/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
