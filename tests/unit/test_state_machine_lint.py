"""`make lint` checks the state machine as Step Functions parses it: cfn-lint on the expanded template
with the definition inlined, asl-validator on the substituted definition (tools/lint_state_machine.py).
These tests show that both pass on the definition we deploy and that each rejects a broken one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tools.expand_template import expand, inline_definitions
from tools.lint_state_machine import ASL_VALIDATOR, asl_validate, cfn_lint_findings, unexpected

ITEM_STATES = ("ProcessItems", "ItemProcessor", "States")

needs_asl_validator = pytest.mark.skipif(
    not ASL_VALIDATOR.exists(), reason="asl-validator is not installed: `make lint` runs `npm ci`"
)


@pytest.fixture(scope="module")
def inlined() -> tuple[dict[str, Any], dict[str, Any]]:
    template, definitions = inline_definitions(expand())
    return template, definitions["JobStateMachine"]


def with_definition(template: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """The state machine alone (cfn-lint takes seconds on the whole template), with `definition`."""
    machine = template["Resources"]["JobStateMachine"]
    properties = {
        "StateMachineType": machine["Properties"]["StateMachineType"],
        "RoleArn": "arn:aws:iam::123456789012:role/spotmap-states",
        "Definition": copy.deepcopy(definition),
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {"JobStateMachine": {"Type": machine["Type"], "Properties": properties}},
    }


def item_state(definition: dict[str, Any], name: str) -> dict[str, Any]:
    processor = definition["States"]["ProcessItems"]["ItemProcessor"]
    return dict(processor["States"][name])


def write(tmp_path: Path, definition: dict[str, Any]) -> Path:
    path = tmp_path / "job.asl.json"
    path.write_text(json.dumps(definition), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ inlining
def test_the_inlined_definition_is_the_file_with_every_substitution_applied(
    inlined: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # GIVEN the expanded template with the definition inlined
    template, definition = inlined
    properties = template["Resources"]["JobStateMachine"]["Properties"]
    # THEN CloudFormation's string form and the substitutions are replaced by the parsed definition
    assert "DefinitionString" not in properties and "DefinitionSubstitutions" not in properties
    assert properties["Definition"] == definition
    # AND no placeholder is left; each function ARN has the shape of a real one
    assert "${" not in json.dumps(definition)
    launch = item_state(definition, "Launch")
    assert launch["Parameters"]["FunctionName"] == (
        "arn:aws:lambda:us-east-1:123456789012:function:spotmap-LaunchTaskFunction"
    )


# ------------------------------------------------------------------------------------ cfn-lint
def test_cfn_lint_finds_nothing_but_the_documented_false_positive(
    inlined: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # GIVEN the inlined template as deployed
    template, _ = inlined
    # WHEN cfn-lint checks it (every rule, the Step Functions schema included)
    failing, suppressed = unexpected(cfn_lint_findings(template), template)
    # THEN nothing fails, and the one suppression is the Succeed state's OutputPath (see FALSE_POSITIVES)
    assert failing == []
    assert [finding.path[-2:] for finding in suppressed] == [("ItemSucceeded", "OutputPath")]


def test_cfn_lint_rejects_an_invalid_definition(inlined: tuple[dict[str, Any], dict[str, Any]]) -> None:
    # GIVEN a definition with a misspelt state type and a negative retry count
    template, definition = inlined
    broken = copy.deepcopy(definition)
    broken["States"]["CheckJob"]["Type"] = "Chioce"
    broken["States"]["ProcessItems"]["ItemProcessor"]["States"]["Launch"]["Retry"][0]["MaxAttempts"] = -1
    broken_template = with_definition(template, broken)
    # WHEN cfn-lint checks the template
    failing, _ = unexpected(cfn_lint_findings(broken_template), broken_template)
    # THEN both are errors of its Step Functions schema rule, at their place in the definition
    by_place = {finding.path[-1]: finding for finding in failing if finding.rule == "E3601"}
    assert "Chioce" in by_place["Type"].message
    assert "MaxAttempts" in by_place and "minimum" in by_place["MaxAttempts"].message


def test_the_suppression_hides_nothing_else_about_the_succeed_state(
    inlined: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    # GIVEN the succeeded child's state with a misspelt field, and a JSONata Succeed state with an
    # OutputPath (JSONata states have no paths)
    template, definition = inlined
    broken = copy.deepcopy(definition)
    states = broken["States"]["ProcessItems"]["ItemProcessor"]["States"]
    states["ItemSucceeded"]["OutputPaht"] = "$.outcome"
    broken["States"]["JobSucceeded"] = {"Type": "Succeed", "QueryLanguage": "JSONata", "OutputPath": "$.x"}
    broken_template = with_definition(template, broken)
    # WHEN cfn-lint checks the template
    failing, suppressed = unexpected(cfn_lint_findings(broken_template), broken_template)
    # THEN both fail; only the documented OutputPath stays suppressed
    assert {finding.path[-2:] for finding in failing} >= {
        ("ItemSucceeded", "OutputPaht"),
        ("JobSucceeded", "OutputPath"),
    }
    assert [finding.path[-2:] for finding in suppressed] == [("ItemSucceeded", "OutputPath")]


# ------------------------------------------------------------------------------------ asl-validator
@needs_asl_validator
def test_asl_validator_accepts_the_deployed_definition(
    inlined: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN the substituted definition
    _, definition = inlined
    # WHEN asl-validator checks it
    result = asl_validate(write(tmp_path, definition))
    # THEN it is valid
    assert result.valid, result.output


@needs_asl_validator
def test_asl_validator_rejects_a_transition_to_a_missing_state(
    inlined: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN a definition whose Poll state goes to a state that does not exist (a schema cannot see it:
    # cfn-lint lets it through)
    template, definition = inlined
    broken = copy.deepcopy(definition)
    broken["States"]["ProcessItems"]["ItemProcessor"]["States"]["Poll"]["Next"] = "CheckTsk"
    broken_template = with_definition(template, broken)
    assert unexpected(cfn_lint_findings(broken_template), broken_template)[0] == []
    # WHEN asl-validator checks it
    result = asl_validate(write(tmp_path, broken))
    # THEN it is rejected, naming the missing state
    assert not result.valid
    assert "CheckTsk" in result.output


@needs_asl_validator
def test_asl_validator_rejects_an_invalid_path(
    inlined: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN a definition whose Wait state reads its seconds from a path that is not a JSONPath
    _, definition = inlined
    broken = copy.deepcopy(definition)
    broken["States"]["ProcessItems"]["ItemProcessor"]["States"]["WaitForTask"]["SecondsPath"] = "wait_seconds"
    # WHEN asl-validator checks it
    result = asl_validate(write(tmp_path, broken))
    # THEN it is rejected
    assert not result.valid
    assert "SecondsPath" in result.output
