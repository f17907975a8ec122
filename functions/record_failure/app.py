"""RecordFailure: writes the failed outcome of an item whose Launch or Poll gave up (the state
machine's Catch puts `{Error, Cause}` in `$.error`). Input and output: ItemState."""

from __future__ import annotations

import functools
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import RecordFailureSettings
from jobcore.models import ItemState
from jobcore.tasks import record_failure

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@functools.cache
def settings() -> RecordFailureSettings:
    return RecordFailureSettings.from_env()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    state = ItemState.model_validate(event)
    logger.append_keys(job_id=state.job_id, item_index=state.item.index)
    config = settings()
    failed = record_failure(
        aws.s3(),
        aws.ecs() if config.cluster_arn else None,
        config.cluster_arn,
        state,
        config.lambda_memory_mb,
        started=started,
    )
    metrics.add_metric(name="ItemsFailed", unit=MetricUnit.Count, value=1)
    logger.warning("item failed", extra={"reason": failed.reason})
    return failed.model_dump(mode="json")
