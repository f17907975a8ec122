"""Submitting files to the local cloud and waiting for their jobs, as a user of the bucket would."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import ClientError

from spotmap.cloud import LocalCloud
from spotmap.outputs import BucketCopy, copy_objects
from spotmap.product import jobcore_ids, jobcore_layout, read_json
from spotmap.progress import ProgressDisplay, ProgressReader

CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
SUMMARY_GRACE_SECONDS = 5.0
PROGRESS_SECONDS = 5.0  # plain progress lines (not a terminal): one every few seconds


@dataclass
class JobWatch:
    path: Path
    key: str
    job_id: str | None
    execution_arn: str | None
    no_job_reason: str | None = None
    status: str | None = None
    error: str | None = None
    total_items: int | None = None


class JobRunner:
    def __init__(self, cloud: LocalCloud, progress: TextIO | None = sys.stderr):
        self.cloud = cloud
        self.s3 = cloud.client("s3")
        self.sfn = cloud.client("stepfunctions")
        self.progress = progress
        self.bucket = cloud.stack.bucket
        self.reader = ProgressReader(
            self.s3, self.sfn, self.bucket, cloud.stack.state_machine_arn, cloud.stack.region
        )
        self.display = ProgressDisplay(progress, PROGRESS_SECONDS) if progress is not None else None

    def submit(self, path: Path, key: str | None = None) -> JobWatch:
        key = key or f"{jobcore_layout().INPUT_PREFIX}{path.name}"
        self.s3.upload_file(str(path), self.bucket, key)
        if not jobcore_layout().is_job_trigger(key):
            return JobWatch(
                path, key, None, None, no_job_reason=f"{key!r} does not start a job (only input/ does)"
            )
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        job_id = jobcore_ids().job_id_for(
            self.bucket, key, version_id=head.get("VersionId"), etag=head.get("ETag", "").strip('"')
        )
        arn = self.cloud.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"
        self._say(f"uploaded {path} as s3://{self.bucket}/{key} → job {job_id}")
        return JobWatch(path, key, job_id, arn)

    def upload_data(self, path: Path) -> int:
        """Upload a file, or a directory's files, under data/ (manifests refer to them; no job starts)."""
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        base = path.parent if path.is_file() else path

        def upload(file: Path) -> None:
            self.s3.upload_file(
                str(file), self.bucket, f"{jobcore_layout().DATA_PREFIX}{file.relative_to(base).as_posix()}"
            )

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(upload, files))
        self._say(
            f"uploaded {len(files)} file(s) from {path} to s3://{self.bucket}/{jobcore_layout().DATA_PREFIX}"
        )
        return len(files)

    def _say(self, text: str) -> None:
        if self.progress is not None:
            print(text, file=self.progress, flush=True)

    def _poll(self, watch: JobWatch) -> None:
        if watch.status in CLOSED or watch.execution_arn is None:
            return
        try:
            watch.status = self.sfn.describe_execution(executionArn=watch.execution_arn)["status"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
            for _rule, event, message in self.cloud.events.failed:
                if event.get("detail", {}).get("object", {}).get("key") == watch.key:
                    watch.status, watch.error = "FAILED", f"StartJob failed: {message[:2000]}"
        if watch.total_items is None and watch.job_id:
            descriptor = self._get_json(jobcore_layout().descriptor_key(watch.job_id))
            if descriptor is not None:
                watch.total_items = descriptor.get("item_count")

    def _get_json(self, key: str) -> Any:
        return read_json(self.s3, self.bucket, key)

    def summary(self, watch: JobWatch) -> dict[str, Any] | None:
        if watch.job_id is None:
            return None
        summary: dict[str, Any] | None = self._get_json(jobcore_layout().summary_key(watch.job_id))
        return summary

    def wait(self, watches: list[JobWatch], timeout: float) -> list[dict[str, Any] | None]:
        """Wait until every job's execution is closed and summarised; bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        last_report = 0.0
        jobs = [w for w in watches if w.job_id]
        while True:
            for watch in jobs:
                self._poll(watch)
            if all(w.status in CLOSED for w in jobs):
                break
            if time.monotonic() > deadline:
                for watch in jobs:
                    if watch.status not in CLOSED:
                        watch.error = f"still {watch.status or 'not started'} after {timeout:.0f} s"
                break
            if self.display is not None and time.monotonic() - last_report >= self._display_interval():
                last_report = time.monotonic()
                self._show(jobs)
            time.sleep(0.5)
        # the rule on the status event writes the summary; the reconciler covers lost events
        grace_end = time.monotonic() + SUMMARY_GRACE_SECONDS
        while time.monotonic() < grace_end and any(
            self.summary(w) is None for w in jobs if w.status in CLOSED
        ):
            time.sleep(0.2)
        self.cloud.events.wait_idle(30)
        self.cloud.events.run_schedules()
        self.cloud.events.wait_idle(120)
        if self.display is not None and jobs:
            self._show(jobs, final=True)
        return [self.summary(watch) for watch in watches]

    def _display_interval(self) -> float:
        # a terminal frame ticks every second (elapsed, ETA); S3 is read at most every few seconds
        return 1.0 if self.display is not None and self.display.terminal else PROGRESS_SECONDS

    def _show(self, jobs: list[JobWatch], final: bool = False) -> None:
        assert self.display is not None
        progresses = [self.reader.read(watch.job_id, fresh=final) for watch in jobs if watch.job_id]
        self.display.show(progresses, final=final)


def copy_bucket(cloud: LocalCloud, out_dir: Path) -> BucketCopy:
    """Copy the bucket's objects to out_dir; keys become paths (summaries/<job_id>.json ...); a key that
    cannot be a file of its own name is kept under a hashed name and listed in an index."""
    return copy_objects(cloud.client("s3"), cloud.stack.bucket, out_dir)


def format_summary(watch: JobWatch, summary: dict[str, Any] | None, out_dir: Path) -> str:
    if watch.no_job_reason:
        return f"{watch.path}: no job: {watch.no_job_reason}"
    if summary is None:
        return f"{watch.path}: job {watch.job_id}: no summary ({watch.error or watch.status})"
    items, attempts = summary.get("items", {}), summary.get("attempts", {})
    lines = [
        f"{watch.path}: job {summary['job_id']} {summary['status']}",
        f"  items {items.get('succeeded')}/{items.get('total')} succeeded, {items.get('failed')} failed; "
        f"tasks launched {attempts.get('launched')}, "
        f"spot interruptions {attempts.get('spot_interruptions')}, "
        f"capacity retries {attempts.get('capacity_retries')}, on-demand fallbacks "
        f"{attempts.get('on_demand_fallbacks')}, throttled RunTask calls "
        f"{attempts.get('throttled_run_task_calls', 0)}",
        f"  {summary.get('timing', {}).get('seconds', 0):.1f} s",
    ]
    cost = summary.get("cost") or {}
    if "total_usd" in cost:
        lines.append(
            f"  estimated cost ${cost['total_usd']:.6f} (on-demand only: "
            f"${cost.get('on_demand_equivalent_usd', 0):.6f})"
        )
    resumed = summary.get("checkpoints") or {}
    if resumed.get("resumed_attempts"):
        lines.append(
            f"  checkpoints: {resumed['resumed_attempts']} attempts of {resumed.get('items_resumed')} "
            f"items resumed, not redoing {resumed.get('saved_units')} units / "
            f"{resumed.get('saved_seconds')} s of work"
        )
    for failure in summary.get("failures", [])[:10]:
        lines.append(f"  item {failure['index']} failed: {failure['reason']}")
    if summary.get("error"):
        lines.append(f"  error: {summary['error']}")
    lines.append(f"  summary: {out_dir / jobcore_layout().summary_key(summary['job_id'])}")
    report = out_dir / jobcore_layout().report_key(summary["job_id"])
    if report.exists():  # the page Summarize writes beside the summary (jobcore.report)
        lines.append(f"  report: {report}")
    return "\n".join(lines)


class JobAnnouncer:
    """What `spotmap local serve` prints about jobs: one line when a job starts (its id and the key that
    started it), one when it ends (its status and where its summary is)."""

    SUMMARY_WAIT_SECONDS = 60.0  # after the execution closed: the summary is written by a rule's Lambda

    def __init__(self, cloud: LocalCloud, out: TextIO):
        self.cloud = cloud
        self.out = out
        self.s3 = cloud.client("s3")
        self.sfn = cloud.client("stepfunctions")
        self.bucket = cloud.stack.bucket
        self._started: set[str] = set()
        self._closed_at: dict[str, float] = {}  # job id -> when its execution closed, until announced
        self._ended: set[str] = set()

    def poll(self) -> None:
        paginator = self.sfn.get_paginator("list_executions")
        for page in paginator.paginate(stateMachineArn=self.cloud.stack.state_machine_arn):
            for execution in page["executions"]:
                job_id, status = execution["name"], execution["status"]
                if job_id not in self._started:
                    self._started.add(job_id)
                    descriptor = self._get_json(jobcore_layout().descriptor_key(job_id)) or {}
                    key = (descriptor.get("input") or {}).get("key", "?")
                    self._say(f"job {job_id} started: s3://{self.bucket}/{key}")
                if status in CLOSED and job_id not in self._ended:
                    self._closed_at.setdefault(job_id, time.monotonic())
        for job_id, closed_at in list(self._closed_at.items()):
            summary_key = jobcore_layout().summary_key(job_id)
            summary = self._get_json(summary_key)
            if summary is not None:
                self._say(f"job {job_id} {summary.get('status')}: summary s3://{self.bucket}/{summary_key}")
            elif time.monotonic() - closed_at > self.SUMMARY_WAIT_SECONDS:
                self._say(f"job {job_id} ended without a summary after {self.SUMMARY_WAIT_SECONDS:.0f} s")
            else:
                continue
            self._ended.add(job_id)
            del self._closed_at[job_id]

    def _get_json(self, key: str) -> Any:
        try:
            return read_json(self.s3, self.bucket, key)
        except ValueError:  # not JSON: announced as ended without a summary, never a crash of serve
            return None

    def _say(self, text: str) -> None:
        print(text, file=self.out, flush=True)
