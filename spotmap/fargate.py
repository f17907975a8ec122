"""Local Fargate: ECS RunTask / DescribeTasks / StopTask / ListTasks served by running the worker as
OS processes, with the task lifecycle, stop codes, exit codes and signals ECS documents, and the
faults Fargate Spot brings (interruptions, no capacity, throttling) injectable on demand.
"""

from __future__ import annotations

import logging
import random
import signal
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from spotmap import ecs_requests, ecs_rules
from spotmap.ecs_requests import (
    DescribeTasksRequest,
    ListTasksRequest,
    RunTaskRequest,
    StopTaskRequest,
    attempt_key,
)
from spotmap.ecs_rules import EcsError, TokenBucket
from spotmap.template import Stack

__all__ = ["EcsError", "Faults", "LocalFargate", "TokenBucket", "WorkerLauncher"]

log = logging.getLogger("spotmap.fargate")

# The account's Fargate vCPU quota (per Region, Spot and on-demand apart): RunTask over it answers 200 with
# no task and this reason in failures[], as it does for capacity (the ECS console's message; RunTask's
# `tasks: []` + failures[] seen in the field: github.com/paradisec-archive/nabu/pull/1260).
VCPU_LIMIT_REACHED = "You've reached the limit on the number of vCPUs you can run concurrently"
CAPACITY_UNAVAILABLE = (
    "Capacity is unavailable at this time. Please try again later or in a different availability zone"
)
SPOT_INTERRUPTED = "Your Spot Task was interrupted."
ESSENTIAL_EXITED = "Essential container in task exited"
HOLD_MARGIN_SECONDS = 1.0  # how long past a reclaim's moment a held exit waits for it (thread scheduling)


