"""The bad-input catalogue, through the local cloud: a correct result or a clear FAILED summary, never a
hang, and never a lost or modified input object."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner
from tests.conftest import load_event

WAIT_SECONDS = 120


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    with LocalCloud(options=CloudOptions(state_dir=tmp_path_factory.mktemp("state"))) as running:
        yield running


def _wait_for_summary(cloud: LocalCloud, job_id: str) -> dict[str, Any]:
    s3 = cloud.client("s3")
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            return json.loads(
                s3.get_object(Bucket=cloud.stack.bucket, Key=f"summaries/{job_id}.json")["Body"].read()
            )
        except s3.exceptions.NoSuchKey:
            time.sleep(0.2)
    history = cloud.client("stepfunctions").list_executions(stateMachineArn=cloud.stack.state_machine_arn)
    raise AssertionError(
        f"no summary for {job_id} after {WAIT_SECONDS} s; executions: {history['executions']}"
    )


def _executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=cloud.stack.state_machine_arn)["executions"]


@pytest.mark.parametrize("name", ["sales 2024 Q1.csv", "a+b=c.csv", "100% done.csv", "Île-de-France é.csv"])
def test_awkward_keys_are_decoded_and_profiled(cloud: LocalCloud, tmp_path: Path, name: str) -> None:
    # GIVEN a CSV whose key has spaces, '+', '%' or non-ASCII letters
    path = tmp_path / "data.csv"
    path.write_text("x,y\n1,a\n2,b\n", encoding="utf-8")

    # WHEN it is uploaded (EventBridge "Object Created", key verbatim)
    watch = JobRunner(cloud, progress=None).submit(path, key=f"input/{name}")
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN the summary names the decoded key and the result is right
    assert summary["status"] == "SUCCEEDED"
    assert summary["input"]["key"] == f"input/{name}"
    assert summary["result"]["rows"] == 2


def test_both_event_shapes_and_repeated_deliveries_make_exactly_one_job(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN an upload whose key needs URL encoding, and the job it started
    path = tmp_path / "dup.csv"
    path.write_text("n\n1\n2\n3\n", encoding="utf-8")
    key = "input/dup report+v2 é.csv"
    watch = JobRunner(cloud, progress=None).submit(path, key=key)
    first = _wait_for_summary(cloud, watch.job_id)
    head = cloud.client("s3").head_object(Bucket=cloud.stack.bucket, Key=key)

    # WHEN the same upload is delivered again: as an S3 notification (key URL-encoded), and as
    # EventBridge events with the key verbatim and URL-encoded
    notification = load_event("start_job_s3_put.json")
    record = notification["Records"][0]
    record["s3"]["bucket"]["name"] = cloud.stack.bucket
    record["s3"]["object"].update(
        {
            "key": quote_plus(key, safe="/"),
            "versionId": head["VersionId"],
            "size": head["ContentLength"],
            "eTag": head["ETag"].strip('"'),
        }
    )
    lambda_client = cloud.client("lambda")
    start_job = cloud.stack.functions["StartJobFunction"].name
    for _ in range(2):
        response = lambda_client.invoke(FunctionName=start_job, Payload=json.dumps(notification))
        assert "FunctionError" not in response, response["Payload"].read()
    object_created = load_event("start_job_eventbridge_object_created.json")
    object_created["detail"]["bucket"]["name"] = cloud.stack.bucket
    object_created["detail"]["object"].update(
        {"version-id": head["VersionId"], "size": head["ContentLength"], "etag": head["ETag"].strip('"')}
    )
    for shown_key in (key, quote(key, safe="/")):
        object_created["detail"]["object"]["key"] = shown_key
        response = lambda_client.invoke(FunctionName=start_job, Payload=json.dumps(object_created))
        assert "FunctionError" not in response, response["Payload"].read()

    # THEN there is still exactly one execution and one summary for it
    names = [execution["name"] for execution in _executions(cloud)]
    assert names.count(watch.job_id) == 1
    assert _wait_for_summary(cloud, watch.job_id)["result"] == first["result"]


@pytest.mark.parametrize(
    "key",
    [
        "input/folder/",
        "jobs/x/items.json",
        "output/x/0/result.csv",
        "summaries/fake.json",
        "elsewhere/data.csv",
    ],
)
def test_uploads_outside_input_and_folder_markers_start_no_job(cloud: LocalCloud, key: str) -> None:
    # GIVEN the executions so far
    before = len(_executions(cloud))

    # WHEN an object is written outside input/ (or a folder marker inside it)
    cloud.client("s3").put_object(
        Bucket=cloud.stack.bucket, Key=key, Body=b"" if key.endswith("/") else b"a\n1\n"
    )
    time.sleep(1.5)
    cloud.events.wait_idle(30)

    # THEN no job started
    assert len(_executions(cloud)) == before


def test_invalid_utf8_fails_the_job_clearly_and_leaves_the_input_untouched(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN a CSV with a byte sequence that is not UTF-8 on its third line
    path = tmp_path / "latin1.csv"
    body = b"name,city\nAnn,Paris\n" + "Zoë,Köln\n".encode("latin-1")
    path.write_bytes(body)

    # WHEN it runs
    watch = JobRunner(cloud, progress=None).submit(path, key="input/latin1.csv")
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN the job failed with a reason that says what is wrong, and the input is unchanged
    assert summary["status"] == "FAILED"
    assert "utf-8" in json.dumps(summary["failures"]).lower()
    stored = cloud.client("s3").get_object(Bucket=cloud.stack.bucket, Key="input/latin1.csv")["Body"].read()
    assert stored == body


def test_ragged_rows_are_counted_not_profiled(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a CSV with one row too short and one too long
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n4,5,6\n7,8\n", encoding="utf-8")

    # WHEN it runs
    watch = JobRunner(cloud, progress=None).submit(path, key="input/ragged.csv")
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN the good rows are profiled and the ragged ones counted as bad rows (worker/README.md)
    assert summary["status"] == "SUCCEEDED"
    assert summary["result"]["bad_rows"] == 2
    assert summary["result"]["columns"]["a"]["count"] == 2


def test_abort_stops_every_task_and_writes_an_aborted_summary(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a running job of long tasks
    manifest = tmp_path / "long.job.json"
    manifest.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {"command": ["python3", "-c", "import time; time.sleep(300)"]},
                "source": {"count": 3},
            }
        )
    )
    watch = JobRunner(cloud, progress=None).submit(manifest)
    deadline = time.monotonic() + 60
    while len(cloud.fargate.running_processes()) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = cloud.fargate.running_processes()
    assert len(pids) >= 3

    # WHEN the user aborts the job
    assert spotmap_main(["local", "abort", watch.job_id, "--endpoint-url", cloud.endpoint]) == 0

    # THEN within 60 s no worker process of it is left and its summary says ABORTED
    summary = _wait_for_summary(cloud, watch.job_id)
    assert summary["status"] == "ABORTED"
    # AND it counts and costs the tasks that ran, though no item got an outcome
    assert summary["attempts"]["launched"] >= 3 and summary["attempts"]["estimated"] >= 3
    assert summary["cost"]["fargate"]["spot"]["vcpu_seconds"] > 0
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive: reap it if it is ours
        return os.waitpid(pid, os.WNOHANG) == (0, 0)
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


# ------------------------------------------------------------------ partial results, summaries' honesty

PRINT_PARTIAL = ["python3", "-c", "import os; print(os.environ['SPOTMAP_PARAM_PARTIAL'])"]


def _command_job(tmp_path: Path, name: str, items: list[dict[str, Any]], **params: Any) -> Path:
    """A command-processor manifest whose item i prints items[i]["partial"] as its partial result."""
    manifest = tmp_path / f"{name}.job.json"
    manifest.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {"command": PRINT_PARTIAL, **params},
                "source": {"items": items},
            }
        ),
        encoding="utf-8",
    )
    return manifest


def test_partials_that_break_the_merge_algebra_fail_their_own_items_naming_the_key(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN a program whose items print: a valid partial; $sum of a string (next to numbers: the
    # merge used to crash Summarize three times, and $sum of strings only concatenated); an unknown
    # operator (used to pass through unmerged); an operator inside a plain list
    items = [
        {"partial": {"n": {"$sum": 1}}},
        {"partial": {"n": {"$sum": "one"}}},
        {"partial": {"n": {"$bogus": 1}}},
        {"partial": {"n": [{"$sum": 1}]}},
    ]
    watch = JobRunner(cloud, progress=None).submit(_command_job(tmp_path, "bad-partials", items))

    # WHEN it runs
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN there is a summary, FAILED, and each invalid item failed with its key and its problem
    assert summary["status"] == "FAILED"
    assert summary["items"] == {"total": 4, "succeeded": 1, "failed": 3}
    reasons = {failure["index"]: failure["reason"] for failure in summary["failures"]}
    assert "key `n`: $sum takes a number, not a string" in reasons[1]
    assert "key `n`: unknown operator $bogus" in reasons[2]
    assert "key `n`: $sum inside a plain list is not merged" in reasons[3]
    assert summary["result"] == {"n": 1}


def test_a_cell_of_megabytes_gives_a_summary_of_kilobytes(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a CSV with one 3,000,000-character cell (a 50 MB one made a 100 MB summary: min and max
    # each held it)
    path = tmp_path / "huge-cell.csv"
    path.write_text("name\nshort\n" + "x" * 3_000_000 + "\n", encoding="utf-8")

    # WHEN it runs
    summary = _wait_for_summary(cloud, JobRunner(cloud, progress=None).submit(path).job_id)

    # THEN the cell is cut to the string budget with its true length, and the summary stays small
    assert summary["status"] == "SUCCEEDED"
    assert summary["result"]["columns"]["name"]["max"].endswith("…[truncated: 3000000 characters]")
    assert len(json.dumps(summary)) < 20_000


def test_an_unclosed_quote_fails_the_job_naming_its_line(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a CSV whose quote on line 3 is never closed (the rest of the file used to fold into one
    # field, with bad_rows 0)
    path = tmp_path / "unclosed.csv"
    path.write_text('id,comment\n1,fine\n2,"never closed\n3,more\n4,rows\n', encoding="utf-8")

    # WHEN it runs
    summary = _wait_for_summary(cloud, JobRunner(cloud, progress=None).submit(path).job_id)

    # THEN the job failed, its failure names the unclosed quote and the line its record starts on
    assert summary["status"] == "FAILED"
    (failure,) = summary["failures"]
    assert "unclosed quote" in failure["reason"] and "byte offset 18 (line 3)" in failure["reason"]


def test_an_item_too_large_for_the_os_names_e2big(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN a command job with a 140 KB item param (passed as an environment variable: Linux allows
    # 128 KiB per variable), small enough for a Step Functions state (StartJob refuses larger items)
    items = [{"partial": {"n": {"$sum": 1}}}, {"partial": {"n": {"$sum": 1}}, "blob": "b" * 140_000}]
    watch = JobRunner(cloud, progress=None).submit(_command_job(tmp_path, "e2big", items))

    # WHEN it runs
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN the big item failed, and its reason names E2BIG and the variable, not only an OSError
    assert summary["status"] == "FAILED" and summary["items"]["failed"] == 1
    (failure,) = summary["failures"]
    assert (
        failure["index"] == 1 and "E2BIG" in failure["reason"] and "$SPOTMAP_PARAM_BLOB" in failure["reason"]
    )


def test_an_item_too_large_for_a_state_is_named_and_the_summary_agrees_with_itself(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN a command job with a 300 KB item (more than a Step Functions state may hold)
    items = [{"partial": {"n": {"$sum": 1}}}, {"partial": {"n": {"$sum": 1}}, "blob": "b" * 300_000}]
    watch = JobRunner(cloud, progress=None).submit(_command_job(tmp_path, "too-big", items))

    # WHEN it runs (or is refused before it starts)
    summary = _wait_for_summary(cloud, watch.job_id)

    # THEN the summary is FAILED and says why in terms of the 256 KiB limit, naming the item, and never
    # claims that every item succeeded with no failure
    assert summary["status"] == "FAILED"
    assert "256 KiB" in json.dumps(summary, ensure_ascii=False)
    refused_before_start = summary["items"]["total"] == 0 and "item 1 " in (summary["error"] or "")
    some_failed = summary["failures"] or summary["items"]["succeeded"] < summary["items"]["total"]
    assert refused_before_start or some_failed


def test_summarize_and_evaluate_job_for_a_job_that_does_not_exist_never_say_succeeded(
    cloud: LocalCloud,
) -> None:
    # GIVEN a SUCCEEDED status-change event, and an EvaluateJob request, for a job that was never made
    job_id = "ghost-0000000000000000"
    event = load_event("summarize_succeeded.json")
    arn = cloud.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
    event["resources"] = [arn]
    event["detail"].update(
        {"executionArn": arn, "stateMachineArn": cloud.stack.state_machine_arn, "name": job_id, "input": None}
    )
    request = load_event("evaluate_job.json")
    request.update({"job_id": job_id, "bucket": cloud.stack.bucket})
    lambda_client = cloud.client("lambda")

    # WHEN Summarize and EvaluateJob are invoked
    summarized = lambda_client.invoke(
        FunctionName=cloud.stack.functions["SummarizeFunction"].name, Payload=json.dumps(event)
    )
    evaluated = lambda_client.invoke(
        FunctionName=cloud.stack.functions["EvaluateJobFunction"].name, Payload=json.dumps(request)
    )

    # THEN the summary written is FAILED, naming the missing job, and EvaluateJob refuses with
    # JobNotFound (which fails an execution) instead of "within tolerance"
    assert "FunctionError" not in summarized, summarized["Payload"].read()
    summary = _wait_for_summary(cloud, job_id)
    assert summary["status"] == "FAILED" and f"jobs/{job_id}/job.json not found" in summary["error"]
    assert evaluated.get("FunctionError") == "Unhandled"
    assert json.loads(evaluated["Payload"].read())["errorType"] == "JobNotFound"


def test_a_command_given_as_a_string_fails_the_job_before_any_task_starts(
    cloud: LocalCloud, tmp_path: Path
) -> None:
    # GIVEN a command-processor manifest whose command is a shell string, not an argv list
    manifest = tmp_path / "string-command.job.json"
    manifest.write_text(json.dumps({"processor": "command", "params": {"command": "echo hi"}, "count": 3}))
    launched_before = cloud.fargate.counters["run_task"]

    # WHEN it is uploaded
    watch = JobRunner(cloud, progress=None).submit(manifest)

    # THEN the job's summary is FAILED and names the field, and no task was launched for it
    summary = _wait_for_summary(cloud, watch.job_id)
    assert summary["status"] == "FAILED"
    assert "params.command: must be a non-empty list of strings" in summary["error"]
    assert summary["attempts"]["launched"] == 0
    assert cloud.fargate.counters["run_task"] == launched_before
