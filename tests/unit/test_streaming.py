"""A file too large to hold in memory: the worker streams its input, it never reads it whole."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from jobcore.merge import finalize
from worker.testing import run_processor

HEADER = b"id,label,value,note\n"
LINE = b'1234567,"a quoted, field",3.25,some padding text to make the line longer\n'


def _csv(path: Path, megabytes: int) -> int:
    rows = megabytes * 1024 * 1024 // len(LINE)
    with path.open("wb") as handle:
        handle.write(HEADER)
        for _ in range(rows):
            handle.write(LINE)
    return rows


def _peak_while_profiling(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        partial = run_processor("csv-profile", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return finalize(partial)["rows"], peak


def test_csv_profile_memory_does_not_grow_with_the_input(tmp_path: Path) -> None:
    # GIVEN a 1 MB CSV and an 8 MB CSV (profiled once first, for the one-time imports)
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small_rows, big_rows = _csv(small, 1), _csv(big, 8)
    run_processor("csv-profile", small)

    # WHEN csv-profile runs over each of them whole
    rows_small, peak_small = _peak_while_profiling(small)
    rows_big, peak_big = _peak_while_profiling(big)

    # THEN every row was profiled, and eight times the input took no more memory: it is streamed
    assert (rows_small, rows_big) == (small_rows, big_rows)
    assert peak_big < peak_small + 1024 * 1024
