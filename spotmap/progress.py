"""A job's progress, read from what the stack already has, and shown in a terminal or as plain lines.

One model for `spotmap local run` and `spotmap status` (local cloud or AWS). Nothing new is deployed:
- Step Functions: DescribeExecution (status, start/stop) and the Distributed Map's Map Run item
  counts (ListMapRuns + DescribeMapRun: how many children are running / pending right now);
- S3 (functions/jobcore/layout.py): job.json (item count), outcomes/<status>/<index>.json (a finished
  item's attempts, Spot interruptions, usage and last task's duration) and, once the job is closed,
  summaries/<job_id>.json (the final word).

Reads are bounded: a ProgressReader reads a job at most once every `min_interval` seconds (a caller
asking more often gets the last snapshot), and each outcome object is fetched once (its content never
changes), so a 10,000-item job costs a few LISTs per read plus a GET per newly finished item.

Spot interruptions and cost are those of the finished items: an item's usage reaches S3 only with its
outcome (while it runs, it lives in the child execution's state). The ETA is the remaining items
times the mean duration of the finished items' tasks, divided by the items running in parallel; when
that is already spent while items remain, the remaining items at the pace the job has kept so far.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, TextIO

from botocore.exceptions import ClientError

from spotmap.product import _jobcore, jobcore_layout, read_json

CLOSED = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
MIN_READ_INTERVAL_SECONDS = 3.0  # "no polling storm": one status read every few seconds at most
FETCH_WORKERS = 8


@dataclass(frozen=True)
class Progress:
    """What is known about a job at one moment."""

    job_id: str
    status: str  # the execution's status; NOT_FOUND before StartJob started it
    total: int | None  # items, once job.json is written
    succeeded: int = 0
    failed: int = 0
    running: int = 0
    pending: int | None = None  # None while the item count is unknown
    spot_interruptions: int = 0
    started_at: float | None = None  # epoch seconds
    stopped_at: float | None = None
    read_at: float = 0.0
    mean_item_seconds: float | None = None
    cost_usd: float | None = None  # of the finished items (all items, once the summary is written)
    on_demand_usd: float | None = None
    summary_key: str | None = None  # set once the summary exists
    error: str | None = None
    items_per_task: float = 1.0  # a batched job's items per task (job.json), on average

    @property
    def closed(self) -> bool:
        return self.status in CLOSED

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started_at is None:
            return None
        end = self.stopped_at if self.stopped_at is not None else (now or time.time())
        return max(0.0, end - self.started_at)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds until the last item finishes, from the finished items' mean task duration; 0 once
        closed; None while nothing has finished yet."""
        if self.closed:
            return 0.0
        if self.total is None or self.mean_item_seconds is None:
            return None
        # in tasks: a batched job's task runs many items, and its items' outcomes carry its duration
        per_task = max(1.0, self.items_per_task)
        remaining = math.ceil(max(0, self.total - self.finished) / per_task)
        parallel = max(1, round(self.running / per_task))
        estimate = math.ceil(remaining / parallel) * self.mean_item_seconds
        # the read is a few seconds old: the time since then is already spent
        left = estimate - max(0.0, (now or time.time()) - self.read_at)
        if left > 0 or remaining == 0:
            return max(0.0, left)
        # items remain, yet the finished tasks' run time says they are done: those were the quickest
        # (P8's 100 batch tasks all ran in one round; the estimate from the first to finish was spent
        # while 84 % of the items still ran and printed 0:00), or the pace is set elsewhere (launches,
        # outcome writes): go by the pace the job has kept so far
        elapsed = self.elapsed(now)
        if not elapsed or not self.finished:
            return None
        return max(0, self.total - self.finished) * elapsed / self.finished

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        document = asdict(self)
        for name in ("started_at", "stopped_at", "read_at"):
            document[name] = _iso(document[name])
        elapsed, eta = self.elapsed(now), self.eta(now)
        document["elapsed_seconds"] = None if elapsed is None else round(elapsed, 1)
        document["eta_seconds"] = None if eta is None else round(eta, 1)
        return document


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, str) and value:
        return _epoch(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return None


def running_items(total: int, finished: int, running_tasks: int, items_per_task: float) -> int:
    """The items the running tasks hold: a task's items get their outcomes when it ends, so every item
    of a running batch is running (never more than the items without an outcome)."""
    return min(max(0, total - finished), round(running_tasks * items_per_task))


@dataclass
class _JobCache:
    total: int | None = None
    items_per_task: float = 1.0
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> the fields we use
    last: Progress | None = None


class ProgressReader:
    """Reads jobs' progress; each job at most once per `min_interval` seconds."""

    def __init__(
        self,
        s3: Any,
        sfn: Any,
        bucket: str,
        state_machine_arn: str,
        region: str,
        min_interval: float = MIN_READ_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
    ):
        self.s3, self.sfn, self.bucket = s3, sfn, bucket
        self.state_machine_arn, self.region = state_machine_arn, region
        self.min_interval = min_interval
        self.clock = clock
        self.reads = 0  # full reads done (tests check the rate)
        self._jobs: dict[str, _JobCache] = {}

    def execution_arn(self, job_id: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"

    def read(self, job_id: str, fresh: bool = False) -> Progress:
        """The job's progress, read again at most every `min_interval` unless `fresh` (the last frame
        of a run, drawn once its jobs have ended, must not show a state read before the end)."""
        cache = self._jobs.setdefault(job_id, _JobCache())
        now = self.clock()
        if cache.last is not None and (cache.last.closed and cache.last.summary_key):
            return cache.last  # final
        if not fresh and cache.last is not None and now - cache.last.read_at < self.min_interval:
            return cache.last
        self.reads += 1
        cache.last = self._read(job_id, cache, now)
        return cache.last

    # ------------------------------------------------------------------------------------------
    def _read(self, job_id: str, cache: _JobCache, now: float) -> Progress:
        layout = jobcore_layout()
        try:
            execution = self.sfn.describe_execution(executionArn=self.execution_arn(job_id))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ExecutionDoesNotExist":
                raise
            return Progress(job_id, "NOT_FOUND", None, read_at=now)
        status = execution["status"]
        started, stopped = _epoch(execution.get("startDate")), _epoch(execution.get("stopDate"))
        if status in CLOSED:
            summary = self._json(layout.summary_key(job_id))
            if isinstance(summary, dict):
                return self._from_summary(job_id, summary, started, stopped, now)
        if cache.total is None:
            descriptor = self._json(layout.descriptor_key(job_id))
            if isinstance(descriptor, dict) and descriptor.get("item_count") is not None:
                cache.total = int(descriptor["item_count"])
                tasks = descriptor.get("task_count")
                if isinstance(tasks, int) and tasks > 0:  # batched: the Map's children are tasks
                    cache.items_per_task = cache.total / tasks
        running, pending = self._map_run_counts(execution["executionArn"]) if status == "RUNNING" else (0, 0)
        self._read_new_outcomes(layout.outcomes_prefix(job_id), cache)
        outcomes = list(cache.outcomes.values())
        succeeded = sum(1 for outcome in outcomes if outcome["status"] == "succeeded")
        failed = len(outcomes) - succeeded
        durations = [outcome["seconds"] for outcome in outcomes if outcome["seconds"] is not None]
        cost = self._cost([outcome["usage"] for outcome in outcomes])
        if cache.total is not None:
            running = running_items(cache.total, succeeded + failed, running, cache.items_per_task)
            # the Map Run's counts lag S3 by a poll or two: what has an outcome is no longer pending
            pending = max(0, cache.total - succeeded - failed - running)
        return Progress(
            job_id=job_id,
            status=status,
            total=cache.total,
            succeeded=succeeded,
            failed=failed,
            running=running,
            pending=pending if cache.total is not None else None,
            spot_interruptions=sum(outcome["spot_interruptions"] for outcome in outcomes),
            started_at=started,
            stopped_at=stopped,
            read_at=now,
            mean_item_seconds=sum(durations) / len(durations) if durations else None,
            cost_usd=cost.get("total_usd") if outcomes else None,
            on_demand_usd=cost.get("on_demand_equivalent_usd") if outcomes else None,
            error=execution.get("error"),
            items_per_task=cache.items_per_task,
        )

    def _from_summary(
        self, job_id: str, summary: dict[str, Any], started: float | None, stopped: float | None, now: float
    ) -> Progress:
        items, attempts, cost = (
            summary.get("items", {}),
            summary.get("attempts", {}),
            summary.get("cost") or {},
        )
        cache = self._jobs[job_id]
        durations = [o["seconds"] for o in cache.outcomes.values() if o["seconds"] is not None]
        return Progress(
            job_id=job_id,
            status=str(summary.get("status")),
            total=items.get("total"),
            succeeded=int(items.get("succeeded") or 0),
            failed=int(items.get("failed") or 0),
            running=0,
            pending=0,
            spot_interruptions=int(attempts.get("spot_interruptions") or 0),
            started_at=_epoch(summary.get("timing", {}).get("started_at")) or started,
            stopped_at=_epoch(summary.get("timing", {}).get("stopped_at")) or stopped,
            read_at=now,
            mean_item_seconds=sum(durations) / len(durations) if durations else None,
            cost_usd=cost.get("total_usd"),
            on_demand_usd=cost.get("on_demand_equivalent_usd"),
            summary_key=jobcore_layout().summary_key(job_id),
            error=summary.get("error"),
        )

    def _map_run_counts(self, execution_arn: str) -> tuple[int, int]:
        """(running, pending) children of the job's newest Map Run; (0, 0) before the Map starts."""
        runs = self.sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
        if not runs:
            return 0, 0
        newest = max(runs, key=lambda run: _epoch(run.get("startDate")) or 0.0)
        counts = self.sfn.describe_map_run(mapRunArn=newest["mapRunArn"]).get("itemCounts", {})
        return int(counts.get("running") or 0), int(counts.get("pending") or 0)

    def _read_new_outcomes(self, prefix: str, cache: _JobCache) -> None:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []) if obj["Key"] not in cache.outcomes)
        if not keys:
            return

        def fetch(key: str) -> tuple[str, Any]:
            return key, self._json(key)

        with ThreadPoolExecutor(max_workers=FETCH_WORKERS, thread_name_prefix="progress") as pool:
            for key, outcome in pool.map(fetch, keys):
                if not isinstance(outcome, dict):
                    continue  # deleted meanwhile: read again next time
                cache.outcomes[key] = {
                    "status": key[len(prefix) :].split("/", 1)[0],
                    "seconds": outcome.get("task_seconds"),
                    "spot_interruptions": int(outcome.get("spot_interruptions") or 0),
                    "usage": outcome.get("usage") or {},
                }

    def _cost(self, usages: Sequence[dict[str, Any]]) -> dict[str, Any]:
        models, cost = _jobcore("models"), _jobcore("cost")
        block: dict[str, Any] = cost.cost_block(
            [models.Usage.model_validate(usage) for usage in usages], self.region
        )
        return block

    def _json(self, key: str) -> Any:
        return read_json(self.s3, self.bucket, key)


