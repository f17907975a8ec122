"""Expand template.yaml with the SAM translator, offline, into plain CloudFormation.

Some template errors (circular dependencies, a `!GetAtt` on a generated resource, policy documents
produced by SAM policy templates) only show in the expanded template, so `make lint` runs cfn-lint on
the output of this script as well (the expansion itself is spotmap/expansion.py, which the local
cloud also authorizes requests with), and the IAM tests assert on it.

Nothing here talks to AWS: the managed policy map is the one bundled with the translator, the region
comes from a local boto3 session, and local paths are replaced the way `sam validate` replaces them
(`CodeUri` becomes a placeholder S3 URI; the state machine's `DefinitionUri` file is inlined as its
`Definition`, so its `DefinitionSubstitutions` are expanded exactly as `sam deploy` would).

cfn-lint does not validate a definition it cannot read: the translator turns it into a
`DefinitionString` of `Fn::Join` with the substitutions left to CloudFormation. `--inlined-output`
writes a second template in which each state machine's definition is the JSON object Step Functions
will parse (`Definition`, substitutions applied with ARN-shaped values), so cfn-lint's Step Functions
schema (E3601) checks it; `--definition-output` writes that definition alone (for asl-validator).

    python -m tools.expand_template [template.yaml] [-o expanded.json]
        [--inlined-output expanded-inlined.json] [--definition-output job.asl.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from spotmap.expansion import (  # noqa: F401 - the names the IAM tests and make lint use
    DEFAULT_REGION,
    PLACEHOLDER_BUCKET,
    ROOT,
    TEMPLATE,
    expand,
    load_template,
    prepare,
)

# Only to give substituted ARNs their real shape; nothing here is account-specific.
PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_STACK = "spotmap"
STATE_MACHINE_TYPE = "AWS::StepFunctions::StateMachine"
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


class InliningError(ValueError):
    """A state machine definition cannot be inlined (an unknown substitution or intrinsic)."""


def _physical_name(logical_id: str, resource: dict[str, Any], name_property: str) -> str:
    name = (resource.get("Properties") or {}).get(name_property)
    # A generated name (CloudFormation appends a random suffix) or one built with intrinsics: any
    # string of the right shape does for validation.
    return name if isinstance(name, str) else f"{PLACEHOLDER_STACK}-{logical_id}"


def _arn_of(logical_id: str, resources: dict[str, Any], region: str) -> str:
    resource = resources.get(logical_id)
    if resource is None:
        raise InliningError(f"Fn::GetAtt of unknown resource {logical_id!r}")
    prefix = f"arn:aws:{{}}:{region}:{PLACEHOLDER_ACCOUNT}"
    kind = resource["Type"]
    if kind == "AWS::Lambda::Function":
        return prefix.format("lambda") + f":function:{_physical_name(logical_id, resource, 'FunctionName')}"
    if kind == STATE_MACHINE_TYPE:
        name = _physical_name(logical_id, resource, "StateMachineName")
        return prefix.format("states") + f":stateMachine:{name}"
    if kind == "AWS::SQS::Queue":
        return prefix.format("sqs") + f":{_physical_name(logical_id, resource, 'QueueName')}"
    if kind == "AWS::SNS::Topic":
        return prefix.format("sns") + f":{_physical_name(logical_id, resource, 'TopicName')}"
    if kind == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{_physical_name(logical_id, resource, 'BucketName').lower()}"
    if kind == "AWS::ECS::Cluster":
        return prefix.format("ecs") + f":cluster/{_physical_name(logical_id, resource, 'ClusterName')}"
    raise InliningError(f"no ARN shape known for {kind} ({logical_id})")


def _substitution_value(name: str, value: Any, template: dict[str, Any], region: str) -> str:
    """A DefinitionSubstitutions value as a string of the shape CloudFormation will substitute."""
    resources = template.get("Resources", {})
    if isinstance(value, str | int | float | bool):
        return str(value).lower() if isinstance(value, bool) else str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            if attribute == "Arn":
                return _arn_of(logical_id, resources, region)
        if function == "Ref" and argument in resources:
            resource = resources[argument]
            kind = resource["Type"]
            if kind == "AWS::Lambda::Function":
                return _physical_name(argument, resource, "FunctionName")
            if kind == "AWS::S3::Bucket":
                return _physical_name(argument, resource, "BucketName").lower()
            if kind in (STATE_MACHINE_TYPE, "AWS::SNS::Topic"):
                return _arn_of(argument, resources, region)
        if function == "Ref" and argument in template.get("Parameters", {}):
            default = template["Parameters"][argument].get("Default")
            if default is not None:
                return str(default)
    raise InliningError(f"DefinitionSubstitutions.{name}: cannot resolve {value!r} offline")


def _definition_text(properties: dict[str, Any]) -> str:
    if "Definition" in properties:
        return json.dumps(properties["Definition"])
    text = properties.get("DefinitionString")
    if isinstance(text, str):
        return text
    if isinstance(text, dict) and set(text) == {"Fn::Join"}:
        separator, parts = text["Fn::Join"]
        if all(isinstance(part, str) for part in parts):
            return str(separator).join(parts)
    raise InliningError(f"DefinitionString is not a plain string or a Fn::Join of strings: {text!r}"[:300])


def inline_definitions(
    expanded: dict[str, Any], *, region: str = DEFAULT_REGION
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a copy of `expanded` whose state machines carry their definition as a `Definition` object with
    DefinitionSubstitutions applied, {logical id: that definition})."""
    inlined = copy.deepcopy(expanded)
    definitions: dict[str, Any] = {}
    for logical_id, resource in inlined.get("Resources", {}).items():
        if resource.get("Type") != STATE_MACHINE_TYPE:
            continue
        properties = resource.setdefault("Properties", {})
        text = _definition_text(properties)
        substitutions = {
            name: _substitution_value(name, value, expanded, region)
            for name, value in (properties.pop("DefinitionSubstitutions", None) or {}).items()
        }
        missing = sorted(set(_PLACEHOLDER.findall(text)) - set(substitutions))
        if missing:
            raise InliningError(f"{logical_id}: placeholders without a substitution: {missing}")
        for name, value in substitutions.items():
            text = text.replace("${" + name + "}", json.dumps(value)[1:-1])  # JSON-escaped in place
        definition = json.loads(text)
        properties.pop("DefinitionString", None)
        properties["Definition"] = definition
        definitions[logical_id] = definition
    return inlined, definitions


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE)
    parser.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument(
        "--inlined-output",
        type=Path,
        help="also write the expanded template with each state machine definition inlined as Definition",
    )
    parser.add_argument(
        "--definition-output",
        type=Path,
        help="also write the (single) state machine definition, substitutions applied",
    )
    args = parser.parse_args(argv)
    path: Path = args.template
    expanded = expand(load_template(path), base_dir=path.resolve().parent, region=args.region)
    if args.output:
        _write_json(args.output, expanded)
    else:
        sys.stdout.write(json.dumps(expanded, indent=2, sort_keys=False) + "\n")
    if args.inlined_output or args.definition_output:
        inlined, definitions = inline_definitions(expanded, region=args.region)
        if args.inlined_output:
            _write_json(args.inlined_output, inlined)
        if args.definition_output:
            if len(definitions) != 1:
                parser.error(f"--definition-output needs exactly one state machine, found {len(definitions)}")
            _write_json(args.definition_output, next(iter(definitions.values())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
