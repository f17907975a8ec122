"""The ECS requests the local Fargate serves, parsed into typed requests, and their HTTP answers (as
moto keeps request parsing in responses.py apart from the backend in models.py). What ECS refuses in a
request is spotmap/ecs_rules.py's, checked on the raw body before it is parsed here; what happens to a
task is spotmap/fargate.py's."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from spotmap.ecs_rules import EcsError

TARGET = "AmazonEC2ContainerServiceV20141113."
ACTIONS = ("RunTask", "DescribeTasks", "StopTask", "ListTasks")
ITEM_INDEX_TAG = "spotmap:item-index"
ATTEMPT_TAG = "spotmap:attempt"


@dataclass(frozen=True)
class RunTaskRequest:
    cluster: str | None
    task_definition: str
    count: int
    # the capacity providers of the strategy (FARGATE without one)
    providers: list[str]
    client_token: str | None
    # what a client token stands for: every parameter but the token (the same token with other
    # parameters is ECS's ConflictException)
    fingerprint: str
    started_by: str | None
    group: str | None
    tags: list[dict[str, str]]
    overrides: dict[str, Any]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RunTaskRequest:
        strategy = body.get("capacityProviderStrategy") or []
        fingerprint = hashlib.sha256(
            json.dumps({k: v for k, v in body.items() if k != "clientToken"}, sort_keys=True).encode()
        ).hexdigest()
        return cls(
            cluster=body.get("cluster"),
            task_definition=body.get("taskDefinition", ""),
            count=int(body.get("count", 1)),
            providers=[item["capacityProvider"] for item in strategy] or ["FARGATE"],
            client_token=body.get("clientToken"),
            fingerprint=fingerprint,
            started_by=body.get("startedBy"),
            group=body.get("group"),
            tags=body.get("tags") or [],
            overrides=body.get("overrides") or {},
        )

    def attempt_key(self) -> str:
        """Which item attempt this launch is (its spotmap tags), else its client token: what the local
        Fargate's seeded fault decisions depend on."""
        return attempt_key(self.tags, self.client_token)


def attempt_key(tags: list[dict[str, str]], fallback: str | None) -> str:
    """`index/attempt` from a task's spotmap tags; without them the fallback, else a fresh id."""
    values = {tag.get("key"): tag.get("value") for tag in tags}
    index, attempt = values.get(ITEM_INDEX_TAG), values.get(ATTEMPT_TAG)
    if index is None or attempt is None:
        return str(fallback or uuid.uuid4())
    return f"{index}/{attempt}"


@dataclass(frozen=True)
class DescribeTasksRequest:
    cluster: str | None
    tasks: list[str]
    include_tags: bool

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> DescribeTasksRequest:
        return cls(
            cluster=body.get("cluster"),
            tasks=body.get("tasks") or [],
            include_tags="TAGS" in (body.get("include") or []),
        )


@dataclass(frozen=True)
class StopTaskRequest:
    cluster: str | None
    task: str
    reason: str | None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> StopTaskRequest:
        return cls(cluster=body.get("cluster"), task=body.get("task", ""), reason=body.get("reason"))


@dataclass(frozen=True)
class ListTasksRequest:
    cluster: str | None
    desired_status: str
    started_by: str | None
    family: str | None
    start: int  # the page's first index (nextToken)
    max_results: int

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> ListTasksRequest:
        return cls(
            cluster=body.get("cluster"),
            desired_status=body.get("desiredStatus", "RUNNING"),
            started_by=body.get("startedBy"),
            family=body.get("family"),
            start=int(body.get("nextToken") or 0),
            max_results=int(body.get("maxResults") or 100),
        )


EcsRequest = RunTaskRequest | DescribeTasksRequest | StopTaskRequest | ListTasksRequest
PARSERS: dict[str, Callable[[dict[str, Any]], EcsRequest]] = {
    "RunTask": RunTaskRequest.from_body,
    "DescribeTasks": DescribeTasksRequest.from_body,
    "StopTask": StopTaskRequest.from_body,
    "ListTasks": ListTasksRequest.from_body,
}


def action_of(environ: dict[str, Any]) -> str | None:
    """The ECS action of a request the local Fargate serves (its X-Amz-Target), else None."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    action = target[len(TARGET) :]
    return action if target.startswith(TARGET) and action in ACTIONS else None


EcsHandler = Callable[[str, dict[str, Any]], dict[str, Any]]


def respond(handle: EcsHandler, action: str, request: Request) -> Response:
    """The HTTP answer to an ECS request: the action's result, or ECS's error shape."""
    try:
        result = handle(action, json.loads(request.get_data() or b"{}"))
        status, body = 200, result
    except EcsError as error:
        status, body = error.status, {"__type": error.code, "message": str(error)}
    return Response(
        json.dumps(body),
        status=status,
        content_type="application/x-amz-json-1.1",
        headers={"x-amzn-RequestId": str(uuid.uuid4())},
    )
