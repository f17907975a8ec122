"""The local Fargate's RunTask requests, parsed before a task is created (spotmap/ecs_requests.py)."""

from __future__ import annotations

from typing import Any

from spotmap.ecs_requests import RunTaskRequest

BODY: dict[str, Any] = {
    "cluster": "spotmap",
    "taskDefinition": "spotmap-worker",
    "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    "tags": [{"key": "spotmap:item-index", "value": "7"}, {"key": "spotmap:attempt", "value": "2"}],
    "clientToken": "token-1",
}


def test_a_client_token_stands_for_every_parameter_but_itself() -> None:
    # GIVEN a RunTask request, the same with another token, and the same token with another parameter
    same = RunTaskRequest.from_body(BODY)
    other_token = RunTaskRequest.from_body({**BODY, "clientToken": "token-2"})
    other_count = RunTaskRequest.from_body({**BODY, "count": 2})

    # WHEN / THEN the token's fingerprint ignores the token alone (another parameter is a ConflictException)
    assert same.fingerprint == other_token.fingerprint
    assert same.fingerprint != other_count.fingerprint


def test_the_item_attempt_comes_from_the_tags_else_the_token() -> None:
    # GIVEN a launch tagged with its item attempt, and one without tags
    tagged = RunTaskRequest.from_body(BODY)
    untagged = RunTaskRequest.from_body({**BODY, "tags": []})

    # WHEN / THEN the tags name the attempt; without them the client token does; the strategy's providers
    assert tagged.attempt_key() == "7/2" and untagged.attempt_key() == "token-1"
    assert tagged.providers == ["FARGATE_SPOT"] and tagged.count == 1
    assert RunTaskRequest.from_body({"taskDefinition": "spotmap-worker"}).providers == ["FARGATE"]
