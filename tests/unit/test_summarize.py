"""Summarize writes summaries/<job_id>.json for closed parent executions, and ignores the rest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from summarize import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import (
    put_descriptor,
    put_failure,
    put_map_run,
    put_success,
    rows,
    succeeded_child,
)


def job_id_of(event: dict[str, Any]) -> str:
    return event["detail"]["name"]


def summary_of(s3: Any, job_id: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=f"summaries/{job_id}.json")["Body"].read())


def test_succeeded_execution_gets_its_summary(s3: Any, lambda_context: Any) -> None:
    # GIVEN a finished job of two items
    event = load_event("summarize_succeeded.json")
    job_id = job_id_of(event)
    put_descriptor(s3, job_id, 2)
    put_success(s3, job_id, 0, rows(3, 1.0, 2.0))
    put_success(s3, job_id, 1, rows(4, 0.5, 9.0))

    # WHEN its status-change event arrives
    response = app.lambda_handler(event, lambda_context)

    # THEN the summary is in S3 with the merged result and the execution's timing
    assert response["summary_key"] == f"summaries/{job_id}.json"
    summary = summary_of(s3, job_id)
    assert summary["status"] == "SUCCEEDED" and summary["job_id"] == job_id
    assert summary["execution_arn"] == event["detail"]["executionArn"]
    assert summary["result"]["rows"] == 7
    assert summary["timing"]["seconds"] == 2533.0


def test_summarize_reads_succeeded_items_from_the_map_runs_result_files(
    s3: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a finished job of three items whose Map Run wrote its result files
    event = load_event("summarize_succeeded.json")
    job_id = job_id_of(event)
    put_descriptor(s3, job_id, 3)
    outcomes = [put_success(s3, job_id, i, rows(i + 1, 0.0, i), partial_in_outcome=True) for i in range(3)]
    put_map_run(s3, job_id, [[succeeded_child(outcome) for outcome in reversed(outcomes)]])

    # WHEN its status-change event arrives
    with caplog.at_level("INFO"):
        app.lambda_handler(event, lambda_context)

    # THEN the summary merges the three items, and the log says they came from one result file
    assert summary_of(s3, job_id)["result"]["rows"] == 6
    (written,) = [record for record in caplog.records if record.getMessage() == "summary written"]
    assert written.reads == {"result_files": 1, "items_from_result_files": 3, "objects": 0}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("event_name", "status", "error"),
    [
        ("summarize_failed.json", "FAILED", "ToleratedFailureExceeded: More items failed"),
        ("summarize_timed_out.json", "TIMED_OUT", "execution TIMED_OUT"),
        ("summarize_aborted.json", "ABORTED", "execution ABORTED"),
    ],
)
def test_failed_timed_out_and_aborted_executions_get_summaries(
    s3: Any, lambda_context: Any, event_name: str, status: str, error: str
) -> None:
    event = load_event(event_name)
    job_id = job_id_of(event)
    put_descriptor(s3, job_id, 2)
    put_failure(s3, job_id, 0, "exited with code 1: error")
    app.lambda_handler(event, lambda_context)
    summary = summary_of(s3, job_id)
    assert summary["status"] == status
    assert summary["error"].startswith(error)
    assert summary["items"] == {"total": 2, "succeeded": 0, "failed": 2}


@pytest.mark.parametrize("event_name", ["summarize_running.json", "summarize_child_execution.json"])
def test_running_and_child_executions_are_ignored(s3: Any, lambda_context: Any, event_name: str) -> None:
    response = app.lambda_handler(load_event(event_name), lambda_context)
    assert response["summary_key"] is None
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/")["KeyCount"] == 0


def test_executions_of_other_state_machines_are_ignored(s3: Any, lambda_context: Any) -> None:
    event = load_event("summarize_succeeded.json")
    event["detail"]["stateMachineArn"] = "arn:aws:states:us-east-1:123456789012:stateMachine:someone-else"
    response = app.lambda_handler(event, lambda_context)
    assert "another state machine" in response["ignored"]
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/")["KeyCount"] == 0


def test_an_event_without_input_is_enough(s3: Any, lambda_context: Any) -> None:
    # GIVEN a status event whose input was left out (too large)
    event = load_event("summarize_succeeded.json")
    event["detail"]["input"] = None
    event["detail"]["inputDetails"] = {"included": False}
    put_descriptor(s3, job_id_of(event), 0)
    # WHEN / THEN the summary is still written from the execution name
    app.lambda_handler(event, lambda_context)
    assert summary_of(s3, job_id_of(event))["result"] == {"rows": 0, "columns": {}}


def test_a_job_that_does_not_exist_never_gets_a_succeeded_summary(s3: Any, lambda_context: Any) -> None:
    # GIVEN a SUCCEEDED status-change event for an execution whose job has no descriptor
    event = load_event("summarize_succeeded.json")
    job_id = job_id_of(event)

    # WHEN Summarize runs
    response = app.lambda_handler(event, lambda_context)

    # THEN it writes a summary, and the summary is FAILED, naming the missing descriptor
    summary = summary_of(s3, job_id)
    assert response["status"] == summary["status"] == "FAILED"
    assert f"jobs/{job_id}/job.json not found" in summary["error"]


def test_a_failed_job_is_published_to_the_notification_topic(
    s3: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stack with a notification topic (an SQS queue subscribed to it reads what it delivers)
    import boto3

    from jobcore import aws as factory

    sns, sqs = factory.sns(), boto3.client("sqs")
    topic = sns.create_topic(Name="spotmap-NotificationTopic")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic)
    app.settings.cache_clear()
    # AND a job of two items, one failed
    event = load_event("summarize_failed.json")
    job_id = job_id_of(event)
    put_descriptor(s3, job_id, 2)
    put_success(s3, job_id, 0, rows(3, 1.0, 2.0))
    put_failure(s3, job_id, 1, "exit code 3 (error)")

    # WHEN its FAILED status-change event arrives
    app.lambda_handler(event, lambda_context)

    # THEN one short message tells the job, its status, counts, cost and where summary and report are
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert len(messages) == 1
    text = messages[0]["Body"]
    assert text.splitlines()[0].startswith(f"Job {job_id} FAILED")
    assert "Items: 1/2 succeeded, 1 failed" in text
    assert "Estimated cost: $" in text
    assert f"Summary: s3://{BUCKET}/summaries/{job_id}.json" in text
    assert f"Report:  s3://{BUCKET}/summaries/{job_id}.html" in text
