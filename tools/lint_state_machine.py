"""Lint the state machine as Step Functions will parse it: cfn-lint on the expanded template with the
definition inlined (tools/expand_template.py --inlined-output), and asl-validator (npm, pinned in
package.json / package-lock.json, installed by `make lint` with `npm ci`) on the substituted definition.

cfn-lint checks the definition against its Step Functions schema (rule E3601) and everything else
about the template; asl-validator checks the schema too, and what a schema cannot: that every
Next/Default/StartAt names a state of its scope, that paths are valid JSONPath, and so on.

Each finding fails the run, except the known false positives listed in FALSE_POSITIVES, each with the
reason it is one; a suppression matches one precise shape of finding, never a whole rule.

    python -m tools.lint_state_machine INLINED_TEMPLATE DEFINITION
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ASL_VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
LINT_REGION = "us-east-1"


@dataclass(frozen=True)
class Finding:
    rule: str
    message: str
    path: tuple[str | int, ...]

    def __str__(self) -> str:
        return f"{self.rule} {self.message} at {'/'.join(str(part) for part in self.path)}"


@dataclass(frozen=True)
class FalsePositive:
    rule: str
    reason: str
    matches: Callable[[Finding, dict[str, Any]], bool]


def _node_at(document: Any, path: Sequence[str | int]) -> Any:
    node = document
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _io_path_of_a_jsonpath_succeed_state(finding: Finding, template: dict[str, Any]) -> bool:
    if finding.rule != "E3601" or not finding.path or finding.path[-1] not in ("InputPath", "OutputPath"):
        return False
    if finding.message != f"Additional properties are not allowed ({finding.path[-1]!r} was unexpected)":
        return False
    state = _node_at(template, finding.path[:-1])
    return (
        isinstance(state, dict) and state.get("Type") == "Succeed" and state.get("QueryLanguage") != "JSONata"
    )


FALSE_POSITIVES = (
    FalsePositive(
        rule="E3601",
        # The child's output is its outcome record: ItemSucceeded has "OutputPath": "$.outcome".
        reason=(
            "InputPath/OutputPath on a Succeed state (JSONPath). Both are common state fields, which "
            "Succeed states take 'in addition to' their own "
            "(https://docs.aws.amazon.com/step-functions/latest/dg/state-succeed.html, "
            "https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-common-fields.html;"
            " the ASL spec's state type table, https://states-language.net/spec.html#state-type-table), and "
            "asl-validator accepts them (ChristopheBougere/asl-validator#58). cfn-lint's "
            "step_functions/statemachine.json lists only Comment, Output and Type for Succeed."
        ),
        matches=_io_path_of_a_jsonpath_succeed_state,
    ),
)


def cfn_lint_findings(template: dict[str, Any]) -> list[Finding]:
    """Every cfn-lint finding on the template (all rules, as `cfn-lint` would report them)."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(template, indent=1), config=ManualArgs(regions=[LINT_REGION]))
    return [Finding(match.rule.id, match.message, tuple(match.path or ())) for match in matches]


def unexpected(findings: list[Finding], template: dict[str, Any]) -> tuple[list[Finding], list[Finding]]:
    """(findings that fail the lint, findings suppressed as known false positives)."""
    failing: list[Finding] = []
    suppressed: list[Finding] = []
    for finding in findings:
        known = any(fp.rule == finding.rule and fp.matches(finding, template) for fp in FALSE_POSITIVES)
        (suppressed if known else failing).append(finding)
    return failing, suppressed


@dataclass(frozen=True)
class AslResult:
    valid: bool
    output: str


def asl_validate(definition_path: Path, validator: Path = ASL_VALIDATOR) -> AslResult:
    """asl-validator's verdict on a definition file (JSON)."""
    if not validator.exists():
        raise FileNotFoundError(f"{validator} is missing: run `npm ci` (make lint does)")
    completed = subprocess.run(
        [str(validator), "--json-path", str(definition_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return AslResult(completed.returncode == 0, (completed.stdout + completed.stderr).strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inlined_template", type=Path)
    parser.add_argument("definition", type=Path)
    args = parser.parse_args(argv)
    template = json.loads(args.inlined_template.read_text(encoding="utf-8"))

    failing, suppressed = unexpected(cfn_lint_findings(template), template)
    for finding in suppressed:
        print(f"cfn-lint (known false positive, suppressed): {finding}")
    for finding in failing:
        print(f"cfn-lint: {finding}", file=sys.stderr)
    asl = asl_validate(args.definition)
    print(asl.output, file=sys.stdout if asl.valid else sys.stderr)
    if failing or not asl.valid:
        return 1
    print(f"state machine definition: cfn-lint and asl-validator found nothing ({args.definition})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
