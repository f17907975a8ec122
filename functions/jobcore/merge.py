"""Mergeable partial results: every value says how it combines, so Summarize merges the partial
results of any processor without importing the processor's code.

A partial result is JSON. Plain objects merge key by key; a leaf declares its combination:

    {"$sum": 3}            added (numbers)                     {"$count": 2}  added (whole numbers ≥ 0)
    {"$min": 1.5}          smallest (None ignored)             {"$max": "zz"}  largest
                           numbers by value, strings in Python order; a key is one or the other
    {"$first": v}          first non-null, in item order (v is data: any JSON)
    {"$all": true}         logical and                         {"$any": false}  logical or
    {"$list": [..], "$limit": 100}   concatenation in item order, truncated to $limit
    {"$mean": [sum, count]}          merged as two sums, finalized to sum / count
    {"$if": {"$all": b}, "$then": X, "$else": Y}
                           the condition merges as its own leaf; finalize keeps one branch

Plain scalars and lists merge as "$first". `finalize` turns a merged value into plain JSON.

The algebra is typed: `problems(partial)` lists what makes one partial result invalid (an unknown `$`
operator, an operand of the wrong type, a key next to an operator that it does not take, an operator
inside a plain list, nesting too deep), each naming its key. The worker refuses an invalid partial
before it writes its result record, failing that item (worker/runner.py). What only shows between items
(a key that is `$sum` in one item and `$max` or an object in another, a `$min` over numbers in one and
strings in another) raises `MergeError` naming the key; `OrderedMerge` turns both kinds into a
`MergeFailure` naming the items, so Summarize reports them instead of crashing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

DEFAULT_LIST_LIMIT = 1000
MAX_DEPTH = 64  # objects and lists nested deeper than this are refused (JSON parsers stop near 1000)
MAX_PROBLEMS = 5  # an invalid partial or a failed merge names at most this many keys

# each operator and the other keys its object may hold
_OPS: dict[str, tuple[str, ...]] = {
    "$sum": (),
    "$count": (),
    "$min": (),
    "$max": (),
    "$first": (),
    "$all": (),
    "$any": (),
    "$list": ("$limit",),
    "$mean": (),
    "$if": ("$then", "$else"),
}
OPERATORS = tuple(_OPS)


class MergeError(ValueError):
    """Two partial results declare different combinations, or different shapes, for the same key."""

    def __init__(self, problem: str, path: tuple[str, ...] = ()):
        super().__init__(problem)
        self.path = list(path)  # filled in from the leaf up as the error leaves each object
        self.problem = problem

    @property
    def key(self) -> str:
        return _key(tuple(self.path))

    def __str__(self) -> str:
        return f"key {self.key}: {self.problem}"


class InvalidPartial(ValueError):
    """One partial result breaks the algebra; `problems` name each key and what is wrong with it."""

    def __init__(self, found: list[str]):
        super().__init__("; ".join(found))
        self.problems = found


# ---------------------------------------------------------------- describing values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def kind(value: Any) -> str:
    """What a value is, in words: "$sum", "a number", "an object", …"""
    op = _op(value)
    if op is not None:
        return op
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__} (not JSON)"


def _key(path: tuple[str, ...]) -> str:
    return "`" + ".".join(path) + "`" if path else "(the whole result)"


def _op(value: Any) -> str | None:
    if isinstance(value, dict):
        for op in _OPS:
            if op in value:
                return op
    return None


# ---------------------------------------------------------------- validating one partial


@dataclass(frozen=True)
class Unreadable:
    """Stands in for a partial result that could not even be read (e.g. a result record that is not
    JSON): it never merges, and its failure says why."""

    why: str


def problems(partial: Any) -> list[str]:
    """What makes this partial result invalid, each naming its key (at most MAX_PROBLEMS); [] if valid."""
    found: list[str] = []
    _check(partial, (), 0, found)
    return found


def check(partial: Any) -> None:
    """Raise InvalidPartial when the partial result breaks the algebra."""
    found = problems(partial)
    if found:
        raise InvalidPartial(found)


def _report(found: list[str], path: tuple[str, ...], problem: str) -> None:
    if len(found) < MAX_PROBLEMS:
        found.append(f"key {_key(path)}: {problem}")


_AUXILIARY = frozenset(key for keys in _OPS.values() for key in keys)
_SCALARS = (str, int, float, bool, type(None))


def _check(value: Any, path: tuple[str, ...], depth: int, found: list[str]) -> None:
    # every partial passes here (in the worker, and again in Summarize): kept to one pass over each
    # object's keys, with the common cases (plain keys, scalars) first
    if len(found) >= MAX_PROBLEMS:
        return
    if depth > MAX_DEPTH:
        _report(found, path, f"nested deeper than {MAX_DEPTH} levels")
        return
    if isinstance(value, Unreadable):
        found.append(value.why)
        return
    if isinstance(value, dict):
        op = None
        for key in value:
            if key.__class__ is str and key[:1] == "$":
                if key in _OPS:
                    op = op or key
                elif key not in _AUXILIARY:
                    _report(found, path, f"unknown operator {key} (known: {', '.join(OPERATORS)})")
                    return
        if op is not None:
            _check_operator(_op(value) or op, value, path, depth, found)
            return
        for key, item in value.items():
            if key.__class__ is not str:
                _report(found, path, f"object key {key!r} is not a string")
            elif key[:1] == "$":
                _report(found, path, f"{key} without the operator it belongs to")
                return
            elif isinstance(item, _SCALARS):
                continue  # a plain scalar: merged as "first", nothing to check
            else:
                _check(item, (*path, key), depth + 1, found)
        return
    if isinstance(value, list):  # a plain list is data, merged as "first"
        _check_data(value, path, depth, found, in_plain_list=True)
        return
    _check_data(value, path, depth, found, in_plain_list=False)


def _check_operator(
    op: str, value: dict[Any, Any], path: tuple[str, ...], depth: int, found: list[str]
) -> None:
    others = [key for key in value if key != op and key not in _OPS[op]]
    if others:
        other = others[0]
        what = f"a second operator {other}" if other in _OPS else f"key {other!r}"
        _report(found, path, f"{op} cannot share its object with {what}")
        return
    operand = value[op]
    where = (*path, op)
    if op == "$sum":
        if not _is_number(operand):
            _report(found, path, f"$sum takes a number, not {kind(operand)}")
    elif op == "$count":
        if not (isinstance(operand, int) and not isinstance(operand, bool) and operand >= 0):
            _report(found, path, f"$count takes a whole number ≥ 0, not {_shown(operand)}")
    elif op in ("$min", "$max"):
        if operand is not None and not _is_number(operand) and not isinstance(operand, str):
            _report(found, path, f"{op} takes a number, a string or null, not {kind(operand)}")
        elif isinstance(operand, float) and math.isnan(operand):
            _report(found, path, f"{op} of NaN has no order")
    elif op in ("$all", "$any"):
        if not isinstance(operand, bool):
            _report(found, path, f"{op} takes true or false, not {kind(operand)}")
    elif op == "$first":
        _check_data(operand, where, depth + 1, found, in_plain_list=False)
    elif op == "$list":
        if not isinstance(operand, list):
            _report(found, path, f"$list takes a list, not {kind(operand)}")
        else:
            _check_data(operand, where, depth + 1, found, in_plain_list=False)
        limit = value.get("$limit", DEFAULT_LIST_LIMIT)
        if not (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0):
            _report(found, path, f"$limit takes a whole number ≥ 0, not {_shown(limit)}")
    elif op == "$mean":
        if not (
            isinstance(operand, list)
            and len(operand) == 2
            and _is_number(operand[0])
            and _is_number(operand[1])
            and operand[1] >= 0
        ):
            _report(found, path, f"$mean takes [sum, count] (two numbers, count ≥ 0), not {_shown(operand)}")
    else:  # $if
        if _op(operand) not in ("$all", "$any"):
            _report(found, path, f'$if takes a condition {{"$all": b}} or {{"$any": b}}, not {kind(operand)}')
        else:
            _check(operand, where, depth + 1, found)
        for branch in ("$then", "$else"):
            if branch in value:
                _check(value[branch], (*path, branch), depth + 1, found)


def _check_data(
    value: Any, path: tuple[str, ...], depth: int, found: list[str], *, in_plain_list: bool
) -> None:
    """Data carried as it is ($first's value, $list's items, plain values): JSON, not too deep; inside
    a plain list an operator would silently not merge, so it is refused there."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack and len(found) < MAX_PROBLEMS:
        item, level = stack.pop()
        if level > MAX_DEPTH:
            _report(found, path, f"nested deeper than {MAX_DEPTH} levels")
            return
        if isinstance(item, dict):
            for key, inner in item.items():
                if not isinstance(key, str):
                    _report(found, path, f"object key {key!r} is not a string")
                    return
                if in_plain_list and key in _OPS:
                    _report(found, path, f"{key} inside a plain list is not merged (use $list)")
                    return
                stack.append((inner, level + 1))
        elif isinstance(item, list):
            stack.extend((inner, level + 1) for inner in item)
        elif not (item is None or isinstance(item, (bool, int, float, str))):
            _report(found, path, f"{kind(item)} is not JSON")
            return


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- merging two partials


