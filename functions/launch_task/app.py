"""LaunchTask: start an item's next ECS task (Fargate Spot, or on-demand after repeated trouble).

Input `{"state": ItemState, "retry_count": $$.State.RetryCount}` (plus `task_token` when the Launch step
waits for the task's stop event); output the new ItemState. Failures are raised as CapacityUnavailable /
LaunchThrottled (retried by the state machine; each refusal is tallied in S3, jobcore.launch_retries) or
AttemptsExhausted / LaunchFailed / LaunchTimedOut (caught and recorded)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from jobcore import aws
from jobcore.config import LaunchSettings
from jobcore.errors import CapacityUnavailable, LaunchThrottled, SpotmapError
from jobcore.launching import launch_task
from jobcore.models import ItemState
from jobcore.observability import count, handler, log_item, logger, settings_loader

_ERROR_METRICS = {CapacityUnavailable: "CapacityUnavailable", LaunchThrottled: "LaunchThrottled"}

settings = settings_loader(LaunchSettings)


class LaunchRequest(BaseModel):
    state: ItemState
    retry_count: int = Field(default=0, ge=0)
    # $$.Task.Token when the Launch step waits for the task-stopped event (jobcore.completion)
    task_token: str | None = Field(default=None, min_length=1)


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    request = LaunchRequest.model_validate(event)
    state = log_item(request.state)
    config = settings()
    try:
        result = launch_task(
            aws.ecs_single_attempt(),
            config,
            state,
            request.retry_count,
            s3=aws.s3(),
            started=started,
            task_token=request.task_token,
        )
    except SpotmapError as error:
        # The state machine retries or records these; the metric shows how often each happens.
        count(_ERROR_METRICS.get(type(error), "LaunchErrors"))
        logger.warning("launch failed", extra={"error": type(error).__name__, "detail": str(error)})
        raise
    count("ItemsLaunched")
    if result.capacity_retries:
        count("CapacityRetries", result.capacity_retries)
    if result.throttled_run_task_calls:
        count("ThrottledRunTaskCalls", result.throttled_run_task_calls)
    if result.fell_back_to_on_demand:
        count("OnDemandFallbacks")
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
