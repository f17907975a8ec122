"""StopJobTasks: when a job's execution fails, times out or is aborted, stop the tasks it started
(Step Functions does not stop ECS tasks a Lambda function launched)."""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import StopJobTasksSettings
from jobcore.executions import ExecutionStatusChange, is_job_execution
from jobcore.tasks import stop_job_tasks

logger = Logger()
tracer = Tracer()
metrics = Metrics()

STOPPING_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


@functools.cache
def settings() -> StopJobTasksSettings:
    return StopJobTasksSettings.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    change = ExecutionStatusChange.model_validate(EventBridgeEvent(event).detail)
    logger.append_keys(job_id=change.name)
    relevant, why_not = is_job_execution(change, config.state_machine_arn)
    if change.status not in STOPPING_STATUSES or not relevant:
        reason = why_not or f"status {change.status}"
        metrics.add_metric(name="EventsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("nothing to stop", extra={"reason": reason})
        return {"job_id": change.name, "stopped": 0, "ignored": reason}
    stopped = stop_job_tasks(aws.ecs(), config.cluster_arn, change.name, change.status)
    metrics.add_metric(name="TasksStopped", unit=MetricUnit.Count, value=stopped)
    logger.info("job tasks stopped", extra={"stopped": stopped, "status": change.status})
    return {"job_id": change.name, "stopped": stopped}