# ---------------------------------------------------------------------------------------- display
def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _usd(amount: float | None) -> str:
    return "$?" if amount is None else f"${amount:.6f}" if amount < 1 else f"${amount:,.2f}"


def describe(progress: Progress, now: float | None = None) -> str:
    """One plain line: status, counts, interruptions, elapsed, ETA, cost so far."""
    total = "?" if progress.total is None else str(progress.total)
    pending = "?" if progress.pending is None else str(progress.pending)
    eta = progress.eta(now)
    status = "not started yet" if progress.status == "NOT_FOUND" else progress.status
    parts = [
        f"{progress.job_id}: {status}",
        f"{progress.finished}/{total} items finished "
        f"(succeeded {progress.succeeded}, running {progress.running}, failed {progress.failed}, "
        f"pending {pending})",
        f"spot interruptions {progress.spot_interruptions}",
        f"elapsed {_clock(progress.elapsed(now))}",
    ]
    if not progress.closed:
        parts.append(f"ETA {_clock(eta)}")
    parts.append(f"cost so far {_usd(progress.cost_usd)}")
    return ", ".join(parts)


BAR_WIDTH = 24


def bar(progress: Progress, width: int = BAR_WIDTH) -> str:
    """[####xx>>....]: succeeded #, failed x, running >, pending ."""
    total = progress.total or 0
    if total <= 0:
        return "[" + "?" * width + "]"

    def cells(count: int) -> int:
        return min(width, round(width * count / total))

    done, bad = cells(progress.succeeded), cells(progress.failed)
    running = min(width - done - bad, cells(progress.running))
    return "[" + "#" * done + "x" * bad + ">" * running + "." * (width - done - bad - running) + "]"


