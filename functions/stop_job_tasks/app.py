"""StopJobTasks: when a job's execution fails, times out or is aborted, stop the tasks it started
(Step Functions does not stop ECS tasks a Lambda function launched)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import StopJobTasksSettings
from jobcore.executions import STOPPED_EARLY, ExecutionStatusChange, is_job_execution
from jobcore.observability import count, eventbridge_handler, logger, settings_loader
from jobcore.stopping import stop_job_tasks

STOPPING_STATUSES = STOPPED_EARLY  # a failed, timed-out or aborted job may have tasks left

settings = settings_loader(StopJobTasksSettings)


@eventbridge_handler(ExecutionStatusChange)
def lambda_handler(change: ExecutionStatusChange, context: LambdaContext) -> dict[str, Any]:
    config = settings()
    status = change.status.value
    relevant, why_not = is_job_execution(change, config.state_machine_arn)
    if change.status not in STOPPING_STATUSES or not relevant:
        reason = why_not or f"status {status}"
        count("EventsIgnored")
        logger.info("nothing to stop", extra={"reason": reason})
        return {"job_id": change.name, "stopped": 0, "ignored": reason}
    stopped = stop_job_tasks(aws.ecs(), config.cluster_arn, change.name, status)
    count("TasksStopped", stopped)
    logger.info("job tasks stopped", extra={"stopped": stopped, "status": status})
    return {"job_id": change.name, "stopped": stopped}
