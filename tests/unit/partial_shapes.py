"""Every invalid partial-result shape the merge algebra knows, and every clash between two items' valid
partials: the catalogue the worker, the merge and Summarize are each tested against."""

from __future__ import annotations

from typing import Any


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"$sum": 1}
    for _ in range(depth):
        value = {"deeper": value}
    return value


# (id, one item's partial result, what the problem's text says: the key, then the problem)
INVALID_PARTIALS: list[tuple[str, Any, str]] = [
    ("sum-of-string", {"x": {"$sum": "3"}}, "key `x`: $sum takes a number, not a string"),
    ("sum-of-boolean", {"x": {"$sum": True}}, "key `x`: $sum takes a number, not a boolean"),
    ("sum-of-null", {"x": {"$sum": None}}, "key `x`: $sum takes a number, not null"),
    ("count-negative", {"x": {"$count": -1}}, "key `x`: $count takes a whole number ≥ 0"),
    ("count-fraction", {"x": {"$count": 1.5}}, "key `x`: $count takes a whole number ≥ 0"),
    ("unknown-operator", {"x": {"$bogus": 1}}, "key `x`: unknown operator $bogus"),
    ("unknown-operator-at-top", {"$bogus": 1}, "unknown operator $bogus"),
    ("min-of-list", {"x": {"$min": [1]}}, "key `x`: $min takes a number, a string or null, not a list"),
    ("max-of-object", {"x": {"$max": {"a": 1}}}, "key `x`: $max takes a number, a string or null"),
    ("max-of-nan", {"x": {"$max": float("nan")}}, "key `x`: $max of NaN has no order"),
    ("all-of-string", {"x": {"$all": "yes"}}, "key `x`: $all takes true or false, not a string"),
    ("any-of-number", {"x": {"$any": 1}}, "key `x`: $any takes true or false, not a number"),
    ("list-of-string", {"x": {"$list": "abc"}}, "key `x`: $list takes a list, not a string"),
    ("list-limit-negative", {"x": {"$list": [1], "$limit": -1}}, "key `x`: $limit takes a whole number"),
    ("mean-of-one-number", {"x": {"$mean": [1]}}, "key `x`: $mean takes [sum, count]"),
    ("mean-of-strings", {"x": {"$mean": ["a", 1]}}, "key `x`: $mean takes [sum, count]"),
    ("mean-negative-count", {"x": {"$mean": [1, -2]}}, "key `x`: $mean takes [sum, count]"),
    ("if-without-condition", {"x": {"$if": True, "$then": 1}}, "key `x`: $if takes a condition"),
    (
        "if-with-bad-branch",
        {"x": {"$if": {"$all": True}, "$then": {"$sum": "a"}}},
        "key `x.$then`: $sum takes a number",
    ),
    (
        "two-operators",
        {"x": {"$sum": 1, "$max": 2}},
        "key `x`: $sum cannot share its object with a second operator $max",
    ),
    (
        "key-beside-operator",
        {"x": {"$sum": 1, "note": "hi"}},
        "key `x`: $sum cannot share its object with key 'note'",
    ),
    ("limit-alone", {"x": {"$limit": 3}}, "key `x`: $limit without the operator it belongs to"),
    ("operator-in-plain-list", {"x": [{"$sum": 1}]}, "key `x`: $sum inside a plain list is not merged"),
    ("nested-too-deep", _nested(80), "nested deeper than 64 levels"),
]

# (id, item 0's partial, item 1's partial, what the problem's text says)
CLASHING_PARTIALS: list[tuple[str, Any, Any, str]] = [
    (
        "sum-and-plain-number",
        {"x": {"$sum": 1}},
        {"x": 5},
        "key `x`: $sum in one item and a number in another",
    ),
    ("sum-and-max", {"x": {"$sum": 1}}, {"x": {"$max": 1}}, "key `x`: $sum in one item and $max in another"),
    (
        "object-and-number",
        {"x": {"a": 1}},
        {"x": 1},
        "key `x`: an object in one item and a number in another",
    ),
    (
        "min-of-number-and-string",
        {"x": {"$min": 1}},
        {"x": {"$min": "a"}},
        "key `x`: $min of a number in one item and of a string in another",
    ),
    (
        "if-conditions-differ",
        {"x": {"$if": {"$all": True}, "$then": 1}},
        {"x": {"$if": {"$any": True}, "$then": 1}},
        "key `x.$if`: $all in one item and $any in another",
    ),
]
