"""Expand template.yaml with the SAM translator, offline, into plain CloudFormation.

Some template errors (circular dependencies, a `!GetAtt` on a generated resource, policy documents
produced by SAM policy templates) only show in the expanded template, so `make lint` runs cfn-lint on
the output of this script as well, and the IAM tests assert on it.

Nothing here talks to AWS: the managed policy map is the one bundled with the translator, the region
comes from a local boto3 session, and local paths are replaced the way `sam validate` replaces them
(`CodeUri` becomes a placeholder S3 URI; the state machine's `DefinitionUri` file is inlined as its
`Definition`, so its `DefinitionSubstitutions` are expanded exactly as `sam deploy` would).

    python -m tools.expand_template [template.yaml] [-o expanded.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from spotmap.expansion import (  # noqa: F401 - the names the IAM tests and make lint use
    DEFAULT_REGION,
    PLACEHOLDER_BUCKET,
    ROOT,
    TEMPLATE,
    expand,
    load_template,
    prepare,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)
    path: Path = args.template
    expanded = expand(load_template(path), base_dir=path.resolve().parent, region=args.region)
    text = json.dumps(expanded, indent=2, sort_keys=False) + "\n"
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