def _iso(moment: float) -> str:
    """Epoch seconds as events carry them: 2020-01-23T17:57:58.103Z."""
    return (
        datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


class WorkerProcess(Protocol):
    pid: int

    def wait(self) -> int: ...

    def signal(self, signum: int) -> None: ...


class WorkerLauncher(Protocol):
    def start(self, env: dict[str, str], log_path: Path) -> WorkerProcess: ...


@dataclass
class Faults:
    """Fault injection, reproducible with a seed."""

    spot_interruption_rate: float = 0.0
    capacity_failure_rate: float = 0.0
    crash_rate: float = 0.0
    launch_rate: float = 20.0  # Fargate's task launch bucket: refill per second
    launch_burst: int = 100  # and size
    seed: int | None = None
    # when a reclaim decided by spot_interruption_rate lands: this many seconds after its task started
    # (e.g. after a checkpoint); None: a random moment of a typical run
    spot_interruption_after: float | None = None

    def __post_init__(self) -> None:
        for name in ("spot_interruption_rate", "capacity_failure_rate", "crash_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name.replace('_', '-')} must be between 0 and 1, got {value}")
        if self.launch_rate <= 0:
            raise ValueError(f"launch-rate must be positive, got {self.launch_rate}")
        if self.launch_burst < 1:
            raise ValueError(f"launch-burst must be at least 1, got {self.launch_burst}")
        after = self.spot_interruption_after
        if after is not None and not after >= 0:
            raise ValueError(f"spot-interruption-after must be 0 or more seconds, got {after}")


@dataclass
class _FaultDecision:
    interrupt: bool
    crash: bool
    moment: float  # seconds after the start


@dataclass
class _Task:
    arn: str
    task_id: str
    capacity: str
    started_by: str | None
    group: str | None
    tags: list[dict[str, str]]
    overrides: dict[str, Any]
    env: dict[str, str]
    log_path: Path
    stop_timeout: int
    created_at: float = field(default_factory=time.time)
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    started_at: float | None = None
    stopping_at: float | None = None
    stopped_at: float | None = None
    stop_code: str | None = None
    stopped_reason: str | None = None
    exit_code: int | None = None
    process: WorkerProcess | None = None
    stop_requested: threading.Event = field(default_factory=threading.Event)
    version: int = 0  # of the task description, as in ECS Task State Change events
    emitted: str | None = None  # the lastStatus of the last state change event


class LocalFargate:
    def __init__(
        self,
        stack: Stack,
        launcher: WorkerLauncher,
        base_env: dict[str, str],
        log_dir: Path,
        faults: Faults | None = None,
    ):
        self.stack = stack
        self.launcher = launcher
        self.base_env = base_env
        self.log_dir = log_dir
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        # Fargate's task launches (ECS's API throttling of the calls themselves is `api`)
        self.bucket = TokenBucket(self.faults.launch_rate, self.faults.launch_burst)
        self.api = ecs_rules.ApiThrottle()  # ECS's own request throttling, per action category
        self.tasks: dict[str, _Task] = {}
        self.closed = False
        self.tokens: dict[str, tuple[str, list[str]]] = {}
        self._calls: dict[str, int] = {}
        self.lock = threading.RLock()
        # vCPUs the account may run at once per capacity provider (None: not enforced)
        self.vcpu_quotas: dict[str, float] = {}
        # where "ECS Task State Change" events go (the local EventBridge), with the task description
        # as the event's detail; None: nowhere
        self.on_state_change: Callable[[dict[str, Any]], None] | None = None
        self.durations: list[float] = []
        self.counters = {
            "run_task": 0,
            "throttled": 0,
            "api_throttled": 0,
            # RunTask calls refused with ThrottlingException, by either bucket: what a job's summary
            # counts as throttled RunTask calls
            "run_task_throttled": 0,
            "capacity_failures": 0,
            "interruptions": 0,
            "crashes": 0,
            "started": 0,
        }
        log_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ API
    def handle(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One ECS request: throttled and checked as ECS does, then served."""
        try:
            self.api.admit(action)
        except EcsError:
            with self.lock:
                self.counters["api_throttled"] += 1
                if action == "RunTask":
                    self.counters["run_task_throttled"] += 1
            raise
        ecs_rules.CHECKS[action](body)  # what ECS refuses, on the request as sent
        request = ecs_requests.PARSERS[action](body)
        if isinstance(request, RunTaskRequest):
            return self.run_task(request)
        if isinstance(request, DescribeTasksRequest):
            return self.describe_tasks(request)
        if isinstance(request, StopTaskRequest):
            return self.stop_task(request)
        return self.list_tasks(request)

    def run_task(self, request: RunTaskRequest) -> dict[str, Any]:
        self._check_cluster(request.cluster)
        definition = self.stack.task_definition
        wanted = request.task_definition
        if (
            wanted not in (definition.arn, definition.family)
            and not wanted.startswith(f"{definition.family}:")
            and not wanted.endswith(f"/{definition.family}:1")
            and wanted.split("/")[-1].split(":")[0] != definition.family
        ):
            raise EcsError("ClientException", f"Unable to find task definition '{wanted}'")
        count = request.count
        providers = request.providers
        for provider in providers:
            if provider not in ("FARGATE", "FARGATE_SPOT"):
                raise EcsError(
                    "InvalidParameterException",
                    f"The specified capacity provider '{provider}' is not associated with the cluster.",
                )
        token = request.client_token
        with self.lock:
            self.counters["run_task"] += 1
            if token and token in self.tokens:
                known_fingerprint, arns = self.tokens[token]
                if known_fingerprint != request.fingerprint:
                    raise EcsError(
                        "ConflictException",
                        "The specified client token has already been used with different parameters.",
                    )
                return {"tasks": [self._describe(self.tasks[arn]) for arn in arns], "failures": []}
        if not self.bucket.take(count):
            with self.lock:
                self.counters["throttled"] += 1
                self.counters["run_task_throttled"] += 1
            raise EcsError("ThrottlingException", "Rate exceeded")
        capacity = providers[0] if len(providers) == 1 else self.rng.choice(providers)
        attempt = request.attempt_key()
        draw = self._draw("capacity", attempt, self._calls_with(attempt))
        if capacity == "FARGATE_SPOT" and draw.random() < self.faults.capacity_failure_rate:
            with self.lock:
                self.counters["capacity_failures"] += 1
            return {
                "tasks": [],
                "failures": [{"arn": self.stack.cluster_arn, "reason": CAPACITY_UNAVAILABLE}],
            }
        with self.lock:  # counted and created together: concurrent RunTasks cannot both squeeze in
            if self._over_vcpu_quota(capacity, count):
                failure = {"arn": self.stack.cluster_arn, "reason": VCPU_LIMIT_REACHED}
                return {"tasks": [], "failures": [failure]}
            tasks = [self._create_task(request, capacity) for _ in range(count)]
        with self.lock:
            if token:
                self.tokens[token] = (request.fingerprint, [task.arn for task in tasks])
        for task in tasks:
            self._emit(task)
            threading.Thread(target=self._run, args=(task,), daemon=True, name=f"task-{task.task_id}").start()
        return {"tasks": [self._describe(task) for task in tasks], "failures": []}

    def _over_vcpu_quota(self, capacity: str, count: int) -> bool:
        quota = self.vcpu_quotas.get(capacity)
        if quota is None:
            return False
        vcpu = int(self.stack.task_definition.cpu) / 1024
        with self.lock:
            running = sum(
                1
                for task in self.tasks.values()
                if task.capacity == capacity and task.last_status != "STOPPED"
            )
        return (running + count) * vcpu > quota + 1e-9

    def describe_tasks(self, request: DescribeTasksRequest) -> dict[str, Any]:
        self._check_cluster(request.cluster)
        include_tags = request.include_tags
        found, failures = [], []
        with self.lock:
            for arn in request.tasks:
                task = self.tasks.get(arn) or self.tasks.get(self._arn_for(arn))
                if task is None:
                    failures.append({"arn": arn, "reason": "MISSING"})
                else:
                    found.append(self._describe(task, include_tags))
        return {"tasks": found, "failures": failures}

    def stop_task(self, request: StopTaskRequest) -> dict[str, Any]:
        self._check_cluster(request.cluster)
        arn = request.task
        with self.lock:
            task = self.tasks.get(arn) or self.tasks.get(self._arn_for(arn))
            if task is None:
                raise EcsError("InvalidParameterException", "The referenced task was not found.")
            if task.desired_status != "STOPPED":
                task.desired_status = "STOPPED"
                task.stop_code = "UserInitiated"
                task.stopped_reason = request.reason or "Task stopped by user"
        self._terminate(task)
        with self.lock:
            return {"task": self._describe(task)}

    def list_tasks(self, request: ListTasksRequest) -> dict[str, Any]:
        self._check_cluster(request.cluster)
        desired, started_by, family = request.desired_status, request.started_by, request.family
        with self.lock:
            arns = [
                task.arn
                for task in self.tasks.values()
                if task.desired_status == desired
                and (started_by is None or task.started_by == started_by)
                and (family is None or family == self.stack.task_definition.family)
            ]
        start, size = request.start, request.max_results
        page = arns[start : start + size]
        result: dict[str, Any] = {"taskArns": page}
        if start + size < len(arns):
            result["nextToken"] = str(start + size)
        return result

    # ------------------------------------------------------------------ lifecycle
    def running_processes(self) -> list[int]:
        with self.lock:
            return [t.process.pid for t in self.tasks.values() if t.process and t.last_status != "STOPPED"]

    def stop_all(self, reason: str = "local cloud shutting down") -> None:
        with self.lock:
            self.closed = True  # a RunTask still in flight starts no process now
            live = [t for t in self.tasks.values() if t.last_status != "STOPPED"]
        for task in live:
            with self.lock:
                task.desired_status = "STOPPED"
                task.stop_code = task.stop_code or "ServiceSchedulerInitiated"
                task.stopped_reason = task.stopped_reason or reason
            self._terminate(task, grace=2)

    def _check_cluster(self, cluster: str | None) -> None:
        if cluster not in (None, "default", self.stack.cluster_arn, self.stack.cluster_name):
            raise EcsError("ClusterNotFoundException", "Cluster not found.")

    def _arn_for(self, task_id: str) -> str:
        stack = self.stack
        return f"arn:aws:ecs:{stack.region}:{stack.account_id}:task/{stack.cluster_name}/{task_id}"

    def _create_task(self, request: RunTaskRequest, capacity: str) -> _Task:
        task_id = uuid.uuid4().hex
        container = self.stack.task_definition.containers[0]
        env = dict(self.base_env)
        env.update(container.environment)
        overrides = request.overrides
        for override in overrides.get("containerOverrides", []):
            if override.get("name") == container.name:
                env.update({item["name"]: item["value"] for item in override.get("environment", [])})
        env["ECS_CONTAINER_METADATA_TASK_ARN"] = self._arn_for(task_id)
        task = _Task(
            arn=self._arn_for(task_id),
            task_id=task_id,
            capacity=capacity,
            started_by=request.started_by,
            group=request.group,
            tags=request.tags,
            overrides=overrides,
            env=env,
            log_path=self.log_dir / f"{task_id}.log",
            stop_timeout=container.stop_timeout,
        )
        with self.lock:
            self.tasks[task.arn] = task
        return task

    def _run(self, task: _Task) -> None:
        with self.lock:
            if task.desired_status == "STOPPED" or self.closed:
                task.stop_code = task.stop_code or "ServiceSchedulerInitiated"
                self._finish(task, None)
                return
            task.last_status = "PENDING"
        self._emit(task)
        faults = self._decide_faults(task)
        try:
            if faults.interrupt and getattr(self.launcher, "holds_exit", False):
                # a reclaim decided for this attempt lands while it runs: if the worker finishes before
                # the reclaim's moment, its process is held at exit until the reclaim (AWS can reclaim a
                # task at any moment, its last one included); other launchers cannot hold an exit
                process = self.launcher.start(  # type: ignore[call-arg]
                    task.env, task.log_path, hold_exit=faults.moment + HOLD_MARGIN_SECONDS
                )
            else:
                process = self.launcher.start(task.env, task.log_path)
        except Exception as error:  # the container could not start
            log.exception("task %s failed to start", task.task_id)
            with self.lock:
                task.stop_code = "TaskFailedToStart"
                task.stopped_reason = f"CannotStartContainerError: {error}"
            self._finish(task, None)
            return
        with self.lock:
            task.process = process
            task.started_at = time.time()
            task.last_status = "RUNNING"
            self.counters["started"] += 1
            stop_now = task.desired_status == "STOPPED" or self.closed
            if stop_now:
                task.desired_status = "STOPPED"
                task.stop_code = task.stop_code or "ServiceSchedulerInitiated"
                task.stopping_at = None  # stopped while starting: its process gets the stop now
        self._emit(task)
        if stop_now:
            self._terminate(task, grace=2 if self.closed else None)
        self._schedule_faults(task, faults)
        exit_code = process.wait()
        self._finish(task, exit_code)

    def _finish(self, task: _Task, exit_code: int | None) -> None:
        with self.lock:
            now = time.time()
            task.exit_code = exit_code
            task.stopping_at = task.stopping_at or now
            task.stopped_at = now
            task.desired_status = "STOPPED"
            task.last_status = "STOPPED"
            if task.stop_code is None:
                task.stop_code = "EssentialContainerExited"
                task.stopped_reason = ESSENTIAL_EXITED
            if task.started_at and task.stop_code == "EssentialContainerExited" and exit_code == 0:
                self.durations.append(now - task.started_at)
                del self.durations[:-50]
        self._emit(task)

    def _expected_run_seconds(self) -> float:
        with self.lock:
            # before any task has finished, assume a short one: a fault must land inside the run
            return statistics.median(self.durations) if self.durations else 0.05

    def _calls_with(self, attempt: str) -> int:
        """How many RunTask calls named this item attempt so far (the n-th retry draws anew)."""
        with self.lock:
            self._calls[attempt] = self._calls.get(attempt, 0) + 1
            return self._calls[attempt]

    def _draw(self, kind: str, attempt: str, call: int = 0) -> random.Random:
        """The random numbers of one fault decision. With a seed they depend only on the seed, the item
        index and attempt: `--seed N` reproduces the same faults whatever order threads run in."""
        if self.faults.seed is None:
            return self.rng
        return random.Random(f"{self.faults.seed}/{kind}/{attempt}/{call}")

    def _decide_faults(self, task: _Task) -> _FaultDecision:
        """Decide, as the task starts, whether and when a fault hits it (a random moment of its run)."""
        draw = self._draw("task", attempt_key(task.tags, task.task_id))
        with self.lock:
            interrupt = task.capacity == "FARGATE_SPOT" and draw.random() < self.faults.spot_interruption_rate
            crash = draw.random() < self.faults.crash_rate
            # a random moment of the run: within the first 80 % of a typical run of this cloud's tasks
            moment = draw.uniform(0.0, 0.8 * self._expected_run_seconds())
            if interrupt and self.faults.spot_interruption_after is not None:
                moment = self.faults.spot_interruption_after  # a crash keeps its random moment
        return _FaultDecision(interrupt, crash, moment)

    def _schedule_faults(self, task: _Task, faults: _FaultDecision) -> None:
        if faults.interrupt:
            timer = threading.Timer(faults.moment, self._interrupt, args=(task,))
        elif faults.crash:
            timer = threading.Timer(faults.moment, self._crash, args=(task,))
        else:
            return
        timer.daemon = True
        timer.start()

    def interrupt(self, task_arn: str) -> bool:
        """Reclaim one running FARGATE_SPOT task now, as --spot-interruption-rate does at a random moment
        (tests pick the moment: mid-run). False if there is no such running Spot task."""
        with self.lock:
            task = self.tasks.get(task_arn) or self.tasks.get(self._arn_for(task_arn))
            if task is None or task.capacity != "FARGATE_SPOT" or task.last_status != "RUNNING":
                return False
        return self._interrupt(task)

    def _interrupt(self, task: _Task) -> bool:
        with self.lock:
            if task.desired_status == "STOPPED":
                return False
            task.desired_status = "STOPPED"
            task.stop_code = "SpotInterruption"
            task.stopped_reason = SPOT_INTERRUPTED
            self.counters["interruptions"] += 1
        log.info("spot interruption of task %s", task.task_id)
        self._terminate(task)
        return True

    def _crash(self, task: _Task) -> None:
        with self.lock:
            if task.desired_status == "STOPPED" or task.process is None:
                return
            self.counters["crashes"] += 1
        log.info("crashing task %s (SIGKILL)", task.task_id)
        task.process.signal(signal.SIGKILL)

    def _terminate(self, task: _Task, grace: float | None = None) -> None:
        """SIGTERM now, SIGKILL after the container's stopTimeout, as ECS stops a task."""
        with self.lock:
            process = task.process
            if task.last_status == "STOPPED" or task.stopping_at is not None:
                return
            task.stopping_at = time.time()
            if task.last_status == "RUNNING":
                task.last_status = "DEACTIVATING"
        self._emit(task)
        if process is None:
            return
        process.signal(signal.SIGTERM)
        timer = threading.Timer(
            grace if grace is not None else task.stop_timeout, self._kill_if_alive, args=(task,)
        )
        timer.daemon = True
        timer.start()

    def _kill_if_alive(self, task: _Task) -> None:
        with self.lock:
            alive = task.last_status != "STOPPED" and task.process is not None
        if alive and task.process is not None:
            task.process.signal(signal.SIGKILL)

    def _emit(self, task: _Task) -> None:
        """An "ECS Task State Change" event for the task's new state (ECS sends one per transition, at
        least once and possibly out of order: `version` orders them). Its detail is the task
        description with ISO 8601 timestamps, `updatedAt` and `version`, as in the ECS developer
        guide's example events ("Amazon ECS task state change events")."""
        sink = self.on_state_change
        if sink is None:
            return
        with self.lock:
            if task.emitted == task.last_status and task.last_status != "DEACTIVATING":
                return
            task.emitted = task.last_status
            task.version += 1
            detail = self._describe(task)
            version = task.version
        for key in ("createdAt", "startedAt", "stoppingAt", "stoppedAt", "executionStoppedAt"):
            if isinstance(detail.get(key), float):
                detail[key] = _iso(detail[key])
        detail["updatedAt"] = _iso(time.time())
        detail["version"] = version
        detail.setdefault("group", f"family:{self.stack.task_definition.family}")
        detail["attachments"] = []
        detail["availabilityZone"] = f"{self.stack.region}a"
        detail["connectivity"] = "CONNECTED"
        try:
            sink(detail)
        except Exception:  # an event that cannot be put is lost, as EventBridge may lose one
            log.exception("state change event of task %s", task.task_id)

    def _describe(self, task: _Task, include_tags: bool = False) -> dict[str, Any]:
        container = self.stack.task_definition.containers[0]
        container_status = {"PROVISIONING": "PENDING", "PENDING": "PENDING"}.get(
            task.last_status, task.last_status
        )
        if container_status == "DEACTIVATING":
            container_status = "RUNNING"
        described: dict[str, Any] = {
            "taskArn": task.arn,
            "clusterArn": self.stack.cluster_arn,
            "taskDefinitionArn": self.stack.task_definition.arn,
            "lastStatus": task.last_status,
            "desiredStatus": task.desired_status,
            "launchType": "FARGATE",
            "capacityProviderName": task.capacity,
            "platformVersion": "1.4.0",
            "cpu": self.stack.task_definition.cpu,
            "memory": self.stack.task_definition.memory,
            "createdAt": task.created_at,
            "overrides": task.overrides,
            "containers": [
                {
                    "containerArn": f"{task.arn}/container/{container.name}",
                    "taskArn": task.arn,
                    "name": container.name,
                    "lastStatus": container_status,
                    "runtimeId": f"{task.task_id}-{task.process.pid if task.process else 0}",
                    **({"exitCode": task.exit_code} if task.exit_code is not None else {}),
                }
            ],
        }
        if task.started_by:
            described["startedBy"] = task.started_by
        if task.group:
            described["group"] = task.group
        for key, value in (
            ("startedAt", task.started_at),
            ("stoppingAt", task.stopping_at),
            ("stoppedAt", task.stopped_at),
            ("executionStoppedAt", task.stopped_at),
        ):
            if value is not None:
                described[key] = value
        if task.stop_code and task.desired_status == "STOPPED":
            described["stopCode"] = task.stop_code
            described["stoppedReason"] = task.stopped_reason
        if include_tags:
            described["tags"] = task.tags
        return described
