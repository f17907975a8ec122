"""LaunchTask: start an item's next ECS task (Fargate Spot, or on-demand after repeated trouble).

Input `{"state": ItemState, "retry_count": $$.State.RetryCount}`; output the new ItemState. Failures
are raised as CapacityUnavailable / LaunchThrottled (retried by the state machine; each refusal is
tallied in S3, jobcore.launch_retries) or AttemptsExhausted / LaunchFailed / LaunchTimedOut (caught and
recorded)."""

from __future__ import annotations

import functools
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from jobcore import aws
from jobcore.config import LaunchSettings
from jobcore.errors import CapacityUnavailable, LaunchThrottled, SpotmapError
from jobcore.models import ItemState
from jobcore.tasks import launch_task

logger = Logger()
tracer = Tracer()
metrics = Metrics()

_ERROR_METRICS = {CapacityUnavailable: "CapacityUnavailable", LaunchThrottled: "LaunchThrottled"}


@functools.cache
def settings() -> LaunchSettings:
    return LaunchSettings.from_env()


class LaunchRequest(BaseModel):
    state: ItemState
    retry_count: int = Field(default=0, ge=0)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    request = LaunchRequest.model_validate(event)
    state = request.state
    logger.append_keys(job_id=state.job_id, item_index=state.item.index)
    config = settings()
    try:
        result = launch_task(
            aws.ecs_single_attempt(),
            config,
            state,
            request.retry_count,
            s3=aws.s3(),
            started=started,
        )
    except SpotmapError as error:
        # The state machine retries or records these; the metric shows how often each happens.
        metrics.add_metric(
            name=_ERROR_METRICS.get(type(error), "LaunchErrors"), unit=MetricUnit.Count, value=1
        )
        logger.warning("launch failed", extra={"error": type(error).__name__, "detail": str(error)})
        raise
    metrics.add_metric(name="ItemsLaunched", unit=MetricUnit.Count, value=1)
    if result.capacity_retries:
        metrics.add_metric(name="CapacityRetries", unit=MetricUnit.Count, value=result.capacity_retries)
    if result.throttled_run_task_calls:
        metrics.add_metric(
            name="ThrottledRunTaskCalls", unit=MetricUnit.Count, value=result.throttled_run_task_calls
        )
    if result.fell_back_to_on_demand:
        metrics.add_metric(name="OnDemandFallbacks", unit=MetricUnit.Count, value=1)
    logger.info(
        "task launched",
        extra={
            "task_arn": result.state.task_arn,
            "capacity": result.capacity.value,
            "attempt": result.state.attempt,
            "wait_seconds": result.state.wait_seconds,
        },
    )
    return result.state.model_dump(mode="json")
