"""Drop a file, get a summary: the whole pipeline on the local cloud, from the real template."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import assert_profile_equal, profile_csv, write_csv


def test_large_csv_is_sharded_fanned_out_and_profiled_exactly(tmp_path: Path, local_run) -> None:
    # GIVEN a 100,000-row CSV (quoted commas and newlines included) and shards of a tenth of it (10 items)
    data_file = write_csv(tmp_path / "orders 2024+Q1.csv", rows=100_000)
    size_mb = data_file.stat().st_size / 1e6
    shard_mb = round(size_mb / 10, 3)

    # WHEN it is run locally with fewer concurrent items than shards
    run = local_run(data_file, params={"ShardSizeMB": shard_mb, "MaxConcurrency": 3})

    # THEN the job succeeded and every figure matches an independent profile of the whole file
    assert run.exit_code == 0
    (summary,) = run.summaries
    assert summary["status"] == "SUCCEEDED"
    assert summary["input"]["key"] == "input/orders 2024+Q1.csv"
    assert summary["input"]["size"] == data_file.stat().st_size
    assert summary["items"]["total"] == 10
    assert summary["items"]["succeeded"] == summary["items"]["total"]
    assert summary["items"]["failed"] == 0
    assert summary["failures"] == []
    assert summary["attempts"]["launched"] == summary["items"]["total"]
    assert summary["timing"]["seconds"] > 0
    assert_profile_equal(summary["result"], profile_csv(data_file.read_bytes()))
    # and the summary file sits in the copied bucket at summaries/<job_id>.json
    copied = json.loads((run.out_dir / "summaries" / f"{summary['job_id']}.json").read_text())
    assert copied == summary


def test_header_only_and_empty_files_succeed_without_tasks(tmp_path: Path, local_run) -> None:
    # GIVEN a header-only CSV and a zero-byte file
    header_only = tmp_path / "header.csv"
    header_only.write_text("a,b,c\n")
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    # WHEN both are run
    run = local_run(header_only, empty)

    # THEN both jobs succeed with zero rows and no task launched
    assert run.exit_code == 0
    for summary in run.summaries:
        assert summary["status"] == "SUCCEEDED"
        assert summary["result"]["rows"] == 0
        assert summary["items"]["total"] == 0
        assert summary["attempts"]["launched"] == 0
