"""Template parameters checked as CloudFormation checks them before it creates or updates a stack:
each value against its declared Type, AllowedValues, AllowedPattern, MinLength/MaxLength and
MinValue/MaxValue, then the template's Rules (their assertions, with the rule-specific intrinsic
functions). A value CloudFormation would refuse is refused here, before anything starts, with
CloudFormation's message, the value given and what is allowed.

https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/parameters-section-structure.html
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/rules-section-structure.html
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A Number parameter is "an integer or float" (CloudFormation parses the string; nan/inf/1_000 are
# not numbers there).
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class ParameterError(ValueError):
    """A parameter value CloudFormation refuses (a ValidationError of CreateStack/UpdateStack)."""


def _number(text: str) -> float | None:
    return float(text) if NUMBER.fullmatch(text.strip()) else None


def _members(kind: str, value: str) -> list[str] | None:
    """The list a list-typed parameter holds, None for a scalar type."""
    if kind == "CommaDelimitedList" or kind.startswith("List<"):
        return [member.strip() for member in value.split(",")] if value != "" else []
    return None


def _check_number(name: str, spec: Mapping[str, Any], text: str) -> None:
    number = _number(text)
    if number is None:
        raise ParameterError(f"Parameter '{name}' must be a number; got {text!r}")
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if low is not None and number < float(low):
        raise ParameterError(f"Parameter '{name}' must be a number not less than {low}; got {text!r}")
    if high is not None and number > float(high):
        raise ParameterError(f"Parameter '{name}' must be a number not greater than {high}; got {text!r}")


def _check_value(name: str, spec: Mapping[str, Any], value: str) -> None:
    kind = str(spec.get("Type", "String"))
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in {str(choice) for choice in allowed}:
        choices = ", ".join(str(choice) for choice in allowed)
        raise ParameterError(f"Parameter '{name}' must be one of AllowedValues ({choices}); got {value!r}")
    members = _members(kind, value)
    if kind == "Number":
        _check_number(name, spec, value)
    elif kind == "List<Number>":
        for member in members or []:
            _check_number(name, spec, member)
    elif members is None:  # String (and the AWS-specific types, whose existence is not checked here)
        low, high = spec.get("MinLength"), spec.get("MaxLength")
        if low is not None and len(value) < int(low):
            raise ParameterError(
                f"Parameter '{name}' must contain at least {low} characters; got {len(value)}"
            )
        if high is not None and len(value) > int(high):
            raise ParameterError(
                f"Parameter '{name}' must contain at most {high} characters; got {len(value)}"
            )
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), value):
            description = spec.get("ConstraintDescription")
            reason = (
                f"failed to satisfy constraint: {description}"
                if description
                else f"must match pattern {pattern}"
            )
            raise ParameterError(f"Parameter '{name}' {reason}; got {value!r}")


class _Rules:
    """Evaluates Rules conditions and assertions: Fn::And/Or/Not/Equals/Contains/EachMemberIn/
    EachMemberEquals over Ref (a parameter's value: a string, or a list of strings for list types)."""

    def __init__(self, declared: Mapping[str, Any], values: Mapping[str, str]):
        self.declared = declared
        self.values = values

    def value(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                if argument not in self.values:
                    raise ParameterError(f"Template error: Rules refer to an unknown parameter {argument!r}")
                kind = str(self.declared[argument].get("Type", "String"))
                members = _members(kind, self.values[argument])
                return members if members is not None else self.values[argument]
            return self.truth(node)
        if isinstance(node, list):
            return [self.value(item) for item in node]
        return str(node).lower() if isinstance(node, bool) else str(node)

    def truth(self, node: Any) -> bool:
        ((function, argument),) = node.items()
        if function == "Fn::And":
            return all(self.truth(item) for item in argument)
        if function == "Fn::Or":
            return any(self.truth(item) for item in argument)
        if function == "Fn::Not":
            return not self.truth(argument[0])
        if function == "Fn::Equals":
            left, right = (self.value(item) for item in argument)
            return bool(left == right)
        if function == "Fn::Contains":
            choices, wanted = (self.value(item) for item in argument)
            return wanted in choices
        if function == "Fn::EachMemberIn":
            members, choices = (self.value(item) for item in argument)
            return all(member in choices for member in members)
        if function == "Fn::EachMemberEquals":
            members, wanted = (self.value(item) for item in argument)
            return all(member == wanted for member in members)
        raise ParameterError(f"Template error: the local cloud does not evaluate {function} in Rules")


def check_parameters(
    declared: Mapping[str, Any], values: Mapping[str, str], rules: Mapping[str, Any]
) -> None:
    """Raise ParameterError for the first value (then the first rule assertion) CloudFormation refuses."""
    for name, spec in declared.items():
        _check_value(name, spec, values[name])
    evaluate = _Rules(declared, values)
    for rule_name, rule in rules.items():
        condition = rule.get("RuleCondition")
        if condition is not None and not evaluate.truth(condition):
            continue
        for assertion in rule.get("Assertions", []):
            if not evaluate.truth(assertion["Assert"]):
                description = assertion.get("AssertDescription") or f"rule {rule_name} failed"
                # CloudFormation's ValidationError carries the AssertDescription as its message
                raise ParameterError(f"{description} (rule {rule_name})")
