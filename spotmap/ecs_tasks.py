"""A local Fargate task: its record (statuses, stop code, exit code, its process), how ECS describes
it (DescribeTasks, RunTask) and the detail of its "ECS Task State Change" events. What happens to a
task over its life is spotmap/fargate.py's."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from spotmap.template import Stack

EVENT_TIMESTAMPS = ("createdAt", "startedAt", "stoppingAt", "stoppedAt", "executionStoppedAt")


class WorkerProcess(Protocol):
    pid: int

    def wait(self) -> int: ...

    def signal(self, signum: int) -> None: ...


class WorkerLauncher(Protocol):
    def start(self, env: dict[str, str], log_path: Path) -> WorkerProcess: ...


@dataclass
class Task:
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


def iso(moment: float) -> str:
    """Epoch seconds as events carry them: 2020-01-23T17:57:58.103Z."""
    return (
        datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def describe(stack: Stack, task: Task, include_tags: bool = False) -> dict[str, Any]:
    """The task as DescribeTasks and RunTask answer it (timestamps in epoch seconds)."""
    container = stack.task_definition.containers[0]
    # the container is PENDING until the task runs, and RUNNING while the task deactivates
    container_status = {"PROVISIONING": "PENDING", "PENDING": "PENDING", "DEACTIVATING": "RUNNING"}.get(
        task.last_status, task.last_status
    )
    described: dict[str, Any] = {
        "taskArn": task.arn,
        "clusterArn": stack.cluster_arn,
        "taskDefinitionArn": stack.task_definition.arn,
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "launchType": "FARGATE",
        "capacityProviderName": task.capacity,
        "platformVersion": "1.4.0",
        "cpu": stack.task_definition.cpu,
        "memory": stack.task_definition.memory,
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


def state_change_detail(stack: Stack, described: dict[str, Any], version: int) -> dict[str, Any]:
    """An "ECS Task State Change" event's detail: the task description with ISO 8601 timestamps,
    `updatedAt` and `version`, as in the ECS developer guide's example events ("Amazon ECS task state
    change events")."""
    detail = dict(described)
    for key in EVENT_TIMESTAMPS:
        if isinstance(detail.get(key), float):
            detail[key] = iso(detail[key])
    detail["updatedAt"] = iso(time.time())
    detail["version"] = version
    detail.setdefault("group", f"family:{stack.task_definition.family}")
    detail["attachments"] = []
    detail["availabilityZone"] = f"{stack.region}a"
    detail["connectivity"] = "CONNECTED"
    return detail