class ProgressDisplay:
    """Shows jobs' progress on `stream`: redrawn in place on a terminal (ANSI cursor movement), plain
    lines every `plain_interval` seconds otherwise."""

    def __init__(self, stream: TextIO, plain_interval: float = 5.0, terminal: bool | None = None):
        self.stream = stream
        self.terminal = stream.isatty() if terminal is None else terminal
        self.plain_interval = plain_interval
        self._drawn = 0  # lines of the last terminal frame
        self._last_plain = 0.0

    def show(self, progresses: Sequence[Progress], final: bool = False) -> None:
        now = time.time()
        if self.terminal:
            frame = [f"{bar(p)} {describe(p, now)}" for p in progresses]
            # back to the first line of the previous frame, clear each line as it is rewritten
            out = f"\x1b[{self._drawn}F" if self._drawn else ""
            out += "".join(f"\x1b[2K{line}\n" for line in frame)
            self.stream.write(out)
            self.stream.flush()
            self._drawn = len(frame)
            return
        if final or time.monotonic() - self._last_plain >= self.plain_interval:
            self._last_plain = time.monotonic()
            for progress in progresses:
                if final or not progress.closed:
                    print(f"  {describe(progress, now)}", file=self.stream, flush=True)

    def forget_frame(self) -> None:
        """Something else was printed below the frame: the next frame starts on a fresh line."""
        self._drawn = 0
