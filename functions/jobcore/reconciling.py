"""The reconciler: status-change events are best effort, so closed executions without a summary get
one written from S3 and DescribeExecution."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from jobcore import layout
from jobcore.executions import CLOSED
from jobcore.store import exists
from jobcore.summary import build_summary, execution_from_description, write_summary

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    already_summarized: int = 0
    written: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def summary_exists(s3: Any, bucket: str, job_id: str) -> bool:
    return exists(s3, bucket, layout.summary_key(job_id))


def reconcile(
    s3: Any,
    sfn: Any,
    bucket: str,
    state_machine_arn: str,
    *,
    lookback: timedelta = timedelta(days=7),
    max_executions: int = 1000,
    now: datetime | None = None,
) -> ReconcileReport:
    """Write the missing summaries of closed executions started within `lookback` (most recent first,
    at most `max_executions` looked at)."""
    now = now or datetime.now(timezone.utc)
    oldest = now - lookback
    report = ReconcileReport()
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        for entry in page.get("executions", []):
            start = entry.get("startDate")
            if report.checked >= max_executions or (start is not None and start < oldest):
                return report  # listed newest first: everything after is older still
            report.checked += 1
            if entry.get("status") not in CLOSED:
                continue
            job_id = entry["name"]
            try:  # one job's error (an S3 403 on its summary, say) must not end the run for the others
                if summary_exists(s3, bucket, job_id):
                    report.already_summarized += 1
                    continue
                description = sfn.describe_execution(executionArn=entry["executionArn"])
                summary = build_summary(s3, bucket, job_id, execution_from_description(description))
                write_summary(s3, bucket, job_id, summary)
                report.written += 1
                log.info("wrote missing summary of %s", job_id)
            except Exception:  # one bad job must not keep the others unsummarized
                report.failed += 1
                log.exception("could not summarize %s", job_id)
    return report