def _pick(a: Any, b: Any, op: str) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if _is_number(a) != _is_number(b):
        raise MergeError(f"{op} of {kind(a)} in one item and of {kind(b)} in another")
    if op == "$min":
        return a if a <= b else b
    return a if a >= b else b


def merge(a: Any, b: Any) -> Any:
    """Combine two valid partial results; `a` comes from the item with the smaller index. Raises only
    MergeError (for values `problems` accepts), naming the key."""
    if a is None:
        return b
    if b is None:
        return a
    op_a, op_b = _op(a), _op(b)
    if op_a != op_b or (op_a is None and isinstance(a, dict) != isinstance(b, dict)):
        raise MergeError(f"{kind(a)} in one item and {kind(b)} in another")
    if op_a is None:
        if isinstance(a, dict) and isinstance(b, dict):
            merged = dict(a)
            for key, value in b.items():
                try:
                    merged[key] = merge(merged.get(key), value)
                except MergeError as error:  # the key path is built only on the way out of a failure
                    error.path.insert(0, key)
                    raise
            return merged
        return a  # plain scalars and lists: first wins
    if op_a in ("$sum", "$count"):
        return {op_a: a[op_a] + b[op_a]}
    if op_a in ("$min", "$max"):
        return {op_a: _pick(a[op_a], b[op_a], op_a)}
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
    merged_if: dict[str, Any] = {}
    for part in ("$if", "$then", "$else"):
        try:
            merged_if[part] = merge(a.get(part), b.get(part))
        except MergeError as error:
            error.path.insert(0, part)
            raise
    return merged_if


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
    return finalize(value.get("$then") if finalize(value["$if"]) else value.get("$else"))


