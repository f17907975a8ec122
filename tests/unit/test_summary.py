"""The summary document: every contract field, from S3 state alone, deterministic."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobcore.attempts import record_launch
from jobcore.job_store import JobStore
from jobcore.models import Capacity, ResultRecord
from jobcore.summary import Reads, build_summary, execution_info, write_summary
from spotmap.result_writer import ChildExecution
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import (
    CHILD_START,
    CHILD_STOP,
    item_usage,
    put_descriptor,
    put_failure,
    put_json,
    put_map_run,
    put_success,
    rows,
    succeeded_child,
)
from tests.unit.partial_shapes import CLASHING_PARTIALS, INVALID_PARTIALS

ARN = "arn:aws:states:us-east-1:123456789012:execution:spotmap-job:job-1"
START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)
STOP = datetime(2026, 11, 23, 10, 42, 13, 500000, tzinfo=timezone.utc)


def test_a_mixed_job_summary_has_every_contract_field(s3: Any) -> None:
    # GIVEN a job of 4 items: two succeeded (one after a Spot interruption), one failed, one never finished
    put_descriptor(s3, "job-1", 4)
    put_success(s3, "job-1", 0, rows(10, 1.0, 5.0))
    put_success(s3, "job-1", 2, rows(5, -2.0, 3.0), attempts=2, interruptions=1)
    put_failure(
        s3,
        "job-1",
        1,
        "exited with code 137: killed (SIGKILL): out of memory or killed",
        capacity_retries=3,
        on_demand_fallbacks=1,
        attempts=2,
        throttled_run_task_calls=17,
    )
    execution = execution_info(ARN, "FAILED", START, STOP, "ToleratedFailureExceeded", "More items failed")

    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution)

    # THEN it says what happened to every item and merges the successful results
    assert summary["job_id"] == "job-1" and summary["status"] == "FAILED"
    assert summary["execution_arn"] == ARN
    assert summary["input"] == {
        "bucket": BUCKET,
        "key": "input/sales 2024 Q1.csv",
        "size": 4096,
        "version_id": "v1",
    }
    assert summary["processor"] == "csv-profile"
    assert summary["items"] == {"total": 4, "succeeded": 2, "failed": 2}
    assert summary["attempts"] == {
        "launched": 5,
        "spot_interruptions": 1,
        "capacity_retries": 3,
        "on_demand_fallbacks": 1,
        "throttled_run_task_calls": 17,
        "estimated": 0,
    }
    assert summary["failures"] == [
        {"index": 1, "reason": "exited with code 137: killed (SIGKILL): out of memory or killed"},
        {"index": 3, "reason": "not finished: execution FAILED"},
    ]
    assert summary["result"] == {"rows": 15, "amount": {"min": -2.0, "max": 5.0}, "order": []}
    assert summary["timing"] == {
        "started_at": "2026-11-23T10:00:00.000Z",
        "stopped_at": "2026-11-23T10:42:13.500Z",
        "seconds": 2533.5,
    }
    assert summary["error"] == "ToleratedFailureExceeded: More items failed"
    cost = summary["cost"]
    assert cost["fargate"]["spot"]["vcpu_seconds"] == 1200
    assert cost["fargate"]["on_demand"]["vcpu_seconds"] == 60
    assert cost["lambda"]["invocations"] == 6
    assert cost["prices"]["region"] == "us-east-1"
    assert cost["total_usd"] < cost["on_demand_equivalent_usd"]


def test_summaries_are_deterministic(s3: Any) -> None:
    # GIVEN the same S3 state summarised twice (event + reconciler, or a redelivered event)
    put_descriptor(s3, "job-1", 2)
    put_success(s3, "job-1", 0, rows(1, 1.0, 1.0))
    put_success(s3, "job-1", 1, rows(2, 0.0, 9.0))
    execution = execution_info(ARN, "SUCCEEDED", 1795428000000, 1795430533000)

    # WHEN it is written twice
    write_summary(s3, BUCKET, "job-1", build_summary(s3, BUCKET, "job-1", execution))
    first = s3.get_object(Bucket=BUCKET, Key="summaries/job-1.json")["Body"].read()
    write_summary(s3, BUCKET, "job-1", build_summary(s3, BUCKET, "job-1", execution))
    second = s3.get_object(Bucket=BUCKET, Key="summaries/job-1.json")["Body"].read()

    # THEN the documents are byte-identical, and epoch-millisecond times were understood
    assert first == second
    assert json.loads(first)["timing"]["seconds"] == 2533.0
    assert json.loads(first)["error"] is None


def test_results_merge_in_item_order_with_bounded_concurrency(s3: Any) -> None:
    # GIVEN 120 items whose partials are lists of their own index
    put_descriptor(s3, "job-1", 120)
    for index in range(120):
        put_json(
            s3, f"jobs/job-1/results/{index}.json", {"partial": {"order": {"$list": [index], "$limit": 1000}}}
        )

    # WHEN the summary fetches them with 8 workers
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP), workers=8)

    # THEN the merge saw them in index order
    assert summary["result"] == {"order": list(range(120))}
    assert summary["items"] == {"total": 120, "succeeded": 120, "failed": 0}


def test_an_aborted_job_counts_unfinished_items_as_failed(s3: Any) -> None:
    put_descriptor(s3, "job-1", 3)
    put_success(s3, "job-1", 1, rows(4, 1.0, 2.0))
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "ABORTED", START, STOP))
    assert summary["items"] == {"total": 3, "succeeded": 1, "failed": 2}
    assert [f["reason"] for f in summary["failures"]] == ["not finished: execution ABORTED"] * 2
    assert summary["error"] == "execution ABORTED"
    assert summary["result"]["rows"] == 4


def test_a_job_without_results_reports_the_empty_result(s3: Any) -> None:
    put_descriptor(s3, "job-1", 0)
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))
    assert summary["result"] == {"rows": 0, "columns": {}}
    assert summary["items"] == {"total": 0, "succeeded": 0, "failed": 0} and summary["failures"] == []


def test_a_rejected_manifest_is_the_jobs_error(s3: Any) -> None:
    put_descriptor(
        s3,
        "job-1",
        0,
        error="invalid manifest input/x.job.json: source.count: must be ≥ 0",
        processor="(rejected)",
    )
    summary = build_summary(
        s3, BUCKET, "job-1", execution_info(ARN, "FAILED", START, STOP, "JobRejected", "x")
    )
    assert summary["status"] == "FAILED"
    assert summary["error"] == "invalid manifest input/x.job.json: source.count: must be ≥ 0"


def test_unmergeable_results_are_reported_not_raised(s3: Any) -> None:
    put_descriptor(s3, "job-1", 2)
    put_success(s3, "job-1", 0, {"x": {"$sum": 1}})
    put_success(s3, "job-1", 1, {"x": {"$max": 1}})
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))
    assert summary["result"] is None
    assert "item 0 and item 1 do not merge: key `x`: $sum in one item and $max in another" in summary["error"]
    # a job whose results do not merge did not succeed, whatever its execution says
    assert summary["status"] == "FAILED" and summary["execution_status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("partial", "says"), [c[1:] for c in INVALID_PARTIALS], ids=[c[0] for c in INVALID_PARTIALS]
)
def test_summarize_writes_a_failed_summary_for_every_invalid_partial_shape(
    s3: Any, partial: Any, says: str
) -> None:
    # GIVEN a succeeded execution whose item 1 left a partial no worker would now let through (an old
    # worker, or a record written by hand), between two valid items
    put_descriptor(s3, "job-1", 3)
    put_success(s3, "job-1", 0, {"x": {"$sum": 1}})
    put_success(s3, "job-1", 1, None)
    put_json(s3, "jobs/job-1/results/1.json", {"partial": partial})  # as json.dumps writes it: NaN stays
    put_success(s3, "job-1", 2, {"x": {"$sum": 2}})

    # WHEN the summary is built and written
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))
    write_summary(s3, BUCKET, "job-1", summary)

    # THEN it exists, is not SUCCEEDED, and its error names the item and the key
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/job-1.json")["Body"].read())
    assert written["status"] == "FAILED" and written["result"] is None
    assert "item 1 has an invalid partial result" in written["error"] and says in written["error"]


@pytest.mark.parametrize(
    ("first", "second", "says"), [c[1:] for c in CLASHING_PARTIALS], ids=[c[0] for c in CLASHING_PARTIALS]
)
def test_summarize_writes_a_failed_summary_for_partials_that_clash_between_items(
    s3: Any, first: Any, second: Any, says: str
) -> None:
    # GIVEN two items whose partials are each valid but declare the same key differently
    put_descriptor(s3, "job-1", 2)
    put_success(s3, "job-1", 0, first)
    put_success(s3, "job-1", 1, second)

    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))

    # THEN it is FAILED and names both items and the key
    assert summary["status"] == "FAILED" and summary["result"] is None
    assert "item 0 and item 1 do not merge" in summary["error"] and says in summary["error"]


def test_a_missing_descriptor_still_gives_a_summary(s3: Any) -> None:
    summary = build_summary(s3, BUCKET, "job-x", execution_info(ARN, "FAILED", START, STOP))
    assert summary["input"] is None and summary["items"]["total"] == 0
    assert "jobs/job-x/job.json not found" in summary["error"]


# ------------------------------------------------------------------------------------- result files


def float_rows(index: int) -> dict[str, Any]:
    """A partial whose float sums round differently in different merge orders."""
    return {
        "rows": {"$sum": index + 1},
        "amount": {"$sum": 0.1 * index + 1e-7 / (index + 1)},
        "mean": {"$mean": [0.3 * index, 3]},
        "first": {"$first": f"item {index}"},
        "order": {"$list": [index]},
    }


class CountingGets:
    """The S3 client, counting GetObject calls by key."""

    def __init__(self, s3: Any):
        self._s3 = s3
        self.keys: list[str] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.keys.append(kwargs["Key"])
        return self._s3.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def test_result_files_give_the_same_summary_as_reading_every_item(s3: Any) -> None:
    # GIVEN a job of 13 items as the pipeline leaves it: 10 succeeded (outcome objects carrying their
    # partials, result records), item 5 failed, item 11 has a result record and no outcome (its worker
    # finished but no poll saw it), item 12 never finished
    put_descriptor(s3, "job-1", 13)
    outcomes = {
        index: put_success(
            s3,
            "job-1",
            index,
            float_rows(index),
            usage=item_usage(600 + 0.37 * index),
            partial_in_outcome=True,
        )
        for index in range(11)
        if index != 5
    }
    failed = put_failure(s3, "job-1", 5, "exited with code 1: error", capacity_retries=2)
    put_json(s3, "jobs/job-1/results/11.json", {"partial": float_rows(11)})
    # and the Map Run's result files: the second file out of item order, item 3's partial left out of
    # its output, the failed child in FAILED_0.json
    failed_child = replace(
        succeeded_child(failed), status="FAILED", output=None, error="ItemFailed", cause="The item failed"
    )
    groups = [
        [succeeded_child(outcomes[i]) for i in (0, 1, 2, 3, 4)] + [failed_child],
        [succeeded_child(outcomes[i]) for i in (10, 8, 9, 6, 7)],
    ]
    manifest_key = put_map_run(s3, "job-1", groups, omit_partial_of=3)
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    assert len(manifest["ResultFiles"]["SUCCEEDED"]) == 2 and len(manifest["ResultFiles"]["FAILED"]) == 1
    execution = execution_info(ARN, "FAILED", START, STOP, "ToleratedFailureExceeded", "More items failed")

    # WHEN the summary is built from the result files, and again object by object
    from_files, files_reads = CountingGets(s3), Reads()
    with_files = build_summary(from_files, BUCKET, "job-1", execution, reads=files_reads)
    per_item_reads = Reads()
    per_item = build_summary(s3, BUCKET, "job-1", execution, result_files=False, reads=per_item_reads)

    # THEN both documents are identical to the last bit of every float
    assert json.dumps(with_files, sort_keys=True) == json.dumps(per_item, sort_keys=True)
    assert with_files["result"]["order"] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert with_files["result"]["first"] == "item 0"
    assert with_files["items"] == {"total": 13, "succeeded": 11, "failed": 2}
    assert with_files["attempts"]["capacity_retries"] == 2
    assert [f["index"] for f in with_files["failures"]] == [5, 12]
    # and the result files spared a GET per succeeded item: only what they do not cover was read one
    # by one (the failed item, item 3 whose partial was left out, items 11 and 12 absent from them);
    # the FAILED file was read for why item 12 never finished
    assert files_reads == Reads(result_files=3, items_from_result_files=9, objects=6)
    item_gets = sorted(key for key in from_files.keys if "/outcomes/" in key or "/results/" in key)
    assert item_gets == [
        "jobs/job-1/outcomes/failed/5.json",
        "jobs/job-1/outcomes/succeeded/11.json",
        "jobs/job-1/outcomes/succeeded/12.json",
        "jobs/job-1/outcomes/succeeded/3.json",
        "jobs/job-1/results/11.json",
        "jobs/job-1/results/12.json",
    ]
    assert per_item_reads == Reads(result_files=1, items_from_result_files=0, objects=12)  # FAILED file


def test_items_a_missing_result_file_would_have_given_are_read_one_by_one(s3: Any) -> None:
    # GIVEN 4 succeeded items whose second result file is gone
    put_descriptor(s3, "job-1", 4)
    outcomes = [put_success(s3, "job-1", i, float_rows(i), partial_in_outcome=True) for i in range(4)]
    manifest_key = put_map_run(
        s3,
        "job-1",
        [[succeeded_child(outcomes[i]) for i in (0, 1)], [succeeded_child(outcomes[i]) for i in (2, 3)]],
    )
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    s3.delete_object(Bucket=BUCKET, Key=manifest["ResultFiles"]["SUCCEEDED"][1]["Key"])
    execution = execution_info(ARN, "SUCCEEDED", START, STOP)

    # WHEN the summary is built
    reads = Reads()
    summary = build_summary(s3, BUCKET, "job-1", execution, reads=reads)

    # THEN items 2 and 3 were read one by one and the summary is the same as without result files
    assert reads == Reads(result_files=2, items_from_result_files=2, objects=2)
    assert summary == build_summary(s3, BUCKET, "job-1", execution, result_files=False)
    assert summary["result"]["order"] == [0, 1, 2, 3]


def test_the_newest_map_run_is_the_one_read(s3: Any) -> None:
    # GIVEN a job run twice: an older Map Run whose files disagree with the outcomes, then a newer one
    put_descriptor(s3, "job-1", 2)
    outcomes = [put_success(s3, "job-1", i, float_rows(i), partial_in_outcome=True) for i in range(2)]
    stale = [
        succeeded_child(outcome.model_copy(update={"partial": {"rows": {"$sum": 1000}}}))
        for outcome in outcomes
    ]
    put_map_run(s3, "job-1", [stale])
    time.sleep(1.1)  # S3 lists LastModified to the second
    put_map_run(s3, "job-1", [[succeeded_child(outcome) for outcome in outcomes]])

    # WHEN the summary is built
    reads = Reads()
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP), reads=reads)

    # THEN it read the newer Map Run's files only
    assert reads == Reads(result_files=1, items_from_result_files=2, objects=0)
    assert summary["result"]["rows"] == 3


def test_a_succeeded_execution_of_a_job_that_does_not_exist_is_not_summarised_as_succeeded(s3: Any) -> None:
    # GIVEN no descriptor for job-x, and a SUCCEEDED status for an execution of that name
    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-x", execution_info(ARN, "SUCCEEDED", START, STOP))

    # THEN its status is FAILED (the CLI's exit code follows it), and its error says why
    assert summary["status"] == "FAILED" and summary["execution_status"] == "SUCCEEDED"
    assert "jobs/job-x/job.json not found" in summary["error"]


def test_strings_copied_from_data_into_the_summary_are_cut_to_the_budget(s3: Any) -> None:
    # GIVEN an item whose partial (from a processor without a budget of its own) holds a 1 MB string
    put_descriptor(s3, "job-1", 1)
    put_success(s3, "job-1", 0, {"longest": {"$max": "z" * 1_000_000}, "n": {"$sum": 1}})

    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))

    # THEN the string is its beginning and its true length, and the summary stays small
    assert summary["result"]["longest"].endswith("…[truncated: 1000000 characters]")
    assert len(json.dumps(summary)) < 10_000


def test_an_item_whose_child_failed_on_the_data_limit_is_failed_with_that_cause(s3: Any) -> None:
    # GIVEN a 2-item job: item 0 succeeded; item 1's child execution failed with States.DataLimitExceeded
    # (a 300 KB item: no Lambda of the child ran, so no outcome records why)
    put_descriptor(s3, "job-1", 2)
    succeeded = put_success(s3, "job-1", 0, rows(1, 1.0, 1.0), partial_in_outcome=True)
    too_big = ChildExecution(
        index=1,
        status="FAILED",
        input=json.dumps({"job_id": "job-1", "item": {"index": 1, "params": {"x": "b" * 300_000}}}),
        start=CHILD_START,
        stop=CHILD_STOP,
        error="States.DataLimitExceeded",
        cause=(
            "The state/task 'lambda' returned a result with a size exceeding the maximum number of "
            "bytes service limit."
        ),
    )
    put_map_run(s3, "job-1", [[succeeded_child(succeeded), too_big]])
    execution = execution_info(ARN, "FAILED", START, STOP, "ToleratedFailureExceeded", "More items failed")

    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution)

    # THEN item 1 is failed with the data limit named, not "not finished"
    assert summary["items"] == {"total": 2, "succeeded": 1, "failed": 1}
    (failure,) = summary["failures"]
    assert failure["index"] == 1
    assert failure["reason"].startswith("States.DataLimitExceeded: The state/task 'lambda' returned a result")
    assert "limited to 256 KiB; item 1's input alone is 300,0" in failure["reason"]


def test_an_aborted_job_counts_and_costs_every_launched_attempt_of_items_without_outcome(s3: Any) -> None:
    # GIVEN an aborted job of 3 items: item 0 succeeded; item 1 was launched twice (a Spot reclaim, then
    # on demand) and item 2 once, and both were still running when the execution was aborted, so
    # neither has an outcome; only LaunchTask's launch records tell of them
    put_descriptor(s3, "job-1", 3)
    put_success(s3, "job-1", 0, rows(1, 1.0, 1.0), usage=item_usage(spot_seconds=60))
    launched = [
        (1, 1, Capacity.SPOT, START),
        (1, 2, Capacity.ON_DEMAND, START + timedelta(seconds=100)),
        (2, 1, Capacity.SPOT, START + timedelta(seconds=10)),
    ]
    for index, attempt, capacity, at in launched:
        task = {"taskArn": f"arn:task/{index}-{attempt}", "cpu": "1024", "memory": "2048", "createdAt": at}
        record_launch(JobStore(s3, BUCKET, "job-1"), index, attempt, capacity, task)
    stop = START + timedelta(seconds=400)

    # WHEN the ABORTED summary is built (no Map result files: the Map never ended)
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "ABORTED", START, stop))

    # THEN every launched attempt is counted, and costed from its launch until the next launch or the
    # execution's stop (1 vCPU, 2 GB): Spot 60 + 100 + 390 s, on demand 300 s
    assert summary["attempts"]["launched"] == 4 and summary["attempts"]["estimated"] == 3
    fargate = summary["cost"]["fargate"]
    assert fargate["spot"]["vcpu_seconds"] == 550 and fargate["spot"]["gb_seconds"] == 1100
    assert fargate["on_demand"]["vcpu_seconds"] == 300
    assert summary["cost"]["total_usd"] > 0


def test_a_child_that_failed_after_its_task_wrote_a_result_is_failed_as_evaluate_job_counted_it(
    s3: Any,
) -> None:
    # GIVEN a 2-item job whose item 1 ran (its worker wrote a result record) but whose child execution
    # then failed on Step Functions' data limit, so it has no outcome: EvaluateJob counted it failed and
    # the execution FAILED ("more items failed…"); the summary used to say 2/2 succeeded, no failures
    put_descriptor(s3, "job-1", 2)
    succeeded = put_success(s3, "job-1", 0, rows(1, 1.0, 1.0), partial_in_outcome=True)
    record = ResultRecord(
        job_id="job-1",
        index=1,
        attempt=1,
        processor="csv-profile",
        partial=rows(5, 1.0, 1.0),
        started_at="2026-11-23T10:00:00Z",
        finished_at="2026-11-23T10:10:00Z",
    )
    put_json(s3, "jobs/job-1/results/1.json", record.model_dump(mode="json"))
    too_big = ChildExecution(
        index=1,
        status="FAILED",
        input=json.dumps({"job_id": "job-1", "item": {"index": 1, "params": {"x": "b" * 250_000}}}),
        start=CHILD_START,
        stop=CHILD_STOP,
        error="States.DataLimitExceeded",
        cause="The state/task 'lambda' returned a result with a size exceeding the maximum number of bytes.",
    )
    put_map_run(s3, "job-1", [[succeeded_child(succeeded), too_big]])
    execution = execution_info(ARN, "FAILED", START, STOP, "ToleratedFailureExceeded", "More items failed")

    # WHEN the summary is built from the result files and from the objects alone
    with_files = build_summary(s3, BUCKET, "job-1", execution)
    per_item = build_summary(s3, BUCKET, "job-1", execution, result_files=False)

    # THEN both say 1 succeeded, 1 failed with the data limit named, and only item 0's result merged
    assert with_files == per_item
    assert with_files["items"] == {"total": 2, "succeeded": 1, "failed": 1}
    assert [f["index"] for f in with_files["failures"]] == [1]
    assert "States.DataLimitExceeded" in with_files["failures"][0]["reason"]
    assert with_files["result"]["rows"] == 1


def test_a_result_record_that_is_not_json_gives_a_failed_summary_not_a_crash(s3: Any) -> None:
    # GIVEN a succeeded job whose item 1 result record is not JSON (truncated)
    put_descriptor(s3, "job-1", 2)
    put_success(s3, "job-1", 0, {"n": {"$sum": 1}})
    put_success(s3, "job-1", 1, {"n": {"$sum": 1}})
    s3.put_object(Bucket=BUCKET, Key="jobs/job-1/results/1.json", Body=b'{"partial": {"n": {"$su')

    # WHEN the summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "SUCCEEDED", START, STOP))

    # THEN it is FAILED, naming the item and why
    assert summary["status"] == "FAILED" and summary["result"] is None
    assert "item 1 has an invalid partial result: its result record is not JSON" in summary["error"]


def test_the_summary_document_has_the_readme_tables_fields_in_order(s3: Any) -> None:
    # GIVEN a job of two items, one succeeded and one still running
    put_descriptor(s3, "job-1", 2)
    put_success(s3, "job-1", 0, rows(4, 1.0, 2.0))

    # WHEN its summary is built
    summary = build_summary(s3, BUCKET, "job-1", execution_info(ARN, "RUNNING", START, None))

    # THEN its keys are the README's summary table's, in the Summary model's order; the optional blocks
    # are left out, and `pending` is counted while the execution runs
    assert list(summary) == [
        "job_id",
        "status",
        "execution_status",
        "execution_arn",
        "input",
        "processor",
        "params",
        "items",
        "attempts",
        "checkpoints",
        "tasks",
        "failures",
        "result",
        "output_prefix",
        "timing",
        "error",
        "cost",
    ]
    assert summary["items"] == {"total": 2, "succeeded": 1, "failed": 0, "pending": 1}
    assert list(summary["input"]) == ["bucket", "key", "size", "version_id"]
    assert list(summary["timing"]) == ["started_at", "stopped_at", "seconds"]
