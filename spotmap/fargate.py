"""Local Fargate: ECS RunTask / DescribeTasks / StopTask / ListTasks served by running the worker as
OS processes, with the task lifecycle, stop codes, exit codes and signals ECS documents, and the
faults Fargate Spot brings (interruptions, no capacity, throttling) injectable on demand.

This module is the task lifecycle. The requests come parsed (spotmap/ecs_requests.py) and checked
(spotmap/ecs_rules.py); a task's record and descriptions are spotmap/ecs_tasks.py's, the injected
faults spotmap/fargate_faults.py's, and how a task's process starts spotmap/launchers.py's.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spotmap import ecs_requests, ecs_rules, ecs_tasks
from spotmap.ecs_requests import (
    DescribeTasksRequest,
    ListTasksRequest,
    RunTaskRequest,
    StopTaskRequest,
    attempt_key,
)
from spotmap.ecs_rules import EcsError, TokenBucket
from spotmap.ecs_tasks import Task, WorkerLauncher, WorkerProcess
from spotmap.fargate_faults import FaultDecision, FaultInjector, Faults
from spotmap.template import Stack

# the names the local Fargate's parts had here stay importable from here
_Task = Task
__all__ = ["EcsError", "Faults", "LocalFargate", "TokenBucket", "WorkerLauncher", "WorkerProcess"]

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
        self.injector = FaultInjector(faults or Faults())
        # Fargate's task launches (ECS's API throttling of the calls themselves is `api`)
        self.bucket = TokenBucket(self.faults.launch_rate, self.faults.launch_burst)
        self.api = ecs_rules.ApiThrottle()  # ECS's own request throttling, per action category
        self.tasks: dict[str, Task] = {}
        self.closed = False
        self.tokens: dict[str, tuple[str, list[str]]] = {}
        self.lock = threading.RLock()
        # vCPUs the account may run at once per capacity provider (None: not enforced)
        self.vcpu_quotas: dict[str, float] = {}
        # where "ECS Task State Change" events go (the local EventBridge), with the task description
        # as the event's detail; None: nowhere
        self.on_state_change: Callable[[dict[str, Any]], None] | None = None
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
        capacity = providers[0] if len(providers) == 1 else self.injector.rng.choice(providers)
        if self.injector.no_capacity(capacity, request.attempt_key()):
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

    def _create_task(self, request: RunTaskRequest, capacity: str) -> Task:
        task_id = uuid.uuid4().hex
        container = self.stack.task_definition.containers[0]
        env = dict(self.base_env)
        env.update(container.environment)
        overrides = request.overrides
        for override in overrides.get("containerOverrides", []):
            if override.get("name") == container.name:
                env.update({item["name"]: item["value"] for item in override.get("environment", [])})
        env["ECS_CONTAINER_METADATA_TASK_ARN"] = self._arn_for(task_id)
        task = Task(
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

    def _run(self, task: Task) -> None:
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

    def _finish(self, task: Task, exit_code: int | None) -> None:
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
                self.injector.ran(now - task.started_at)
        self._emit(task)

    @property
    def faults(self) -> Faults:
        return self.injector.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """New fault rates for the tasks started from now on."""
        self.injector.faults = faults

    def _decide_faults(self, task: Task) -> FaultDecision:
        return self.injector.decide(task.capacity, attempt_key(task.tags, task.task_id))

    def _schedule_faults(self, task: Task, faults: FaultDecision) -> None:
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

    def _interrupt(self, task: Task) -> bool:
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

    def _crash(self, task: Task) -> None:
        with self.lock:
            if task.desired_status == "STOPPED" or task.process is None:
                return
            self.counters["crashes"] += 1
        log.info("crashing task %s (SIGKILL)", task.task_id)
        task.process.signal(signal.SIGKILL)

    def _terminate(self, task: Task, grace: float | None = None) -> None:
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

    def _kill_if_alive(self, task: Task) -> None:
        with self.lock:
            alive = task.last_status != "STOPPED" and task.process is not None
        if alive and task.process is not None:
            task.process.signal(signal.SIGKILL)

    def _emit(self, task: Task) -> None:
        """An "ECS Task State Change" event for the task's new state (ECS sends one per transition, at
        least once and possibly out of order: `version` orders them)."""
        sink = self.on_state_change
        if sink is None:
            return
        with self.lock:
            if task.emitted == task.last_status and task.last_status != "DEACTIVATING":
                return
            task.emitted = task.last_status
            task.version += 1
            described = self._describe(task)
            version = task.version
        try:
            sink(ecs_tasks.state_change_detail(self.stack, described, version))
        except Exception:  # an event that cannot be put is lost, as EventBridge may lose one
            log.exception("state change event of task %s", task.task_id)

    def _describe(self, task: Task, include_tags: bool = False) -> dict[str, Any]:
        return ecs_tasks.describe(self.stack, task, include_tags)
