"""What Amazon ECS refuses, for the calls the product makes (RunTask, DescribeTasks, StopTask,
ListTasks): request validation and the API's request throttling, kept apart from the local Fargate's
task lifecycle (as moto keeps request parsing in responses.py and the backend in models.py).

Sources (ECS API Reference and Developer Guide; the same texts ship in botocore's ECS service model):
- RunTask:      https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html
- ListTasks:    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTasks.html
- DescribeTasks https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html
- StopTask:     https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html
- Tag:          https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Tag.html
- AwsVpcConfiguration and the quotas (16 subnets, 5 security groups, 50 tags, 10 tasks per RunTask):
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_AwsVpcConfiguration.html,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html
- Throttling:   https://docs.aws.amazon.com/AmazonECS/latest/APIReference/request-throttling.html

The error codes are the ones these pages name (InvalidParameterException, ClientException,
ThrottlingException "Rate exceeded"). Where AWS's exact message text is not published, the message
says what was wrong in ECS's usual words; callers must branch on the code, never on the message.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

INVALID = "InvalidParameterException"

MAX_TASKS_PER_RUN = 10
MAX_CLIENT_TOKEN = 64
MAX_STARTED_BY = 128
MAX_OVERRIDES_CHARACTERS = 8192
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
MAX_SUBNETS = 16
MAX_SECURITY_GROUPS = 5
MAX_STRATEGY_PROVIDERS = 20
MAX_DESCRIBED_TASKS = 100
MAX_STOP_REASON = 255
MAX_LIST_RESULTS = 100

# startedBy: "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward slash (/), and
# underscores (_) are allowed." (RunTask)
_STARTED_BY = re.compile(r"[A-Za-z0-9_/-]{1,128}")
# clientToken: "Up to 64 characters are allowed. The valid characters are characters in the range of
# 33-126, inclusive." (RunTask)
_CLIENT_TOKEN = re.compile(r"[\x21-\x7e]{1,64}")
# Every ListTasks filter besides the cluster and the paging parameters.
LIST_TASKS_FILTERS = (
    "containerInstance",
    "family",
    "serviceName",
    "desiredStatus",
    "launchType",
    "daemonName",
)


class EcsError(Exception):
    """An ECS API error: rendered as the JSON error shape of the awsJson1.1 protocol."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code = code
        self.status = status


# ---------------------------------------------------------------- throttling


class TokenBucket:
    """A bucket of `burst` tokens refilled `rate` per second (ECS's token bucket algorithm)."""

    def __init__(self, rate: float, burst: int = 100):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def take(self, count: int) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= count:
                self.tokens -= count
                return True
            return False


# "Request Token Bucket Sizes and Refill Rates" (request-throttling.html): all actions of a category
# share one bucket per account and Region. (category, bucket maximum capacity, refill rate per second)
CLUSTER_RESOURCE_MODIFY = ("Cluster resource modify actions", 100, 40.0)  # RunTask, StartTask, StopTask, ...
CLUSTER_RESOURCE_READ = ("Cluster resource read actions", 100, 20.0)  # DescribeTasks, ListTasks, ...
ACTION_CATEGORIES = {
    "RunTask": CLUSTER_RESOURCE_MODIFY,
    "StopTask": CLUSTER_RESOURCE_MODIFY,
    "DescribeTasks": CLUSTER_RESOURCE_READ,
    "ListTasks": CLUSTER_RESOURCE_READ,
}


class ApiThrottle:
    """ECS's per-account API request throttling; over a bucket: ThrottlingException "Rate exceeded".
    (Fargate throttles RunTask's task launches again, per task: that bucket is the local Fargate's.)"""

    def __init__(self) -> None:
        categories = set(ACTION_CATEGORIES.values())
        self.buckets = {name: TokenBucket(rate, burst) for name, burst, rate in categories}

    def admit(self, action: str) -> None:
        name, _burst, _rate = ACTION_CATEGORIES[action]
        if not self.buckets[name].take(1):
            raise EcsError("ThrottlingException", "Rate exceeded")


# ---------------------------------------------------------------- RunTask


def check_run_task(body: dict[str, Any]) -> None:
    """Refuse a RunTask request as ECS does, before any task is placed."""
    count = body.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= MAX_TASKS_PER_RUN:
        raise EcsError(INVALID, f"count must be between 1 and {MAX_TASKS_PER_RUN}")
    token = body.get("clientToken")
    if token is not None and not _CLIENT_TOKEN.fullmatch(token):
        raise EcsError(
            INVALID,
            f"clientToken must be 1 to {MAX_CLIENT_TOKEN} characters in the range 33-126 (got {len(token)})",
        )
    started_by = body.get("startedBy")
    if started_by is not None and not _STARTED_BY.fullmatch(started_by):
        raise EcsError(
            INVALID,
            f"startedBy must be up to {MAX_STARTED_BY} letters, numbers, hyphens, forward slashes and "
            "underscores",
        )
    _check_overrides(body.get("overrides") or {})
    _check_tags(body.get("tags") or [])
    _check_launch(body)
    _check_network(body.get("networkConfiguration"))


def overrides_size(overrides: dict[str, Any]) -> int:
    """The overrides' length as ECS counts it: "This limit includes the JSON formatting characters of
    the override structure." (compact JSON, as the SDK serialises it)."""
    return len(json.dumps(overrides, separators=(",", ":"), ensure_ascii=False))