# ---------------------------------------------------------------- merging every item, in a fixed tree


@dataclass(frozen=True)
class MergeFailure:
    """Why the items' partial results could not be merged: an invalid partial (`first` == `last`,
    `other` None) or two groups of items that disagree on a key. A group is given by the first and last
    index of the items in it that have a partial result (the merge tree's blocks), so the item at fault
    is among them; a group of one item names it exactly."""

    items: tuple[int, int]
    problem: str
    other: tuple[int, int] | None = None

    @property
    def index(self) -> int:
        """The smallest item index involved (what orders failures)."""
        return self.items[0] if self.other is None else min(self.items[0], self.other[0])

    def __str__(self) -> str:
        if self.other is None:
            return f"item {self.items[0]} has an invalid partial result: {self.problem}"
        return f"{_items(self.items)} and {_items(self.other)} do not merge: {self.problem}"


def _items(span: tuple[int, int]) -> str:
    first, last = span
    return f"item {first}" if first == last else f"items {first}–{last}"


class OrderedMerge:
    """Merges the partial results of items [0, size), given by index in any order, into what merging
    them along one fixed binary tree over the indices gives.

    Segments are the tree's aligned blocks of indices ([0, 2), [2, 4), [0, 4), …): a segment is merged
    as soon as both its halves are in, so only segments still waiting for a neighbour are held (a few
    when items arrive roughly in order). The tree depends on the indices alone, so the result is the
    same whatever the order of arrival, down to the last bit of a floating-point `$sum`. Every index
    must be added once; `None` stands for an item without a partial result.

    Every partial is validated as it is added and no merge raises: an invalid partial or two that do
    not merge become MergeFailures (the first MAX_PROBLEMS in item order), whatever they hold.
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
        segment = None if partial is None else _leaf(index, partial)
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

    def result(self) -> tuple[Any, list[MergeFailure]]:
        """(the merged partial result, []), or (None, why): the first MAX_PROBLEMS failures in item
        order, found along the fixed tree."""
        if self._added != self._size or self._waiting:
            raise ValueError(f"{self._added} of {self._size} items added, {len(self._waiting)} segments open")
        root = self._root
        if root is None:
            return None, []
        if root.failures:
            return None, list(root.failures)
        return root.value, []


class _Segment:
    __slots__ = ("first", "last", "value", "failures")

    def __init__(self, first: int, last: int, value: Any = None, failures: tuple[MergeFailure, ...] = ()):
        self.first = first  # the smallest index of an item with a partial result in the segment
        self.last = last  # the largest
        self.value = value
        self.failures = failures


def _leaf(index: int, partial: Any) -> _Segment:
    found = problems(partial)
    if found:
        return _Segment(index, index, failures=tuple(MergeFailure((index, index), p) for p in found))
    return _Segment(index, index, partial)


def _join(left: _Segment | None, right: _Segment | None) -> _Segment | None:
    if left is None:
        return right
    if right is None:
        return left
    first, last = left.first, right.last
    if left.failures or right.failures:  # in item order: the left segment's come first
        return _Segment(first, last, failures=_first_failures(left.failures + right.failures))
    try:
        return _Segment(first, last, merge(left.value, right.value))
    except MergeError as error:
        failure = MergeFailure((left.first, left.last), str(error), (right.first, right.last))
    except Exception as error:  # never raised for valid partials; still no crash if it were
        failure = MergeFailure(
            (left.first, left.last), f"{type(error).__name__}: {error}", (right.first, right.last)
        )
    return _Segment(first, last, failures=(failure,))


def _first_failures(failures: Iterable[MergeFailure]) -> tuple[MergeFailure, ...]:
    return tuple(sorted(failures, key=lambda failure: failure.index)[:MAX_PROBLEMS])
