"""Expand template.yaml with the SAM translator, offline, into plain CloudFormation.

The local cloud authorizes requests against the roles of this expansion (spotmap/access.py), so it
lives in the spotmap package; tools/expand_template.py is its command line.

Some template errors (circular dependencies, a `!GetAtt` on a generated resource, policy documents
produced by SAM policy templates) only show in the expanded template, so `make lint` runs cfn-lint on
the output of tools/expand_template.py as well, and the IAM tests assert on it.

Nothing here talks to AWS: the managed policy map is the one bundled with the translator, the region
comes from a local boto3 session, and local paths are replaced the way `sam validate` replaces them
(`CodeUri` becomes a placeholder S3 URI; the state machine's `DefinitionUri` file is inlined as its
`Definition`, so its `DefinitionSubstitutions` are expanded exactly as `sam deploy` would).

    python -m tools.expand_template [template.yaml] [-o expanded.json]
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from spotmap.template import load_yaml

ROOT = Path(__file__).resolve().parent.parent  # the project (an editable install of spotmap)
TEMPLATE = ROOT / "template.yaml"
DEFAULT_REGION = "us-east-1"
PLACEHOLDER_BUCKET = "spotmap-offline-expansion"

_MANAGED_POLICIES = resources.files("samtranslator") / "internal" / "data" / "aws_managed_policies.json"


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parse a SAM/CloudFormation YAML or JSON template into plain dicts (long-form intrinsics)."""
    data = load_yaml(path)  # the local cloud's loader: one reading of CloudFormation's short forms
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a template")
    return data


def _is_local(uri: Any) -> bool:
    return isinstance(uri, str) and not uri.startswith("s3://")


def _load_definition(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def prepare(template: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Replace local artifact paths so the translator accepts the template without packaging it."""
    prepared = copy.deepcopy(template)
    function_globals = prepared.get("Globals", {}).get("Function", {})
    if _is_local(function_globals.get("CodeUri")):
        function_globals["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{function_globals['CodeUri']}"
    for resource in prepared.get("Resources", {}).values():
        properties = resource.get("Properties") or {}
        if resource.get("Type") == "AWS::Serverless::Function" and _is_local(properties.get("CodeUri")):
            properties["CodeUri"] = f"s3://{PLACEHOLDER_BUCKET}/{properties['CodeUri']}"
        if resource.get("Type") == "AWS::Serverless::StateMachine" and _is_local(
            properties.get("DefinitionUri")
        ):
            properties["Definition"] = _load_definition(base_dir / properties.pop("DefinitionUri"))
    return prepared


def expand(
    template: dict[str, Any] | None = None,
    *,
    base_dir: Path = ROOT,
    parameter_values: dict[str, Any] | None = None,
    region: str = DEFAULT_REGION,
) -> dict[str, Any]:
    """Return the CloudFormation template that `sam deploy` would submit for `template`."""
    source = load_template() if template is None else template
    managed_policies: dict[str, str] = json.loads(_MANAGED_POLICIES.read_text(encoding="utf-8"))
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    return translator.translate(
        prepare(source, base_dir),
        parameter_values=dict(parameter_values or {}),
        get_managed_policy_map=lambda: managed_policies,
    )