def _check_overrides(overrides: dict[str, Any]) -> None:
    size = overrides_size(overrides)
    if size > MAX_OVERRIDES_CHARACTERS:
        # the message ECS gives (e.g. github.com/Netflix/metaflow/issues/1482)
        raise EcsError(INVALID, f"Container Overrides length must be at most {MAX_OVERRIDES_CHARACTERS}")


def _check_tags(tags: list[dict[str, Any]]) -> None:
    """Tag restrictions (API_Tag.html): at most 50, unique keys of 1-128 characters, values of at most
    256, and no `aws:` prefix (any case) on keys or values: it is reserved for AWS use."""
    if len(tags) > MAX_TAGS:
        raise EcsError(INVALID, f"Tags cannot have more than {MAX_TAGS} elements (got {len(tags)})")
    seen: set[str] = set()
    for tag in tags:
        key, value = tag.get("key"), tag.get("value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise EcsError(INVALID, f"Tag keys must be 1 to {MAX_TAG_KEY} characters: {key!r}")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise EcsError(INVALID, f"Tag values must be at most {MAX_TAG_VALUE} characters (key {key!r})")
        if key.lower().startswith("aws:") or value.lower().startswith("aws:"):
            raise EcsError(INVALID, "Tag keys and values beginning with 'aws:' are reserved for AWS use")
        if key in seen:
            raise EcsError(INVALID, f"Tag keys must be unique: {key!r}")
        seen.add(key)


def _check_launch(body: dict[str, Any]) -> None:
    """launchType or capacityProviderStrategy, never both (RunTask); this cluster runs Fargate only, so
    an EC2/EXTERNAL launch finds no container instance."""
    strategy = body.get("capacityProviderStrategy") or []
    launch_type = body.get("launchType")
    if strategy and launch_type:
        raise EcsError(INVALID, "Specifying both a launchType and capacityProviderStrategy is not supported.")
    if launch_type not in (None, "FARGATE"):
        raise EcsError(INVALID, "No Container Instances were found in your cluster.")
    if len(strategy) > MAX_STRATEGY_PROVIDERS:
        raise EcsError(
            INVALID, f"A capacity provider strategy can contain at most {MAX_STRATEGY_PROVIDERS} providers"
        )
    if sum(1 for item in strategy if item.get("base")) > 1:
        raise EcsError(INVALID, "Only one capacity provider in a strategy can have a base defined.")


def _check_network(network: dict[str, Any] | None) -> None:
    """Fargate task definitions use the awsvpc network mode, for which "this parameter is required"
    (RunTask networkConfiguration); subnets 1-16, security groups at most 5, assignPublicIp ENABLED or
    DISABLED (AwsVpcConfiguration)."""
    vpc = (network or {}).get("awsvpcConfiguration")
    if not vpc:
        raise EcsError(
            INVALID, "Network Configuration must be provided when networkMode 'awsvpc' is specified."
        )
    subnets = vpc.get("subnets") or []
    if not subnets:
        raise EcsError(INVALID, "subnets can not be empty.")
    if len(subnets) > MAX_SUBNETS:
        raise EcsError(INVALID, f"subnets can have at most {MAX_SUBNETS} items.")
    if len(vpc.get("securityGroups") or []) > MAX_SECURITY_GROUPS:
        raise EcsError(INVALID, f"securityGroups can have at most {MAX_SECURITY_GROUPS} items.")
    if vpc.get("assignPublicIp", "DISABLED") not in ("ENABLED", "DISABLED"):
        raise EcsError(
            INVALID, f"assignPublicIp must be ENABLED or DISABLED, got {vpc.get('assignPublicIp')!r}"
        )


# ---------------------------------------------------------------- the other task actions


def check_list_tasks(body: dict[str, Any]) -> None:
    """ListTasks: "When you specify startedBy as the filter, it must be the only filter that you use."
    (the cluster is not a filter of tasks but where they are listed); maxResults 1-100."""
    if body.get("startedBy") is not None:
        others = [name for name in LIST_TASKS_FILTERS if body.get(name) is not None]
        if others:
            raise EcsError(
                INVALID,
                f"startedBy must be the only filter when it is specified (also given: {', '.join(others)})",
            )
    if body.get("desiredStatus") not in (None, "RUNNING", "PENDING", "STOPPED"):
        raise EcsError(INVALID, f"Invalid desiredStatus: {body.get('desiredStatus')!r}")
    size = body.get("maxResults")
    if size is not None and not 1 <= int(size) <= MAX_LIST_RESULTS:
        raise EcsError(INVALID, f"maxResults must be between 1 and {MAX_LIST_RESULTS}")


def check_describe_tasks(body: dict[str, Any]) -> None:
    """DescribeTasks: "A list of up to 100 task IDs or full ARN entries.\""""
    tasks = body.get("tasks") or []
    if not tasks:
        raise EcsError(INVALID, "Tasks cannot be empty.")
    if len(tasks) > MAX_DESCRIBED_TASKS:
        raise EcsError(INVALID, f"Tasks cannot have more than {MAX_DESCRIBED_TASKS} elements")


def check_stop_task(body: dict[str, Any]) -> None:
    """StopTask: the task is required; "Up to 255 characters are allowed in this message" (reason)."""
    if not body.get("task"):
        raise EcsError(INVALID, "task can not be blank.")
    reason = body.get("reason")
    if reason is not None and len(reason) > MAX_STOP_REASON:
        raise EcsError(INVALID, f"reason must be at most {MAX_STOP_REASON} characters (got {len(reason)})")


CHECKS = {
    "RunTask": check_run_task,
    "DescribeTasks": check_describe_tasks,
    "StopTask": check_stop_task,
    "ListTasks": check_list_tasks,
}
