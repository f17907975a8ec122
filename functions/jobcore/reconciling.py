"""The reconciler: status-change events are best effort, so closed executions without a summary get
one written from S3 and DescribeExecution, and the tasks still running for a job whose execution failed,
timed out or was aborted are stopped (nothing else would stop them when StopJobTasks never ran)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import ClientError

from jobcore.executions import CLOSED, STOPPED_EARLY
from jobcore.job_store import JobStore
from jobcore.store import error_code
from jobcore.summary import execution_from_description, summarize_job

log = logging.getLogger(__name__)

THROTTLED = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})


@dataclass
class ReconcileReport:
    checked: int = 0
    already_summarized: int = 0
    written: int = 0
    failed: int = 0
    tasks_stopped: int = 0
    task_sweeps_failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def summary_exists(s3: Any, bucket: str, job_id: str) -> bool:
    return JobStore(s3, bucket, job_id).summary_exists()


def stop_running_tasks(ecs: Any, cluster_arn: str, job_id: str, status: str) -> int:
    """Stop the job's tasks that still run. ListTasks takes `startedBy` as its only filter ("When you
    specify startedBy as the filter, it must be the only filter that you use", ECS API reference,
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html); it then lists tasks
    whose desired status is RUNNING, its default, so a task already being stopped is not listed again."""
    stopped = 0
    for page in ecs.get_paginator("list_tasks").paginate(cluster=cluster_arn, startedBy=job_id[:128]):
        for task_arn in page.get("taskArns", []):
            try:
                ecs.stop_task(
                    cluster=cluster_arn,
                    task=task_arn,
                    reason=f"spotmap: job {job_id} {status} (reconciled)"[:255],
                )
                stopped += 1
            except ClientError as error:  # stopped meanwhile
                log.warning("stop_task failed for %s: %s", task_arn, error)
    return stopped


def reconcile(
    s3: Any,
    sfn: Any,
    bucket: str,
    state_machine_arn: str,
    *,
    ecs: Any = None,
    cluster_arn: str | None = None,
    lookback: timedelta = timedelta(days=7),
    max_executions: int = 1000,
    now: datetime | None = None,
) -> ReconcileReport:
    """Write the missing summaries of closed executions started within `lookback` (most recent first,
    at most `max_executions` looked at) and, given `ecs` and `cluster_arn`, stop the tasks still running
    for those that failed, timed out or were aborted."""
    now = now or datetime.now(timezone.utc)
    oldest = now - lookback
    report = ReconcileReport()
    sweep_tasks = ecs is not None and bool(cluster_arn)
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        for entry in page.get("executions", []):
            start = entry.get("startDate")
            if report.checked >= max_executions or (start is not None and start < oldest):
                return report  # listed newest first: everything after is older still
            report.checked += 1
            if entry.get("status") not in CLOSED:
                continue
            job_id = entry["name"]
            if sweep_tasks and entry["status"] in STOPPED_EARLY:
                # Whether or not a summary exists: Summarize and StopJobTasks are separate rule targets.
                sweep_tasks = _sweep(ecs, str(cluster_arn), job_id, entry["status"], report)
            try:  # one job's error (an S3 403 on its summary, say) must not end the run for the others
                if summary_exists(s3, bucket, job_id):
                    report.already_summarized += 1
                    continue
                description = sfn.describe_execution(executionArn=entry["executionArn"])
                summarize_job(s3, bucket, job_id, execution_from_description(description))
                report.written += 1
                log.info("wrote missing summary of %s", job_id)
            except Exception:  # one bad job must not keep the others unsummarized
                report.failed += 1
                log.exception("could not summarize %s", job_id)
    return report


def _sweep(ecs: Any, cluster_arn: str, job_id: str, status: str, report: ReconcileReport) -> bool:
    """Stop one job's leftover tasks; False when ECS throttles (the rest waits for the next run)."""
    try:
        stopped = stop_running_tasks(ecs, cluster_arn, job_id, status)
    except ClientError as error:
        report.task_sweeps_failed += 1
        if error_code(error) in THROTTLED:
            log.warning("ECS throttled the task sweep at %s; the next run continues: %s", job_id, error)
            return False
        log.exception("could not stop the tasks of %s", job_id)
        return True
    if stopped:
        report.tasks_stopped += stopped
        log.info("stopped %d tasks of %s (%s, its status event was lost)", stopped, job_id, status)
    return True
