"""Each function's settings, read once from its environment into one typed, validated object
(jobcore/settings.py: pydantic-settings, one ConfigError).

Variable names are the ones template.yaml sets (field name in upper case). A missing or malformed
variable fails the first invocation with a message that names the variable, rather than surfacing
later as a KeyError or a confusing AWS error.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from jobcore.settings import CommaList, ConfigError, Settings

__all__ = [
    "ConfigError",
    "EvaluateJobSettings",
    "LambdaUsageSettings",
    "LaunchSettings",
    "PollBounds",
    "PollSettings",
    "ReconcileSettings",
    "RecordFailureSettings",
    "Settings",
    "StartJobSettings",
    "StopJobTasksSettings",
    "SummarizeSettings",
    "wait_seconds",
]


def wait_seconds(value: float) -> int:
    """A Wait state's SecondsPath needs a whole number ≥ 0; round a configured float up."""
    return max(0, math.ceil(value))


class LambdaUsageSettings(Settings):
    # The memory Lambda bills for; set by the Lambda runtime (and by the local cloud).
    lambda_memory_mb: int = Field(default=128, ge=1, alias="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")


class PollBounds(Settings):
    poll_min_seconds: float = Field(ge=0)
    poll_max_seconds: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> PollBounds:
        if self.poll_max_seconds < self.poll_min_seconds:
            raise ValueError(
                f"POLL_MAX_SECONDS ({self.poll_max_seconds}) is below "
                f"POLL_MIN_SECONDS ({self.poll_min_seconds})"
            )
        return self

    @property
    def min_wait(self) -> int:
        return wait_seconds(self.poll_min_seconds)

    @property
    def max_wait(self) -> int:
        return max(self.min_wait, wait_seconds(self.poll_max_seconds))


class StartJobSettings(Settings):
    job_bucket: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    shard_size_mb: float = Field(gt=0)
    max_concurrency: int = Field(ge=1)
    # The processors the worker image provides; a manifest naming another is rejected. Empty: any.
    processors: CommaList = Field(default_factory=list)
    # The worker task's size (TaskCpu units, TaskMemory MiB): with them, the job's plan warnings.
    task_cpu: int | None = Field(default=None, ge=1)
    task_memory: int | None = Field(default=None, ge=1)
    # The template's batching default (jobcore.batching): 1 / 0 put one item in each task.
    batch_max_items: int = Field(default=1, ge=1, le=1000)
    batch_max_bytes: int = Field(default=0, ge=0)


class LaunchSettings(LambdaUsageSettings):
    cluster_arn: str = Field(min_length=1)
    task_definition_arn: str = Field(min_length=1)
    container_name: str = Field(min_length=1)
    subnet_ids: CommaList = Field(default_factory=list)
    security_group_ids: CommaList = Field(default_factory=list)
    assign_public_ip: Literal["ENABLED", "DISABLED"] = "DISABLED"
    max_attempts: int = Field(ge=1)
    spot_attempts_before_on_demand: int = Field(ge=0)
    capacity_retries_before_on_demand: int = Field(ge=0)
    poll_min_seconds: float = Field(ge=0)
    # Optional: with it (and read access to jobs/*), the first wait after a launch already uses the
    # job's typical task duration instead of POLL_MIN_SECONDS.
    poll_max_seconds: float | None = Field(default=None, ge=0)
    # Optional: with it, a launch that RunTask keeps throttling fails as LaunchTimedOut once it has
    # waited this long (the state machine retries throttling with no practical count limit), and a task
    # launched for completion by events stops its heartbeats at the item's timeout, so that PollTask gets
    # to stop it (jobcore.completion).
    item_timeout_minutes: float | None = Field(default=None, gt=0)
    # The heartbeat period of a waiting launch, for an item state that does not carry its own.
    task_heartbeat_seconds: int | None = Field(default=None, ge=1)

    @field_validator("assign_public_ip", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @property
    def min_wait(self) -> int:
        return wait_seconds(self.poll_min_seconds)

    @property
    def max_wait(self) -> int | None:
        if self.poll_max_seconds is None:
            return None
        return max(self.min_wait, wait_seconds(self.poll_max_seconds))


class PollSettings(LambdaUsageSettings, PollBounds):
    job_bucket: str = Field(min_length=1)
    cluster_arn: str = Field(min_length=1)
    container_name: str = Field(min_length=1)
    item_timeout_minutes: float = Field(gt=0)
    task_log_group: str = "(unknown log group)"
    task_log_stream_prefix: str = "spotmap"
    # Set by the local cloud: task logs are files there, not CloudWatch streams.
    local_task_log_dir: str | None = None

    @property
    def item_timeout_seconds(self) -> float:
        return self.item_timeout_minutes * 60


class RecordFailureSettings(LambdaUsageSettings):
    job_bucket: str = Field(min_length=1)
    # Optional: with it (and ecs:StopTask), a failure recorded while a task still runs also stops it.
    cluster_arn: str | None = None


class EvaluateJobSettings(Settings):
    job_bucket: str = Field(min_length=1)
    tolerated_failure_percentage: float = Field(ge=0, le=100)


class SummarizeSettings(Settings):
    job_bucket: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    # Optional: the SNS topic told of every job that ends (empty: no notifications).
    notification_topic_arn: str | None = None


class StopJobTasksSettings(Settings):
    cluster_arn: str = Field(min_length=1)
    # Optional: the EventBridge rule already matches the job state machine only.
    state_machine_arn: str | None = None


class ReconcileSettings(Settings):
    job_bucket: str = Field(min_length=1)
    state_machine_arn: str = Field(min_length=1)
    # Optional: with it (and ecs:ListTasks / ecs:StopTask), tasks of closed jobs are stopped too.
    cluster_arn: str | None = None
    reconcile_lookback_days: float = Field(default=7, gt=0)
    reconcile_max_executions: int = Field(default=1000, ge=1)
