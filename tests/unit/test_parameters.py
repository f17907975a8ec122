"""Template parameters are checked by value, as CloudFormation checks them before a deploy: Type,
AllowedValues, MinValue/MaxValue, AllowedPattern, MinLength/MaxLength and the template's Rules."""

from __future__ import annotations

import pytest

from spotmap.cloud import project_root
from spotmap.parameters import ParameterError, check_parameters
from spotmap.template import TemplateError, load_stack


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"MaxConcurrency": "0"}, "Parameter 'MaxConcurrency' must be a number not less than 1; got '0'"),
        ({"MaxConcurrency": "ten"}, "Parameter 'MaxConcurrency' must be a number; got 'ten'"),
        ({"MaxConcurrency": "nan"}, "Parameter 'MaxConcurrency' must be a number; got 'nan'"),
        ({"ShardSizeMB": "-1"}, "Parameter 'ShardSizeMB' must be a number not less than 0.001; got '-1'"),
        (
            {"ToleratedFailurePercentage": "150"},
            "Parameter 'ToleratedFailurePercentage' must be a number not greater than 100; got '150'",
        ),
        (
            {"ItemTimeoutMinutes": "0.001"},
            "Parameter 'ItemTimeoutMinutes' must be a number not less than 0.01; got '0.001'",
        ),
        ({"TaskCpu": "3"}, "Parameter 'TaskCpu' must be one of AllowedValues (256, 512, 1024, 2048"),
        (
            {"TaskCpu": "256", "TaskMemory": "4096"},
            "TaskMemory must be one of 512, 1024, 2048 (MiB) with TaskCpu 256, as Fargate requires "
            "(rule TaskMemoryFor256Cpu)",
        ),
        ({"TaskCpu": "4096", "TaskMemory": "2048"}, "TaskMemory must be one of 8192, 9216"),
        ({"TaskMemory": "100"}, "Parameter 'TaskMemory' must be a number not less than 512; got '100'"),
    ],
)
def test_values_cloudformation_refuses_are_refused_before_anything_starts(
    overrides: dict[str, str], message: str
) -> None:
    # GIVEN a parameter value the template's constraints forbid
    # WHEN the local cloud resolves the template with it
    # THEN it refuses, naming the parameter, the rule and the value
    with pytest.raises(TemplateError) as refused:
        load_stack(project_root(), overrides)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"TaskCpu": "256", "TaskMemory": "512"},
        {"TaskCpu": "512", "TaskMemory": "3072"},
        {"TaskCpu": "16384", "TaskMemory": "122880"},
        {"MaxConcurrency": "1", "ShardSizeMB": "0.5", "ItemTimeoutMinutes": "0.05"},
        {"SubnetIds": "subnet-1,subnet-2"},
    ],
)
def test_values_cloudformation_accepts_are_accepted(overrides: dict[str, str]) -> None:
    # GIVEN valid values (Fargate's CPU/memory table, fractions where the template allows them)
    # WHEN / THEN the template resolves
    load_stack(project_root(), overrides)


def test_string_list_and_rule_functions_follow_cloudformation() -> None:
    # GIVEN parameters with patterns, lengths, list types and rules over them
    declared = {
        "Name": {"Type": "String", "AllowedPattern": "[a-z]+", "MinLength": 2, "MaxLength": 5},
        "Described": {"Type": "String", "AllowedPattern": "[0-9]+", "ConstraintDescription": "digits only"},
        "Sizes": {"Type": "List<Number>", "MinValue": 1},
        "Zones": {"Type": "CommaDelimitedList"},
    }
    rules = {
        "ZonesKnown": {
            "RuleCondition": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Name"}, "any"]}]},
            "Assertions": [
                {
                    "Assert": {"Fn::EachMemberIn": [{"Ref": "Zones"}, ["a", "b"]]},
                    "AssertDescription": "Zones must be a or b",
                }
            ],
        }
    }
    good = {"Name": "abc", "Described": "42", "Sizes": "1,2.5", "Zones": "a,b"}
    check_parameters(declared, good, rules)
    check_parameters(declared, {**good, "Name": "any", "Zones": "z"}, rules)  # the rule does not apply

    # WHEN / THEN each broken constraint is refused with CloudFormation's message
    cases = {
        "Name": ("a", "Parameter 'Name' must contain at least 2 characters"),
        "Described": ("x1", "Parameter 'Described' failed to satisfy constraint: digits only"),
        "Sizes": ("1,0", "Parameter 'Sizes' must be a number not less than 1"),
        "Zones": ("a,c", "Zones must be a or b (rule ZonesKnown)"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_parameters(declared, {**good, name: value}, rules)
    with pytest.raises(ParameterError, match="must match pattern"):
        check_parameters(declared, {**good, "Name": "AB"}, rules)
    with pytest.raises(ParameterError, match="at most 5 characters"):
        check_parameters(declared, {**good, "Name": "abcdef"}, rules)
