"""RecordFailure: writes the failed outcome of an item whose Launch or Poll gave up (the state
machine's Catch puts `{Error, Cause}` in `$.error`). Input and output: ItemState."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws
from jobcore.config import RecordFailureSettings
from jobcore.failures import record_failure
from jobcore.models import ItemState
from jobcore.observability import count, handler, log_item, logger, settings_loader

settings = settings_loader(RecordFailureSettings)


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.perf_counter()
    state = log_item(ItemState.model_validate(event))
    config = settings()
    failed = record_failure(
        aws.s3(),
        aws.ecs() if config.cluster_arn else None,
        config.cluster_arn,
        state,
        config.lambda_memory_mb,
        started=started,
    )
    count("ItemsFailed")
    logger.warning("item failed", extra={"reason": failed.reason})
    return failed.model_dump(mode="json")
