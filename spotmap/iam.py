"""A small IAM policy evaluator: identity policies and a resource policy of one account, for one
request (action, resource ARN, request context), as AWS documents the evaluation.

Evaluation (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny in any applicable policy wins; otherwise an Allow in an identity-based policy or in
the resource-based policy (same account: either is enough) allows; otherwise the request is implicitly
denied. No SCPs, permissions boundaries or session policies exist in the local cloud.

Statement matching (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html):
Action/NotAction (case-insensitive, `*` and `?` wildcards), Resource/NotResource (case-sensitive,
wildcards), Principal/NotPrincipal (resource policies), Condition. Conditions follow
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
and .../reference_policies_condition-logic-multiple-context-keys-or-values.html: operators AND-ed,
keys of one operator AND-ed, values of one key OR-ed (NOR for negated operators); a key missing from
the request makes a positive operator false and a negated one true; `...IfExists` is true for a
missing key; `Null` tests presence; `ForAnyValue:` / `ForAllValues:` for multivalued keys.

What this module cannot decide raises `Undecidable` (never an allow): an unknown condition operator,
a condition key the request's mapping does not know (the request lists the keys it knows, present or
absent), policy variables, or a malformed statement.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class Undecidable(Exception):
    """The evaluator cannot decide this request: an error, never an allow."""


class Decision(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True)
class Request:
    """One authorization request. `context` holds every condition key the mapping of this request
    knows (names are case-insensitive): a list of values when present, None when known to be absent.
    A policy condition on a key outside `context` is undecidable."""

    action: str
    resource: str
    context: Mapping[str, Sequence[str] | None] = field(default_factory=dict)

    def value_of(self, key: str) -> Sequence[str] | None:
        normalized = _context_lookup(self.context)
        lowered = key.lower()
        if lowered not in normalized:
            # tag keys are families (aws:RequestTag/<name>): absent unless the mapping listed them,
            # when it declared the family with a "/*" entry
            family = lowered.split("/", 1)[0] + "/*" if "/" in lowered else None
            if family is not None and family in normalized:
                return None
            raise Undecidable(f"condition key {key!r} is not known for {self.action}")
        return normalized[lowered]


def _context_lookup(context: Mapping[str, Sequence[str] | None]) -> dict[str, Sequence[str] | None]:
    return {name.lower(): value for name, value in context.items()}


@dataclass(frozen=True)
class Principal:
    """The caller: a role of the account (its ARN and the account id)."""

    arn: str
    account_id: str


# ------------------------------------------------------------------------------------------ matching
def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


@functools.lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    if "${" in pattern:
        raise Undecidable(f"policy variables are not supported: {pattern!r}")
    regex = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """`*` matches any run of characters (including `/` and `:`), `?` any one character."""
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Actions are `service:Name`, case-insensitive, with wildcards."""
    return wildcard_match(pattern, action, ignore_case=True)


def resource_matches(pattern: str, resource: str) -> bool:
    """Resource ARNs are matched case-sensitively with wildcards; `*` matches every resource."""
    return pattern == "*" or wildcard_match(pattern, resource)


def arn_like(pattern: str, value: str) -> bool:
    """ArnLike / ArnEquals: each of the six colon-delimited parts compared separately, with
    wildcards (the last part, the resource, may itself contain colons)."""
    pattern_parts = pattern.split(":", 5)
    value_parts = value.split(":", 5)
    if len(pattern_parts) != 6 or len(value_parts) != 6:
        return False
    return all(wildcard_match(p, v) for p, v in zip(pattern_parts, value_parts, strict=True))


# ------------------------------------------------------------------------------------------ conditions
def _bool_value(text: str) -> str:
    return text.strip().lower()


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError as error:
        raise Undecidable(f"not a number in a Numeric condition: {text!r}") from error


def _ip_in(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError as error:
        raise Undecidable(f"not an IP address or network: {value!r} / {network!r}") from error


# operator -> (compare(policy value, context value) -> bool, negated)
_OPERATORS: dict[str, tuple[Any, bool]] = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (lambda p, v: wildcard_match(p, v), False),
    "StringNotLike": (lambda p, v: wildcard_match(p, v), True),
    "NumericEquals": (lambda p, v: _number(v) == _number(p), False),
    "NumericNotEquals": (lambda p, v: _number(v) == _number(p), True),
    "NumericLessThan": (lambda p, v: _number(v) < _number(p), False),
    "NumericLessThanEquals": (lambda p, v: _number(v) <= _number(p), False),
    "NumericGreaterThan": (lambda p, v: _number(v) > _number(p), False),
    "NumericGreaterThanEquals": (lambda p, v: _number(v) >= _number(p), False),
    "Bool": (lambda p, v: _bool_value(p) == _bool_value(v), False),
    "ArnEquals": (arn_like, False),
    "ArnLike": (arn_like, False),
    "ArnNotEquals": (arn_like, True),
    "ArnNotLike": (arn_like, True),
    "IpAddress": (lambda p, v: _ip_in(v, p), False),
    "NotIpAddress": (lambda p, v: _ip_in(v, p), True),
}


