"""TaskStopped: an "ECS Task State Change" event of a stopped worker task resumes the item waiting for
it (jobcore.completion): the same classification as PollTask, then SendTaskSuccess with the new item
state. A duplicated or late event changes nothing; a task launched without a token (TaskEvents
Disabled) is ignored."""

from __future__ import annotations

import functools
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws, completion
from jobcore.config import PollSettings

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def settings() -> PollSettings:
    return PollSettings.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    config = settings()
    detail = EventBridgeEvent(event).detail
    stopped, why_not = completion.stopped_task(detail, config.container_name)
    if stopped is None:
        metrics.add_metric(name="TaskEventsIgnored", unit=MetricUnit.Count, value=1)
        logger.info("nothing to resume", extra={"reason": why_not, "task_arn": detail.get("taskArn")})
        return {"resumed": False, "ignored": why_not}
    logger.append_keys(job_id=stopped.job_id, item_index=stopped.index, attempt=stopped.attempt)
    done = completion.complete(aws.s3(), aws.stepfunctions(), config, stopped, started=started)
    if done.outcome == "closed":
        metrics.add_metric(name="TaskEventsLate", unit=MetricUnit.Count, value=1)
        logger.info("the item already moved on", extra={"detail": done.detail})
        return {"resumed": False, "ignored": done.detail}
    assert done.state is not None
    metrics.add_metric(name="ItemsResumedByEvent", unit=MetricUnit.Count, value=1)
    logger.info(
        "item resumed",
        extra={"status": done.state.status, "reason": done.state.reason, "interrupted": done.interrupted},
    )
    return {"resumed": True, "status": done.state.status}
