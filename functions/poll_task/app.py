"""PollTask: what became of an item's task (RUNNING / SUCCEEDED / INTERRUPTED / FAILED) and, while it
runs, how long to wait before looking again. Input and output: ItemState."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws, completion
from jobcore.config import PollSettings
from jobcore.models import ItemState, TaskStatus
from jobcore.observability import count, handler, log_item, logger, settings_loader
from jobcore.task_polls import poll_task

_FINAL_METRICS = {TaskStatus.SUCCEEDED: "ItemsSucceeded", TaskStatus.FAILED: "ItemsFailed"}

settings = settings_loader(PollSettings)


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    state = log_item(ItemState.model_validate(event))
    count("TaskPolls")
    if state.wait_error is not None:  # no task event within a heartbeat period: the backstop polls
        logger.info("resuming after the wait for the task event ended", extra={"error": state.wait_error})
        state = completion.resume_after_wait(aws.s3(), state)
        waiting = completion.unrecorded_launch(state, settings())
        if waiting is not None and waiting.wait_error is not None:
            return waiting.model_dump(mode="json")
        state = waiting or state
        result = completion.without_wait_state(
            poll_task(aws.ecs(), aws.s3(), settings(), state, started=started)
        )
    else:
        result = poll_task(aws.ecs(), aws.s3(), settings(), state, started=started)
    new_state = result.state
    if result.interrupted:
        count("SpotInterruptions")
        logger.warning("Spot interruption", extra={"task_arn": state.task_arn, "reason": new_state.reason})
    elif new_state.status in _FINAL_METRICS:
        count(_FINAL_METRICS[new_state.status])
        logger.info(
            "item finished",
            extra={
                "status": new_state.status.value,
                "reason": new_state.reason,
                "task_seconds": new_state.task_seconds,
            },
        )
    else:
        logger.debug("task still running", extra={"wait_seconds": new_state.wait_seconds})
    return new_state.model_dump(mode="json")