def _condition_holds(operator: str, key: str, policy_values: list[str], request: Request) -> bool:
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise Undecidable(f"unknown condition set operator {qualifier!r}")
    if_exists = operator.endswith("IfExists") and operator != "IfExists"
    base = operator[: -len("IfExists")] if if_exists else operator
    values = request.value_of(key)
    if base == "Null":
        if if_exists or qualifier:
            raise Undecidable(f"unsupported condition operator {operator!r}")
        expected_absent = {_bool_value(str(value)) for value in policy_values}
        if not expected_absent <= {"true", "false"}:
            raise Undecidable(f"Null takes true or false, not {policy_values!r}")
        absent = values is None or len(values) == 0
        return ("true" if absent else "false") in expected_absent
    if base not in _OPERATORS:
        raise Undecidable(f"unknown condition operator {operator!r}")
    compare, negated = _OPERATORS[base]
    texts = [str(value).lower() if isinstance(value, bool) else str(value) for value in policy_values]
    if values is None:
        if qualifier == "ForAllValues":
            return True  # vacuously true for a missing key, as AWS documents
        if qualifier == "ForAnyValue":
            return False
        return True if if_exists else negated

    def matches_one(value: str) -> bool:
        hit = any(compare(policy, value) for policy in texts)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(matches_one(value) for value in values)
    if qualifier == "ForAnyValue":
        return any(matches_one(value) for value in values)
    if len(values) != 1:
        raise Undecidable(f"single-valued operator {operator!r} on multivalued key {key!r}")
    return matches_one(values[0])


def conditions_hold(condition: Mapping[str, Any] | None, request: Request) -> bool:
    if not condition:
        return True
    for operator, keys in condition.items():
        if not isinstance(keys, Mapping):
            raise Undecidable(f"malformed condition block {operator!r}")
        for key, policy_values in keys.items():
            if not _condition_holds(operator, key, _as_list(policy_values), request):
                return False
    return True


# ------------------------------------------------------------------------------------------ statements
def _principal_matches(element: Any, principal: Principal | None) -> bool:
    """Whether a resource policy's Principal names the caller directly. An account principal
    (`123456789012` or `arn:aws:iam::123456789012:root`) delegates to the account's identity
    policies and grants nothing by itself, but does match (e.g. for a Deny)."""
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        raise Undecidable(f"malformed Principal {element!r}")
    for kind, values in element.items():
        for value in _as_list(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if principal is None:
                    continue
                if value in (principal.account_id, f"arn:aws:iam::{principal.account_id}:root"):
                    return True
                if value == principal.arn:
                    return True
            elif kind in ("Service", "Federated", "CanonicalUser"):
                continue  # the local cloud's callers are roles of the account
            else:
                raise Undecidable(f"unknown principal type {kind!r}")
    return False


def _grants_directly(element: Any, principal: Principal | None) -> bool:
    """An Allow in a resource policy grants by itself only to a principal it names (or to everyone);
    an account principal delegates to identity policies."""
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        return False
    for value in _as_list(element.get("AWS")):
        if value == "*" or (principal is not None and value == principal.arn):
            return True
    return False


def statement_applies(
    statement: Mapping[str, Any],
    request: Request,
    principal: Principal | None = None,
    resource_policy: bool = False,
) -> bool:
    """Whether the statement applies to the request (action, resource, principal, conditions)."""
    if ("Action" in statement) == ("NotAction" in statement):
        raise Undecidable(f"a statement needs exactly one of Action / NotAction: {statement!r}")
    if "Action" in statement:
        if not any(action_matches(pattern, request.action) for pattern in _as_list(statement["Action"])):
            return False
    elif any(action_matches(pattern, request.action) for pattern in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(
            resource_matches(pattern, request.resource) for pattern in _as_list(statement["Resource"])
        ):
            return False
    elif "NotResource" in statement:
        if any(resource_matches(pattern, request.resource) for pattern in _as_list(statement["NotResource"])):
            return False
    elif not resource_policy:
        raise Undecidable(f"an identity policy statement needs Resource or NotResource: {statement!r}")
    if resource_policy:
        if "Principal" in statement:
            if not _principal_matches(statement["Principal"], principal):
                return False
        elif "NotPrincipal" in statement:
            if _principal_matches(statement["NotPrincipal"], principal):
                return False
        else:
            raise Undecidable(f"a resource policy statement needs Principal or NotPrincipal: {statement!r}")
    return conditions_hold(statement.get("Condition"), request)


def _statements(policy: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    statements = _as_list(policy.get("Statement"))
    for statement in statements:
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise Undecidable(f"a statement's Effect must be Allow or Deny: {statement!r}")
    return statements


def evaluate(
    request: Request,
    identity_policies: Iterable[Mapping[str, Any]],
    resource_policy: Mapping[str, Any] | None = None,
    principal: Principal | None = None,
) -> Decision:
    """The decision for one request by a principal of the resource's own account."""
    allowed = False
    for policy in identity_policies:
        for statement in _statements(policy):
            if statement_applies(statement, request, principal):
                if statement["Effect"] == "Deny":
                    return Decision.EXPLICIT_DENY
                allowed = True
    if resource_policy:
        for statement in _statements(resource_policy):
            if statement_applies(statement, request, principal, resource_policy=True):
                if statement["Effect"] == "Deny":
                    return Decision.EXPLICIT_DENY
                if _grants_directly(statement.get("Principal"), principal):
                    allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


__all__ = [
    "Decision",
    "Principal",
    "Request",
    "Undecidable",
    "action_matches",
    "arn_like",
    "conditions_hold",
    "evaluate",
    "resource_matches",
    "wildcard_match",
]
