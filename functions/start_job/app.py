"""StartJob: an upload under input/ becomes a job (items.json, job.json) and a started execution.

Accepts S3 notifications (`Records[]`, keys URL-encoded) and EventBridge "Object Created" events
(the key may or may not be URL-encoded: the one that exists in S3 wins).
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event, S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore import aws, planning
from jobcore.config import StartJobSettings
from jobcore.errors import JobStartFailed
from jobcore.observability import count, handler, log_job, logger, settings_loader
from jobcore.starting import Upload, start_job

settings = settings_loader(StartJobSettings)


@functools.cache
def account_quotas() -> tuple[planning.Quota, planning.Quota]:
    """The account's Fargate vCPU quotas, read once per instance (the plan warnings' limits)."""
    return planning.account_quotas(aws.service_quotas())


def uploads_from_event(event: dict[str, Any]) -> list[Upload]:
    if "Records" in event:
        uploads = []
        for record in S3Event(event).records:
            obj = record.s3.get_object
            uploads.append(
                Upload(
                    bucket=record.s3.bucket.name,
                    keys=(unquote_plus(obj.key),),  # S3 notifications always URL-encode, space as '+'
                    version_id=obj.version_id,
                    sequencer=obj.get("sequencer"),
                    etag=obj.get("eTag"),
                    source="s3-notification",
                )
            )
        return uploads
    bridge = S3EventBridgeNotificationEvent(event)
    detail_obj = bridge.detail.object
    verbatim = detail_obj.raw_event["key"]
    decoded = unquote_plus(verbatim)
    return [
        Upload(
            bucket=bridge.detail.bucket.name,
            keys=(verbatim,) if decoded == verbatim else (verbatim, decoded),
            version_id=detail_obj.get("version-id"),
            sequencer=detail_obj.get("sequencer"),
            etag=detail_obj.get("etag"),
            source="eventbridge",
        )
    ]


@handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config = settings()
    started: list[dict[str, Any]] = []
    failed: list[str] = []
    for upload in uploads_from_event(event):
        skip = upload.skip_reason()
        if upload.bucket != config.job_bucket:
            skip = f"bucket {upload.bucket!r} is not the job bucket {config.job_bucket!r}"
        if skip:
            count("EventsSkipped")
            logger.info("not a job trigger, skipped", extra={"bucket": upload.bucket, "reason": skip})
            continue
        try:
            job = start_job(aws.s3(), aws.stepfunctions(), config, upload, account_quotas)
        except Exception:
            logger.exception(
                "could not start a job", extra={"bucket": upload.bucket, "keys": list(upload.keys)}
            )
            failed.append(upload.keys[0])
            continue
        if job is None:
            count("EventsSkipped")
            continue
        log_job(job.job_id)
        if job.already_started or job.duplicate:
            count("DuplicateEvents")
            logger.info(
                "duplicate event: job already exists",
                extra={"key": job.key, "already_started": job.already_started},
            )
        else:
            count("JobsStarted")
            if job.rejected:
                count("JobsRejected")
            logger.info(
                "job started", extra={"key": job.key, "items": job.item_count, "rejected": job.rejected}
            )
        started.append(
            {
                "job_id": job.job_id,
                "key": job.key,
                "items": job.item_count,
                "rejected": job.rejected,
                "duplicate": job.duplicate or job.already_started,
                "execution_arn": job.execution_arn,
            }
        )
    if failed:
        count("JobStartFailures", len(failed))
        # Raising makes Lambda retry the event; the jobs that did start are idempotent.
        raise JobStartFailed(f"could not start jobs for {failed}")
    return {"jobs": started}
