"""A size budget for text copied from data into a partial result or a summary.

A 50 MB CSV cell must not make a 100 MB summary (a string column's min and max would each hold it), so
every string the summary copies from data is cut to STRING_BUDGET characters: its beginning, then a
marker with its true length, e.g. "aaaa…[truncated: 52428800 characters]". Cutting is idempotent (a cut
string fits the budget) and keeps string order for strings that differ within the kept beginning.
"""

from __future__ import annotations

from typing import Any

STRING_BUDGET = 1024  # characters, marker included


def marker(length: int) -> str:
    return f"…[truncated: {length} characters]"


def truncate(text: str, budget: int = STRING_BUDGET) -> str:
    """`text`, or its beginning and a marker naming its true length when it is longer than `budget`."""
    if len(text) <= budget:
        return text
    tail = marker(len(text))
    return text[: max(budget - len(tail), 0)] + tail


def bound_strings(value: Any, budget: int = STRING_BUDGET) -> Any:
    """`value` with every string in it (object keys too) cut to the budget."""
    if isinstance(value, str):
        return truncate(value, budget)
    if isinstance(value, dict):
        bounded: dict[str, Any] = {}
        for key, item in value.items():
            short = truncate(key, budget) if isinstance(key, str) else key
            if short in bounded:  # two long keys with one beginning and length: keep both
                short = _distinct(short, bounded, budget)
            bounded[short] = bound_strings(item, budget)
        return bounded
    if isinstance(value, list):
        return [bound_strings(item, budget) for item in value]
    return value


def _distinct(key: str, taken: dict[str, Any], budget: int) -> str:
    number = 2
    while True:
        suffix = f" #{number}"
        candidate = truncate(key, budget - len(suffix)) + suffix if len(key) >= budget else key + suffix
        if candidate not in taken:
            return candidate
        number += 1
