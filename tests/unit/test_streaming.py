"""A file too large to hold in memory: the worker streams its input, it never reads it whole."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from jobcore.merge import finalize
from worker.testing import run_processor


def test_csv_profile_streams_its_input_in_bounded_memory(tmp_path: Path) -> None:
    # GIVEN a CSV of about 12 MB
    path = tmp_path / "big.csv"
    line = b'1234567,"a quoted, field",3.25,some padding text to make the line longer\n'
    with path.open("wb") as handle:
        handle.write(b"id,label,value,note\n")
        for _ in range(12 * 1024 * 1024 // len(line)):
            handle.write(line)
    rows = (path.stat().st_size - len(b"id,label,value,note\n")) // len(line)

    # WHEN csv-profile runs over the whole of it
    tracemalloc.start()
    try:
        partial = run_processor("csv-profile", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN every row was profiled while at most a small fraction of the file was ever in memory
    assert finalize(partial)["rows"] == rows
    assert peak < path.stat().st_size / 8
