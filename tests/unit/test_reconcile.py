"""Reconcile writes the summaries that lost status events never produced."""

from __future__ import annotations

import json
from typing import Any

from reconcile import app
from tests.conftest import load_event
from tests.unit.conftest import BUCKET, STATE_MACHINE_ARN
from tests.unit.job_builder import put_descriptor, put_success, rows


def start(sfn: Any, name: str) -> str:
    return sfn.start_execution(stateMachineArn=STATE_MACHINE_ARN, name=name, input="{}")["executionArn"]


def test_closed_executions_without_summary_get_one(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN three jobs: one closed without summary, one closed with a summary, one still running
    for job_id in ("lost-event", "summarised", "running"):
        put_descriptor(s3, job_id, 1)
        put_success(s3, job_id, 0, rows(2, 1.0, 3.0))
    for job_id in ("lost-event", "summarised"):
        sfn.stop_execution(executionArn=start(sfn, job_id))
    start(sfn, "running")
    s3.put_object(Bucket=BUCKET, Key="summaries/summarised.json", Body=b'{"kept": true}')

    # WHEN the reconciler runs on its schedule
    report = app.lambda_handler(load_event("reconcile_scheduled.json"), lambda_context)

    # THEN only the missing summary was written, and the existing one is untouched
    assert report == {"checked": 3, "already_summarized": 1, "written": 1, "failed": 0}
    written = json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/lost-event.json")["Body"].read())
    assert written["status"] == "ABORTED" and written["result"]["rows"] == 2
    assert written["timing"]["started_at"] is not None
    assert json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/summarised.json")["Body"].read()) == {
        "kept": True
    }
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/running")["KeyCount"] == 0

    # AND a second run has nothing left to do
    again = app.lambda_handler(load_event("reconcile_scheduled.json"), lambda_context)
    assert again["written"] == 0 and again["already_summarized"] == 2


def test_one_summary_it_may_not_see_does_not_end_the_run(s3: Any, sfn: Any, lambda_context: Any) -> None:
    # GIVEN two closed jobs without summary, S3 answering 403 for the first one's summary (as it
    # answers a missing key to a role that may not list it)
    from botocore.exceptions import ClientError

    from jobcore.reconciling import reconcile

    for job_id in ("hidden", "lost-event"):
        put_descriptor(s3, job_id, 1)
        put_success(s3, job_id, 0, rows(2, 1.0, 3.0))
        sfn.stop_execution(executionArn=start(sfn, job_id))

    def forbidden(params: dict[str, Any], **_: Any) -> None:
        if params.get("Key") == "summaries/hidden.json":
            raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    s3.meta.events.register("provide-client-params.s3.HeadObject", forbidden)

    # WHEN the reconciler runs
    report = reconcile(s3, sfn, BUCKET, STATE_MACHINE_ARN)

    # THEN that job counts as failed and the other one still gets its summary
    assert (report.failed, report.written) == (1, 1)
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="summaries/lost-event.json")["KeyCount"] == 1
