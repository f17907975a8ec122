"""Check what `sam build` produced: one artifact per function of template.yaml, each holding its
handler's package, `jobcore`, dependencies built for the function's runtime (pydantic-core's binary
for that CPython version and architecture), and nothing that must not ship (the local cloud).

    python -m tools.check_artifacts [.aws-sam/build [LogicalId ...]]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.expand_template import ROOT, load_template

FORBIDDEN = ("spotmap", "tests", "worker", "tools")
ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


def check(build_dir: Path, only: set[str] | None = None) -> list[str]:
    """Return the problems found (empty when the build is good); `only`: these functions' artifacts."""
    template = load_template(ROOT / "template.yaml")
    function_globals = template.get("Globals", {}).get("Function", {})
    problems: list[str] = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function" or (only and logical_id not in only):
            continue
        props = resource.get("Properties", {})
        artifact = build_dir / logical_id
        if not artifact.is_dir():
            problems.append(f"{logical_id}: no artifact at {artifact}")
            continue
        handler = props.get("Handler", function_globals.get("Handler", ""))
        module = handler.rsplit(".", 1)[0].replace(".", "/")
        if not (artifact / f"{module}.py").is_file():
            problems.append(f"{logical_id}: handler module {module}.py missing")
        if not (artifact / "jobcore" / "__init__.py").is_file():
            problems.append(f"{logical_id}: jobcore missing")
        runtime = props.get("Runtime", function_globals.get("Runtime", ""))
        version = runtime.removeprefix("python").replace(".", "")
        arch = ARCH[(props.get("Architectures") or function_globals.get("Architectures") or ["x86_64"])[0]]
        binary = f"_pydantic_core.cpython-{version}-{arch}-linux-gnu.so"
        if not (artifact / "pydantic_core" / binary).is_file():
            found = sorted(p.name for p in (artifact / "pydantic_core").glob("_pydantic_core*"))
            problems.append(f"{logical_id}: pydantic_core/{binary} missing (found {found})")
        for name in FORBIDDEN:
            if (artifact / name).exists():
                problems.append(f"{logical_id}: {name}/ must not ship in a Lambda artifact")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    build_dir = Path(args[0]) if args else ROOT / ".aws-sam" / "build"
    only = set(args[1:])  # `make build FUNCTIONS=...`: the functions built
    problems = check(build_dir, only or None)
    for problem in problems:
        print(f"artifact check: {problem}", file=sys.stderr)
    if not problems:
        which = ", ".join(sorted(only)) if only else "every function"
        print(f"artifact check: {which} artifact in {build_dir} is complete")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
