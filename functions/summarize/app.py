"""Summarize: when a job's execution closes, write summaries/<job_id>.json and its report page
summaries/<job_id>.html (and, when the stack has a notification topic, publish a short message about it).

Triggered by "Step Functions Execution Status Change"; ignores non-terminal statuses, Map Run child
executions and other state machines. The job id is the execution name (the event's input may be
omitted, so it is not used)."""

from __future__ import annotations

import dataclasses
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws, notify
from jobcore.config import SummarizeSettings
from jobcore.executions import ExecutionStatusChange, is_job_execution
from jobcore.models import JobStatus
from jobcore.observability import count, eventbridge_handler, logger, metrics, settings_loader
from jobcore.summary import Reads, summarize_job

settings = settings_loader(SummarizeSettings)


@eventbridge_handler(ExecutionStatusChange)
def lambda_handler(change: ExecutionStatusChange, context: LambdaContext) -> dict[str, Any]:
    config = settings()
    status = change.status.value
    if not change.closed:
        count("EventsIgnored")
        logger.info("execution not closed, ignored", extra={"status": status})
        return {"job_id": change.name, "summary_key": None, "ignored": f"status {status}"}
    relevant, why_not = is_job_execution(change, config.state_machine_arn)
    if not relevant:
        count("EventsIgnored")
        logger.info("not a job execution, ignored", extra={"reason": why_not})
        return {"job_id": change.name, "summary_key": None, "ignored": why_not}

    reads = Reads()
    written = summarize_job(aws.s3(), config.job_bucket, change.name, change.execution(), reads=reads)
    summary, key = written.summary, written.summary_key
    seconds = summary["timing"]["seconds"]
    if seconds is not None:
        metrics.add_metric(name="JobDurationSeconds", unit=MetricUnit.Seconds, value=seconds)
    if config.notification_topic_arn:
        # after the summary is written: a failed Publish fails the invocation, the event is delivered
        # again and the (identical) summary rewritten before publishing again
        message_id = notify.publish(aws.sns(), config.notification_topic_arn, summary, config.job_bucket)
        logger.info("notification published", extra={"message_id": message_id})
    # not when the job is unknown or its results do not merge
    succeeded = summary["status"] == JobStatus.SUCCEEDED
    count("JobsSucceeded" if succeeded else "JobsFailed")
    logger.info(
        "summary written",
        extra={
            "summary_key": key,
            "report_key": written.report_key,
            "status": summary["status"],
            "execution_status": status,
            "items": summary["items"],
            "reads": dataclasses.asdict(reads),  # result files vs objects read one by one
        },
    )
    return {"job_id": change.name, "summary_key": key, "status": summary["status"]}
