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


class OrderedMerge:
    """Merges the partial results of items [0, size), given by index in any order, into what merging
    them along one fixed binary tree over the indices gives.

    Segments are the tree's aligned blocks of indices ([0, 2), [2, 4), [0, 4), …): a segment is merged
    as soon as both its halves are in, so only segments still waiting for a neighbour are held (a few
    when items arrive roughly in order). The tree depends on the indices alone, so the result is the
    same whatever the order of arrival, down to the last bit of a floating-point `$sum`. Every index
    must be added once; `None` stands for an item without a partial result.
    """

    def __init__(self, size: int):
        self._size = size
        self._height = max(size - 1, 0).bit_length()  # the root covers [0, 2 ** height)
        self._waiting: dict[tuple[int, int], _Segment | None] = {}
        self._root: _Segment | None = None
        self._added = 0

    @property
    def size(self) -> int:
        return self._size

    @property
    def waiting(self) -> int:
        """Segments held while they wait for a neighbour."""
        return len(self._waiting)

    def add(self, index: int, partial: Any) -> None:
        if not 0 <= index < self._size:
            raise IndexError(f"item {index} is outside [0, {self._size})")
        self._added += 1
        segment = None if partial is None else _Segment(index, partial)
        level, position = 0, index
        while level < self._height:
            sibling = position ^ 1
            if sibling << level >= self._size:
                neighbour = None  # a block past the last item: empty
            elif (level, sibling) in self._waiting:
                neighbour = self._waiting.pop((level, sibling))
            else:
                self._waiting[(level, position)] = segment
                return
            segment = _join(neighbour, segment) if position & 1 else _join(segment, neighbour)
            level, position = level + 1, position >> 1
        self._root = segment

    def result(self) -> tuple[Any, tuple[int, str] | None]:
        """(the merged partial result, None), or (None, (item index, why)) when two partials declare
        different combinations: the first such item in the tree, in item order."""
        if self._added != self._size or self._waiting:
            raise ValueError(f"{self._added} of {self._size} items added, {len(self._waiting)} segments open")
        root = self._root
        if root is None:
            return None, None
        if root.failure is not None:
            return None, root.failure
        return root.value, None


class _Segment:
    __slots__ = ("first", "value", "failure")

    def __init__(self, first: int, value: Any = None, failure: tuple[int, str] | None = None):
        self.first = first  # the smallest index of an item with a partial result in the segment
        self.value = value
        self.failure = failure


def _join(left: _Segment | None, right: _Segment | None) -> _Segment | None:
    if left is None:
        return right
    if right is None:
        return left
    if left.failure is not None:  # the failure at the smaller index wins
        return left
    if right.failure is not None:
        return right
    try:
        return _Segment(left.first, merge(left.value, right.value))
    except MergeError as error:
        return _Segment(left.first, failure=(right.first, str(error)))
