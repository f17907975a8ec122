"""A rerun's summary (jobcore.rerun + jobcore.summary): the earlier job's succeeded partials and the
rerun's own, merged along the same tree over the item indices as one clean job's."""

from __future__ import annotations

import json
from typing import Any

from jobcore import layout, merge
from jobcore.models import RerunOrigin
from jobcore.summary import build_summary, execution_info
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import put_descriptor, put_failure, put_json, put_success

ARN = "arn:aws:states:us-east-1:123456789012:execution:spotmap-job:{}"
START, STOP = "2026-11-23T10:00:00.000Z", "2026-11-23T10:30:00.000Z"
# Floats whose sum depends on the order they are added in: 1e16 swallows a 1.0 added to it alone.
VALUES = [1e16, 1.0, -1e16, 1.0, 3.3, 1e-7, 2.5e15, 0.1, -2.5e15, 7.0, 0.2, 1e16, 1.0, -1e16, 0.3, 1.0]
FAILED = (1, 6, 13)


def partial(index: int) -> dict[str, Any]:
    return {"total": {"$sum": VALUES[index]}, "items": {"$list": [index]}}


def put_items(s3: Any, job_id: str, indices: list[int]) -> None:
    put_json(s3, layout.items_key(job_id), [{"index": index, "params": {"seed": index}} for index in indices])


def summary_of(s3: Any, job_id: str) -> dict[str, Any]:
    return build_summary(s3, BUCKET, job_id, execution_info(ARN.format(job_id), "SUCCEEDED", START, STOP))


def test_a_reruns_result_is_a_clean_jobs_to_the_last_bit(s3: Any) -> None:
    # GIVEN a job of 16 items of which 3 failed, and a rerun of those 3 that succeeded
    put_descriptor(s3, "first", len(VALUES))
    put_items(s3, "first", list(range(len(VALUES))))
    for index in range(len(VALUES)):
        if index in FAILED:
            put_failure(s3, "first", index, "exited with code 1")
        else:
            put_success(s3, "first", index, partial(index), partial_in_outcome=index % 2 == 0)
    descriptor = put_descriptor(s3, "again", len(FAILED))
    rerun = descriptor.model_copy(update={"rerun": RerunOrigin(job_id="first", item_count=len(VALUES))})
    put_json(s3, layout.descriptor_key("again"), rerun.model_dump(mode="json"))
    put_items(s3, "again", list(FAILED))
    for index in FAILED:
        put_success(s3, "again", index, partial(index))
    # AND a clean job of the same 16 items
    put_descriptor(s3, "clean", len(VALUES))
    for index in range(len(VALUES)):
        put_success(s3, "clean", index, partial(index))

    # WHEN the rerun and the clean job are summarised
    again, clean = summary_of(s3, "again"), summary_of(s3, "clean")

    # THEN the rerun's result is the clean job's, to the last bit, and its counts cover the whole job
    assert json.dumps(again["result"]) == json.dumps(clean["result"])
    assert again["result"]["items"] == list(range(len(VALUES)))
    assert again["items"] == {"total": 16, "succeeded": 16, "failed": 0}
    assert again["attempts"]["launched"] == len(FAILED)  # its own launches only
    assert again["rerun_of"] == "first"
    assert again["rerun"] == {"of": "first", "items_rerun": 3, "items_inherited": 13, "note": None}
    # AND merging the earlier job's merged result with the new partials would not have been exact: the
    # order of the float additions matters here
    first = summary_of(s3, "first")
    naive = merge.finalize(
        merge.merge(
            {"total": {"$sum": first["result"]["total"]}},
            {"total": {"$sum": sum(VALUES[index] for index in FAILED)}},
        )
    )
    assert naive["total"] != clean["result"]["total"]


def test_an_inherited_item_without_a_result_fails_the_merge_naming_it(s3: Any) -> None:
    # GIVEN a rerun whose earlier job lost item 0's result (its objects deleted)
    put_descriptor(s3, "gone", 2)
    put_items(s3, "gone", [0, 1])
    put_failure(s3, "gone", 1, "exited with code 1")
    descriptor = put_descriptor(s3, "again", 1)
    rerun = descriptor.model_copy(update={"rerun": RerunOrigin(job_id="gone", item_count=2)})
    put_json(s3, layout.descriptor_key("again"), rerun.model_dump(mode="json"))
    put_items(s3, "again", [1])
    put_success(s3, "again", 1, partial(1))

    # WHEN it is summarised, THEN it is FAILED and the error names the item and the earlier job
    summary = summary_of(s3, "again")
    assert summary["status"] == "FAILED" and summary["result"] is None
    assert "item 0" in summary["error"] and "job gone" in summary["error"]
