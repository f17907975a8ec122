"""StopJobTasks' use case: stop every task a job started, when its execution ends."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from jobcore.aws import THROTTLING_CODES
from jobcore.errors import (
    StopTasksThrottled,
)
from jobcore.store import error_code

log = logging.getLogger(__name__)


def stop_job_tasks(ecs: Any, cluster_arn: str, job_id: str, status: str) -> int:
    """Stop every running task the job started; safe to repeat.

    ListTasks takes startedBy only as its sole filter ("When you specify startedBy as the filter, it
    must be the only filter that you use", ECS API Reference, ListTasks); it lists the tasks whose
    desired status is RUNNING by default, which are the ones to stop."""
    stopped = 0
    throttled: list[str] = []
    paginator = ecs.get_paginator("list_tasks")
    for page in paginator.paginate(cluster=cluster_arn, startedBy=job_id[:128]):
        for task_arn in page.get("taskArns", []):
            try:
                ecs.stop_task(
                    cluster=cluster_arn, task=task_arn, reason=f"spotmap: job {job_id} {status}"[:255]
                )
                stopped += 1
            except ClientError as error:
                if error_code(error) in THROTTLING_CODES:  # still running: must not be forgotten
                    throttled.append(task_arn)
                else:  # stopped meanwhile
                    log.warning("stop_task failed for %s: %s", task_arn, error)
    if throttled:
        # StopTask shares ECS's "cluster resource modify" bucket (100, refilled 40/s) with RunTask: a
        # large job's abort can outlast the SDK's retries. Failing makes the event's delivery retry.
        raise StopTasksThrottled(
            f"StopTask stayed throttled for {len(throttled)} task(s) of job {job_id} "
            f"({stopped} stopped): {', '.join(throttled[:5])}"
        )
    return stopped
