"""Mergeable partial results: every value says how it combines, so Summarize merges the partial
results of any processor without importing the processor's code.

A partial result is JSON. Plain objects merge key by key; a leaf declares its combination:

    {"$sum": 3}            added                      (also "$count")
    {"$min": 1.5}          smallest (None ignored)    {"$max": "zz"}  largest
    {"$first": v}          first non-null, in item order
    {"$all": true}         logical and                {"$any": false}  logical or
    {"$list": [..], "$limit": 100}   concatenation in item order, truncated to $limit
    {"$mean": [sum, count]}          merged as two sums, finalized to sum / count
    {"$if": {"$all": b}, "$then": X, "$else": Y}
                           the condition merges as its own leaf; finalize keeps one branch

Plain scalars and lists merge as "$first". `finalize` turns a merged value into plain JSON.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

DEFAULT_LIST_LIMIT = 1000

_OPS = ("$sum", "$count", "$min", "$max", "$first", "$all", "$any", "$list", "$mean", "$if")


class MergeError(ValueError):
    """Two partial results declare different combinations for the same value."""


def _op(value: Any) -> str | None:
    if isinstance(value, dict):
        for op in _OPS:
            if op in value:
                return op
    return None


def _pick(a: Any, b: Any, prefer: str) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        # values of different kinds compare by their text, so min/max never raise
        a_key, b_key = str(a), str(b)
        return a if (a_key <= b_key) == (prefer == "min") else b
    if prefer == "min":
        return a if a <= b else b
    return a if a >= b else b


def merge(a: Any, b: Any) -> Any:
    """Combine two partial results; `a` comes from the item with the smaller index."""
    if a is None:
        return b
    if b is None:
        return a
    op_a, op_b = _op(a), _op(b)
    if op_a != op_b:
        raise MergeError(f"cannot merge {op_a or type(a).__name__} with {op_b or type(b).__name__}")
    if op_a is None:
        if isinstance(a, dict) and isinstance(b, dict):
            merged = dict(a)
            for key, value in b.items():
                merged[key] = merge(merged.get(key), value)
            return merged
        return a  # plain scalars and lists: first wins
    if op_a in ("$sum", "$count"):
        return {op_a: a[op_a] + b[op_a]}
    if op_a in ("$min", "$max"):
        return {op_a: _pick(a[op_a], b[op_a], op_a[1:])}
    if op_a == "$first":
        return a if a["$first"] is not None else b
    if op_a == "$all":
        return {"$all": bool(a["$all"]) and bool(b["$all"])}
    if op_a == "$any":
        return {"$any": bool(a["$any"]) or bool(b["$any"])}
    if op_a == "$list":
        limit = min(a.get("$limit", DEFAULT_LIST_LIMIT), b.get("$limit", DEFAULT_LIST_LIMIT))
        return {"$list": (list(a["$list"]) + list(b["$list"]))[:limit], "$limit": limit}
    if op_a == "$mean":
        return {"$mean": [a["$mean"][0] + b["$mean"][0], a["$mean"][1] + b["$mean"][1]]}
    # $if
    return {
        "$if": merge(a["$if"], b["$if"]),
        "$then": merge(a.get("$then"), b.get("$then")),
        "$else": merge(a.get("$else"), b.get("$else")),
    }


def merge_all(partials: Iterable[Any]) -> Any:
    merged: Any = None
    for partial in partials:
        merged = merge(merged, partial)
    return merged


def finalize(value: Any) -> Any:
    """Turn a merged partial result into the plain JSON a user reads."""
    op = _op(value)
    if op is None:
        if isinstance(value, dict):
            return {key: finalize(item) for key, item in value.items()}
        return value
    if op in ("$sum", "$count", "$min", "$max", "$first", "$all", "$any", "$list"):
        return value[op]
    if op == "$mean":
        total, count = value["$mean"]
        return total / count if count else None
    return finalize(value["$then"] if finalize(value["$if"]) else value["$else"])
