"""csv-profile: row count and per-column statistics of a UTF-8 CSV, mergeable across shards.

Contract (worker/README.md has the full text): the first record is the header; `rows` = data records;
per column (by header name), if every non-empty cell in the *whole file* parses as a finite float, the
column is {"type": "number", count, nulls, min, max, sum, mean}, else {"type": "string", count, nulls,
min, max} with min/max in Python string order. The whole-file type decision is expressed with
{"$if": {"$all": numeric}, "$then": ..., "$else": ...}: each shard sends both branches and the merged
condition picks one.

Choices where the contract is silent:
- Ragged records (more or fewer fields than the header) count in `rows` and in `bad_rows`; their cells are
  not profiled; the first BAD_ROW_SAMPLES of them (byte offset in the object, field count) are listed in
  `bad_row_samples`. So for every column, count + nulls = rows - bad_rows.
- Blank lines (no field at all) are not records.
- A header name that repeats gets ".1", ".2", ... appended (as pandas does); an empty name stays "".
- Invalid UTF-8 or malformed quoting fails the item (exit 1) naming the byte offset; so does a quoted
  field still open at the end of the input (an unclosed quote), naming the line its record starts on.
- String min/max are cut to `jobcore.budget.STRING_BUDGET` characters with a marker naming the true
  length (a 50 MB cell would otherwise be copied twice into the summary).
"""

from __future__ import annotations

import csv
import math
from typing import Any

from jobcore.budget import truncate
from worker.api import Context, ProcessingError, processor

BAD_ROW_SAMPLES = 10

# a field may be long (a quoted paragraph); the default limit of 128 KiB would fail such files
csv.field_size_limit(2**31 - 1)


def column_names(header: list[str]) -> list[str]:
    """Header names made unique: a repeated name gets ".1", ".2", ... appended, skipping names that the
    header itself uses."""
    taken = set(header)
    used: set[str] = set()
    names: list[str] = []
    for name in header:
        unique = name
        if unique in used:
            suffix = 1
            while f"{name}.{suffix}" in used or f"{name}.{suffix}" in taken:
                suffix += 1
            unique = f"{name}.{suffix}"
        used.add(unique)
        names.append(unique)
    return names


@processor("csv-profile")
def csv_profile(ctx: Context) -> dict[str, Any]:
    """Rows and per-column type, count, nulls, min, max (sum, mean for numbers) of a UTF-8 CSV."""
    lines = ctx.lines()
    try:
        return profile(lines, ctx.input_name or "input")
    finally:
        lines.close()


class _Lines:
    """The lines, noting when they have run out: a record the csv reader still returns after that was
    cut off by the end of the input inside a quoted field (the reader, not strict, would fold the
    rest of the input into that field without a word)."""

    def __init__(self, lines: Any) -> None:
        self._lines = iter(lines)
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line: str = next(self._lines)
        except StopIteration:
            self.ended = True
            raise
        return line


def profile(lines: Any, where: str) -> dict[str, Any]:
    """Profile the CSV records read from `lines` (a `worker.storage.DecodedLines`)."""
    source = _Lines(lines)
    reader = csv.reader(source)
    record_start = lines.file_offset()
    record_line = 1
    try:
        header = next(reader, None)
        if header is not None and source.ended:
            raise _unclosed_quote(lines, where, record_start, record_line)
        if header is None:
            return _partial(0, 0, [], [], {})
        names = column_names(header)
        width = len(names)
        count = [0] * width
        nulls = [0] * width
        s_min: list[str | None] = [None] * width
        s_max: list[str | None] = [None] * width
        numeric = [True] * width
        n_min: list[float | None] = [None] * width
        n_max: list[float | None] = [None] * width
        n_sum = [0.0] * width
        rows = bad_rows = 0
        samples: list[dict[str, int]] = []
        isfinite = math.isfinite
        columns = range(width)

        while True:
            record_start = lines.file_offset()
            record_line = lines.line + 1
            row = next(reader, None)
            if row is None:
                break
            if source.ended:
                raise _unclosed_quote(lines, where, record_start, record_line)
            if not row:
                continue  # a blank line is not a record
            rows += 1
            if len(row) != width:
                bad_rows += 1
                if len(samples) < BAD_ROW_SAMPLES:
                    samples.append({"byte_offset": record_start, "fields": len(row), "expected": width})
                continue
            for i in columns:
                cell = row[i]
                if not cell:
                    nulls[i] += 1
                    continue
                count[i] += 1
                low = s_min[i]
                if low is None or cell < low:
                    s_min[i] = cell
                high = s_max[i]
                if high is None or cell > high:
                    s_max[i] = cell
                if numeric[i]:
                    try:
                        value = float(cell)
                    except ValueError:
                        numeric[i] = False
                        continue
                    if not isfinite(value):
                        numeric[i] = False
                        continue
                    n_sum[i] += value
                    low_n = n_min[i]
                    if low_n is None or value < low_n:
                        n_min[i] = value
                    high_n = n_max[i]
                    if high_n is None or value > high_n:
                        n_max[i] = value
    except csv.Error as error:
        raise ProcessingError(
            f"malformed CSV in {where} in the record starting at byte offset {record_start}: {error}"
        ) from None

    stats = {
        name: _column(numeric[i], count[i], nulls[i], s_min[i], s_max[i], n_min[i], n_max[i], n_sum[i])
        for i, name in enumerate(names)
    }
    return _partial(rows, bad_rows, samples, names, stats)


def _unclosed_quote(lines: Any, where: str, record_start: int, record_line: int) -> ProcessingError:
    line = lines.describe_line(record_line) if hasattr(lines, "describe_line") else f"line {record_line}"
    return ProcessingError(
        f"malformed CSV in {where}: unclosed quote: the record starting at byte offset {record_start} "
        f"({line}) is still inside a quoted field at the end of the input"
    )


def _column(
    numeric: bool,
    count: int,
    nulls: int,
    s_min: str | None,
    s_max: str | None,
    n_min: float | None,
    n_max: float | None,
    n_sum: float,
) -> dict[str, Any]:
    if not numeric:  # the numeric branch can never be chosen: send neutral values
        n_min = n_max = None
        n_sum = 0.0
    # min and max are exact over the shard's whole cells; what travels is cut to the budget (a 50 MB
    # cell must not become a 100 MB summary). Across shards, cut strings compare by what is kept.
    if s_min is not None:
        s_min = truncate(s_min)
    if s_max is not None:
        s_max = truncate(s_max)
    return {
        "$if": {"$all": numeric},
        "$then": {
            "type": "number",
            "count": {"$sum": count},
            "nulls": {"$sum": nulls},
            "min": {"$min": n_min},
            "max": {"$max": n_max},
            "sum": {"$sum": n_sum},
            "mean": {"$mean": [n_sum, count]},
        },
        "$else": {
            "type": "string",
            "count": {"$sum": count},
            "nulls": {"$sum": nulls},
            "min": {"$min": s_min},
            "max": {"$max": s_max},
        },
    }


def _partial(
    rows: int, bad_rows: int, samples: list[dict[str, int]], names: list[str], stats: dict[str, Any]
) -> dict[str, Any]:
    return {
        "rows": {"$sum": rows},
        "bad_rows": {"$sum": bad_rows},
        "bad_row_samples": {"$list": samples, "$limit": BAD_ROW_SAMPLES},
        "columns": stats,
    }
