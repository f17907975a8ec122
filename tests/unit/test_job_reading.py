"""Reading a job for its summary (jobcore.job_reading), apart from merging it (jobcore.summary): every item
once, with what its objects say, whether from the Map Run's result files or object by object."""

from __future__ import annotations

from typing import Any

import pytest

from jobcore.job_reading import JobReader, Reads
from jobcore.job_store import JobStore
from jobcore.models import TaskStatus
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import (
    put_descriptor,
    put_failure,
    put_json,
    put_map_run,
    put_success,
    succeeded_child,
)


@pytest.mark.parametrize("result_files", [True, False], ids=["from-result-files", "object-by-object"])
def test_a_reader_gives_every_item_once_with_what_its_objects_say(s3: Any, result_files: bool) -> None:
    # GIVEN a job of 5 items: 0 and 1 succeeded (in the Map Run's result file too), 2 failed, 3 left a
    # result record and no outcome (its worker finished, no poll saw it), 4 never finished
    put_descriptor(s3, "job-1", 5)
    succeeded = [
        put_success(s3, "job-1", index, {"n": {"$sum": index}}, partial_in_outcome=True) for index in (0, 1)
    ]
    put_failure(s3, "job-1", 2, "exited with code 1")
    put_json(s3, "jobs/job-1/results/3.json", {"partial": {"n": {"$sum": 3}}})
    put_map_run(s3, "job-1", [[succeeded_child(outcome) for outcome in succeeded]])

    # WHEN a reader reads it, from the result files or object by object
    reads = Reads()
    reader = JobReader(JobStore(s3, BUCKET, "job-1"), result_files=result_files, reads=reads)
    items = {item.index: item for item in reader.items()}

    # THEN every item came once, with its verdict and its partial
    assert sorted(items) == [0, 1, 2, 3, 4] and (reader.total, reader.size) == (5, 5)
    assert [items[index].verdict for index in range(5)] == [
        TaskStatus.SUCCEEDED,
        TaskStatus.SUCCEEDED,
        TaskStatus.FAILED,
        None,
        None,
    ]
    assert [items[index].partial for index in range(5)] == [
        {"n": {"$sum": 0}},
        {"n": {"$sum": 1}},
        None,
        {"n": {"$sum": 3}},
        None,
    ]
    assert items[2].outcome is not None and items[2].outcome["reason"] == "exited with code 1"
    # AND the reader knows which items succeeded (item 3 by its result record) and which failed
    assert (reader.succeeded, reader.failed) == ({0, 1, 3}, {2})
    # AND the result files spared the succeeded items' GETs
    assert reads.items_from_result_files == (2 if result_files else 0)
