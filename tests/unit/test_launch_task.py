"""LaunchTask: RunTask on Spot or on-demand, idempotent, with the errors the ASL matches by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jobcore import aws as factory
from jobcore import errors, layout
from jobcore.launching import OVERRIDES_LIMIT, client_token
from jobcore.models import parse_item, parse_item_json
from launch_task import app
from tests.conftest import load_event
from tests.unit.conftest import CAPACITY_REASON, CLUSTER_ARN, TASK_ARN, TASK_DEFINITION_ARN


def started(task_arn: str = TASK_ARN) -> dict[str, Any]:
    return {"tasks": [{"taskArn": task_arn, "lastStatus": "PROVISIONING"}], "failures": []}


def environment(request: dict[str, Any]) -> dict[str, str]:
    [override] = request["overrides"]["containerOverrides"]
    assert override["name"] == "worker"
    return {pair["name"]: pair["value"] for pair in override["environment"]}


def test_first_launch_runs_on_spot(ecs: Any, lambda_context: Any) -> None:
    # GIVEN an item's first launch
    stubber, requests = ecs
    stubber.add_response("run_task", started())
    event = load_event("launch_task.json")

    # WHEN LaunchTask runs
    state = app.lambda_handler(event, lambda_context)

    # THEN RunTask was asked for one Spot task, tagged and named after the job
    [request] = requests
    assert request["cluster"] == CLUSTER_ARN and request["taskDefinition"] == TASK_DEFINITION_ARN
    assert request["count"] == 1
    assert request["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in request
    job_id = event["state"]["job_id"]
    assert request["startedBy"] == job_id
    assert request["clientToken"] == client_token(job_id, 3, 1, errors_capacity())
    assert {tag["key"]: tag["value"] for tag in request["tags"]} == {
        "spotmap:job-id": job_id,
        "spotmap:item-index": "3",
        "spotmap:attempt": "1",
    }
    assert request["networkConfiguration"] == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-0aaa", "subnet-0bbb"],
            "securityGroups": ["sg-0ccc"],
            "assignPublicIp": "ENABLED",
        }
    }
    env = environment(request)
    assert env["JOB_ID"] == job_id and env["ITEM_INDEX"] == "3" and env["ATTEMPT"] == "1"
    assert parse_item_json(env["ITEM"]) == parse_item(event["state"]["item"])

    # AND the new state says RUNNING on Spot, first wait POLL_MIN_SECONDS, this call's usage counted
    assert state["status"] == "RUNNING" and state["task_arn"] == TASK_ARN
    assert state["attempt"] == 1 and state["capacity"] == "FARGATE_SPOT"
    assert state["wait_seconds"] == 10
    assert state["on_demand_fallbacks"] == 0 and state["capacity_retries"] == 0
    assert state["usage"]["lambda_invocations"] == 1 and state["usage"]["state_transitions"] == 1


def test_client_token_is_deterministic_and_short() -> None:
    token = client_token("x" * 80, 123456, 4, errors_capacity())
    assert token == client_token("x" * 80, 123456, 4, errors_capacity())
    assert len(token) <= 64 and token.isascii()
    assert token != client_token("x" * 80, 123456, 5, errors_capacity())


def errors_capacity() -> Any:
    from jobcore.models import Capacity

    return Capacity.SPOT


def test_after_spot_interruptions_the_item_moves_to_on_demand(ecs: Any, lambda_context: Any) -> None:
    # GIVEN an item interrupted twice (SPOT_ATTEMPTS_BEFORE_ON_DEMAND=2), relaunched after one retry
    stubber, requests = ecs
    stubber.add_response("run_task", started())

    # WHEN LaunchTask runs
    state = app.lambda_handler(load_event("launch_task_after_interruption.json"), lambda_context)

    # THEN the task runs on FARGATE, counted once as a fallback, the retry's invocation counted (it left
    # no tally of capacity shortages: e.g. a Lambda service error, so no capacity retry)
    assert requests[0]["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE", "weight": 1}]
    assert state["capacity"] == "FARGATE" and state["on_demand_fallbacks"] == 1
    assert state["attempt"] == 3 and state["capacity_retries"] == 0
    assert state["reason"] is None and state["status"] == "RUNNING"
    assert state["usage"]["lambda_invocations"] == 2  # this call and the failed try before it


def test_capacity_failure_raises_capacity_unavailable(ecs: Any, lambda_context: Any) -> None:
    # GIVEN RunTask answering 200 with a capacity failure and no task
    stubber, _ = ecs
    stubber.add_response(
        "run_task",
        {
            "tasks": [],
            "failures": [
                {
                    "arn": TASK_DEFINITION_ARN,
                    "reason": CAPACITY_REASON,
                }
            ],
        },
    )
    event = load_event("launch_task.json")

    # WHEN / THEN LaunchTask raises the error the ASL retries, named exactly so
    with pytest.raises(errors.CapacityUnavailable, match="Capacity is unavailable") as raised:
        app.lambda_handler(event, lambda_context)
    assert type(raised.value).__name__ == "CapacityUnavailable"


def test_throttling_raises_launch_throttled(ecs: Any, lambda_context: Any) -> None:
    stubber, _ = ecs
    stubber.add_client_error(
        "run_task", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )
    with pytest.raises(errors.LaunchThrottled, match="Rate exceeded"):
        app.lambda_handler(load_event("launch_task.json"), lambda_context)


@pytest.mark.parametrize(
    "failure",
    [
        {"kind": "failures", "reason": "RESOURCE:ENI"},
        {
            "kind": "error",
            "code": "InvalidParameterException",
            "message": "No Container Instances were found",
        },
        {
            "kind": "error",
            "code": "AccessDeniedException",
            "message": "not authorized to perform ecs:RunTask",
        },
    ],
)
def test_other_failures_raise_launch_failed(ecs: Any, lambda_context: Any, failure: dict[str, str]) -> None:
    stubber, _ = ecs
    if failure["kind"] == "failures":
        stubber.add_response("run_task", {"tasks": [], "failures": [{"reason": failure["reason"]}]})
    else:
        stubber.add_client_error(
            "run_task", service_error_code=failure["code"], service_message=failure["message"]
        )
    with pytest.raises(errors.LaunchFailed):
        app.lambda_handler(load_event("launch_task.json"), lambda_context)


def test_attempts_exhausted_before_any_runtask(ecs: Any, lambda_context: Any) -> None:
    # GIVEN an item that already used MAX_ATTEMPTS (4) launches
    event = load_event("launch_task.json")
    event["state"].update(attempt=4, spot_interruptions=4, reason="Spot interruption")

    # WHEN / THEN AttemptsExhausted, and RunTask is never called
    with pytest.raises(errors.AttemptsExhausted, match="4 of 4 attempts"):
        app.lambda_handler(event, lambda_context)


def test_an_item_too_large_for_the_overrides_is_passed_by_index(ecs: Any, lambda_context: Any) -> None:
    # GIVEN a sweep item whose params make the overrides larger than ECS's 8 KiB limit
    stubber, requests = ecs
    stubber.add_response("run_task", started())
    event = load_event("launch_task.json")
    index = event["state"]["item"]["index"]
    event["state"]["item"] = {"index": index, "params": {"blob": "x" * OVERRIDES_LIMIT}}

    # WHEN LaunchTask runs
    app.lambda_handler(event, lambda_context)

    # THEN ITEM is left out (the worker reads items.json) and the overrides fit
    env = environment(requests[0])
    assert "ITEM" not in env and env["ITEM_INDEX"] == "3"
    assert len(json.dumps(requests[0]["overrides"])) < OVERRIDES_LIMIT


def test_error_class_names_are_the_ones_the_state_machine_matches() -> None:
    # GIVEN the state machine the template deploys
    definition = json.loads(
        (Path(__file__).resolve().parents[2] / "statemachine" / "job.asl.json").read_text()
    )
    names: set[str] = set()

    def collect(states: dict[str, Any]) -> None:
        for state in states.values():
            for rule in state.get("Retry", []) + state.get("Catch", []):
                names.update(name for name in rule["ErrorEquals"] if "." not in name)
            if "ItemProcessor" in state:
                collect(state["ItemProcessor"]["States"])

    collect(definition["States"])

    # THEN every custom error it retries or catches is an exception class of that exact name
    assert names
    for name in names:
        assert getattr(errors, name).__name__ == name


def _put_descriptor(event: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    state = event["state"]
    descriptor = {
        "job_id": state["job_id"],
        "input": {"bucket": state["bucket"], "key": "input/sales.csv", "size": 10},
        "processor": "csv-profile",
        "params": params,
        "item_count": 8,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3 = factory.s3()
    s3.create_bucket(Bucket=state["bucket"])
    s3.put_object(
        Bucket=state["bucket"], Key=layout.descriptor_key(state["job_id"]), Body=json.dumps(descriptor)
    )
    return descriptor


def test_the_job_descriptor_travels_with_the_task(ecs: Any, lambda_context: Any) -> None:
    # GIVEN an item of a job whose descriptor StartJob wrote
    stubber, requests = ecs
    stubber.add_response("run_task", started())
    event = load_event("launch_task.json")
    descriptor = _put_descriptor(event, {"delimiter": ";"})

    # WHEN LaunchTask runs
    app.lambda_handler(event, lambda_context)

    # THEN the worker gets the descriptor in JOB (it need not read job.json) next to its ITEM
    env = environment(requests[0])
    assert json.loads(env["JOB"]) == descriptor
    assert json.loads(env["ITEM"])["index"] == 3


def test_a_descriptor_too_large_for_the_overrides_is_left_to_the_worker(
    ecs: Any, lambda_context: Any
) -> None:
    # GIVEN a job whose params alone exceed ECS's 8 KiB overrides limit
    stubber, requests = ecs
    stubber.add_response("run_task", started())
    event = load_event("launch_task.json")
    _put_descriptor(event, {"notes": "x" * OVERRIDES_LIMIT})

    # WHEN LaunchTask runs
    app.lambda_handler(event, lambda_context)

    # THEN the overrides stay within the limit: ITEM is kept, JOB is left out (the worker reads job.json)
    request = requests[0]
    assert len(json.dumps(request["overrides"])) <= OVERRIDES_LIMIT
    env = environment(request)
    assert "JOB" not in env and "ITEM" in env


# -------------------------------------------------------------------- network: the template's choice
NETWORK_VARIABLES = ("SUBNET_IDS", "SECURITY_GROUP_IDS", "ASSIGN_PUBLIC_IP")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        # your own public subnets without NAT: the task needs a public IP to pull its image
        (
            {"SubnetIds": "subnet-a,subnet-b", "SecurityGroupIds": "sg-0", "AssignPublicIp": "ENABLED"},
            {"subnets": ["subnet-a", "subnet-b"], "securityGroups": ["sg-0"], "assignPublicIp": "ENABLED"},
        ),
        # your own private subnets (NAT or endpoints): no public IP, as before
        (
            {"SubnetIds": "subnet-0prv", "SecurityGroupIds": "sg-0"},
            {"subnets": ["subnet-0prv"], "securityGroups": ["sg-0"], "assignPublicIp": "DISABLED"},
        ),
        # the VPC the stack creates (public subnets, no NAT) always assigns one
        (
            {"AssignPublicIp": "DISABLED"},
            {
                "subnets": ["subnet-local-publicsubneta", "subnet-local-publicsubnetb"],
                "securityGroups": ["securitygroup-local-workersecuritygroup"],
                "assignPublicIp": "ENABLED",
            },
        ),
    ],
)
def test_run_task_assigns_a_public_ip_as_the_stack_parameters_say(
    ecs: Any,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    parameters: dict[str, str],
    expected: dict[str, Any],
) -> None:
    # GIVEN LaunchTask's network variables as template.yaml resolves them for these parameters
    from spotmap.template import load_stack
    from tests.conftest import ROOT
    from tests.unit.conftest import reset_handler_settings

    environment_of_launch = load_stack(Path(ROOT), parameters).functions["LaunchTaskFunction"].environment
    for name in NETWORK_VARIABLES:
        monkeypatch.setenv(name, environment_of_launch[name])
    reset_handler_settings()
    stubber, requests = ecs
    stubber.add_response("run_task", started())

    # WHEN LaunchTask runs
    app.lambda_handler(load_event("launch_task.json"), lambda_context)

    # THEN RunTask's awsvpcConfiguration carries the subnets, groups and public IP setting
    assert requests[0]["networkConfiguration"] == {"awsvpcConfiguration": expected}


def test_a_public_ip_setting_cloudformation_would_refuse_is_refused() -> None:
    # GIVEN AssignPublicIp outside its AllowedValues
    from spotmap.template import TemplateError, load_stack
    from tests.conftest import ROOT

    # WHEN the stack is resolved THEN it is refused as CloudFormation refuses it
    with pytest.raises(TemplateError, match="Parameter 'AssignPublicIp' must be one of AllowedValues"):
        load_stack(Path(ROOT), {"SubnetIds": "subnet-0pub1", "AssignPublicIp": "yes"})


def test_every_launch_leaves_a_record_a_summary_can_count_and_cost(
    ecs: Any, s3: Any, lambda_context: Any
) -> None:
    # GIVEN an item's first launch, RunTask answering with the task's size and creation time
    stubber, _ = ecs
    response = started()
    response["tasks"][0].update({"cpu": "1024", "memory": "2048", "createdAt": "2026-11-23T10:00:00Z"})
    stubber.add_response("run_task", response)
    event = load_event("launch_task.json")

    # WHEN LaunchTask runs
    app.lambda_handler(event, lambda_context)

    # THEN jobs/<id>/attempts/3/attempt-1.json says what was launched, where and when
    key = layout.attempt_key(event["state"]["job_id"], 3, 1)
    record = json.loads(s3.get_object(Bucket=event["state"]["bucket"], Key=key)["Body"].read())
    assert record["capacity"] == "FARGATE_SPOT" and record["task_arn"] == TASK_ARN
    assert record["vcpu"] == 1.0 and record["gb"] == 2.0
    assert record["launched_at"].startswith("2026-11-23T10:00:00")


def test_a_launch_and_wait_retried_with_a_new_token_is_a_launch_of_its_own(
    ecs: Any, s3: Any, lambda_context: Any
) -> None:
    # GIVEN a LaunchAndWait try that started the item's task, then failed (e.g. its Lambda timed out)
    stubber, requests = ecs
    first_arn, second_arn = TASK_ARN, TASK_ARN.replace("feedface", "c0ffee00")
    stubber.add_response("run_task", started(first_arn))
    stubber.add_response("run_task", started(first_arn))
    stubber.add_response("run_task", started(second_arn))
    event = load_event("launch_task.json")
    app.lambda_handler({**event, "task_token": "token-of-the-first-try"}, lambda_context)

    # WHEN the step is retried with the same token, then with a new one
    app.lambda_handler({**event, "task_token": "token-of-the-first-try", "retry_count": 1}, lambda_context)
    app.lambda_handler({**event, "task_token": "token-of-the-retry", "retry_count": 2}, lambda_context)

    # THEN the same token is the same request (RunTask's client token returns the task it started:
    # ECS answers ConflictException to a client token reused with other parameters), and a new token is
    # a launch of its own, carrying that token
    first, same, other = requests
    assert same == first
    assert other["clientToken"] != first["clientToken"]
    assert environment(other)["TASK_TOKEN"] == "token-of-the-retry"
