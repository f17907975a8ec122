"""TaskStopped: an "ECS Task State Change" event of a stopped worker task resumes the item waiting for
it (jobcore.completion): the same classification as PollTask, then SendTaskSuccess with the new item
state. A duplicated or late event changes nothing; a task launched without a token (TaskEvents
Disabled) is ignored."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws, completion
from jobcore.config import PollSettings
from jobcore.observability import count, handler, logger, settings_loader

settings = settings_loader(PollSettings)


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    config = settings()
    detail = EventBridgeEvent(event).detail
    stopped, why_not = completion.stopped_task(detail, config.container_name)
    if stopped is None:
        count("TaskEventsIgnored")
        logger.info("nothing to resume", extra={"reason": why_not, "task_arn": detail.get("taskArn")})
        return {"resumed": False, "ignored": why_not}
    logger.append_keys(job_id=stopped.job_id, item_index=stopped.index, attempt=stopped.attempt)
    done = completion.complete(aws.s3(), aws.stepfunctions(), config, stopped, started=started)
    if done.outcome == "closed":
        count("TaskEventsLate")
        logger.info("the item already moved on", extra={"detail": done.detail})
        return {"resumed": False, "ignored": done.detail}
    assert done.state is not None
    count("ItemsResumedByEvent")
    logger.info(
        "item resumed",
        extra={"status": done.state.status, "reason": done.state.reason, "interrupted": done.interrupted},
    )
    return {"resumed": True, "status": done.state.status}
