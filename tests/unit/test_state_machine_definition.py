"""The state machine the template deploys: statemachine/job.asl.json with the template's
DefinitionSubstitutions. cfn-lint does not look into a definition loaded from `DefinitionUri`, so
these tests do: placeholders vs substitutions, a real ASL parser, timeouts, retries, and the status
strings of the Choice states against `jobcore.models.TaskStatus` (the seed once shipped "FAILLED").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

from jobcore import layout
from jobcore.models import ItemState, TaskStatus
from tools.expand_template import ROOT, expand, load_template

PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
LAMBDA_SERVICE_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def machine(template: dict[str, Any]) -> dict[str, Any]:
    (props,) = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::StateMachine"
    ]
    return dict(props)


@pytest.fixture(scope="module")
def raw_definition(machine: dict[str, Any]) -> str:
    return (ROOT / machine["DefinitionUri"]).read_text(encoding="utf-8")


def fake_value(name: str, value: Any) -> str:
    """What a substitution resolves to in a deployed stack, shaped like the real thing."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"][0]
        return f"arn:aws:lambda:us-east-1:123456789012:function:spotmap-{target}"
    if isinstance(value, dict) and "Ref" in value:
        return f"spotmap-{value['Ref']}"
    return str(value)


@pytest.fixture(scope="module")
def definition(machine: dict[str, Any], raw_definition: str) -> str:
    substitutions = machine.get("DefinitionSubstitutions", {})
    return PLACEHOLDER.sub(
        lambda match: fake_value(match.group(1), substitutions[match.group(1)]), raw_definition
    )


def walk_states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state, including those of Map item processors and Parallel branches."""
    for name, state in states.items():
        yield name, state
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from walk_states(processor["States"])
        for branch in state.get("Branches", []):
            yield from walk_states(branch["States"])


@pytest.fixture(scope="module")
def states(definition: str) -> dict[str, dict[str, Any]]:
    return dict(walk_states(json.loads(definition)["States"]))


def choice_rules(rule: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield rule
    for key in ("And", "Or"):
        for nested in rule.get(key, []):
            yield from choice_rules(nested)
    if "Not" in rule:
        yield from choice_rules(rule["Not"])


# -------------------------------------------------------------------------------------------- tests
def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(
    machine: dict[str, Any], raw_definition: str
) -> None:
    # GIVEN the placeholders of the ASL file and the template's DefinitionSubstitutions
    placeholders = set(PLACEHOLDER.findall(raw_definition))
    substitutions = set(machine.get("DefinitionSubstitutions", {}))
    # THEN they are the same names: nothing is left as "${...}" in AWS, nothing is substituted in vain
    assert placeholders == substitutions
    assert placeholders, "every ARN in the definition must come from the template"


def test_substitutions_name_functions_of_the_template(
    machine: dict[str, Any], template: dict[str, Any]
) -> None:
    # GIVEN every substitution
    for name, value in machine["DefinitionSubstitutions"].items():
        # THEN a function ARN placeholder is the Arn of a function the template defines
        if name.endswith("FunctionArn"):
            target, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", name
            assert template["Resources"][target]["Type"] == "AWS::Serverless::Function", name


def test_the_substituted_definition_is_accepted_by_a_real_asl_parser(definition: str) -> None:
    # GIVEN the definition as deployed (placeholders substituted)
    # WHEN the ASL parser of moto's Step Functions interpreter parses it
    program, _ = AmazonStateLanguageParser.parse(definition)
    # THEN it is a valid program
    assert program is not None


def test_the_template_deploys_this_file_with_these_substitutions(machine: dict[str, Any]) -> None:
    # GIVEN the expanded template
    resource = expand()["Resources"]["JobStateMachine"]["Properties"]
    # THEN CloudFormation receives the definition of the file and the template's substitutions
    assert "DefinitionString" in resource or "DefinitionS3Location" in resource
    assert resource["DefinitionSubstitutions"] == machine["DefinitionSubstitutions"]
    assert machine["DefinitionUri"] == "statemachine/job.asl.json"


def test_choice_on_status_uses_exactly_the_task_statuses(states: dict[str, dict[str, Any]]) -> None:
    # GIVEN every StringEquals comparison on $.status in a Choice state
    compared = {
        rule["StringEquals"]
        for state in states.values()
        if state["Type"] == "Choice"
        for choice in state["Choices"]
        for rule in choice_rules(choice)
        if rule.get("Variable") == "$.status" and "StringEquals" in rule
    }
    # THEN each is a TaskStatus value (no typo can ship), and every TaskStatus is handled
    assert compared == {status.value for status in TaskStatus}


def test_every_task_state_has_a_timeout(states: dict[str, dict[str, Any]]) -> None:
    # GIVEN every Task state, in the parent and in the item processor
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert tasks
    # THEN none can wait forever
    assert [
        name for name, s in tasks.items() if "TimeoutSeconds" not in s and "TimeoutSecondsPath" not in s
    ] == []


def test_every_lambda_task_retries_lambda_service_errors(states: dict[str, dict[str, Any]]) -> None:
    # GIVEN every Task state that invokes a Lambda function
    lambda_tasks = {
        name: state
        for name, state in states.items()
        if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:states:::lambda:invoke")
    }
    assert lambda_tasks
    for name, state in lambda_tasks.items():
        retried = {error for retry in state.get("Retry", []) for error in retry["ErrorEquals"]}
        # THEN transient Lambda service errors are retried (States.ALL covers them too)
        assert "States.ALL" in retried or retried >= LAMBDA_SERVICE_ERRORS, name
        # THEN retries back off
        assert all(retry.get("BackoffRate", 1) > 1 for retry in state.get("Retry", [])), name


def test_every_transition_names_an_existing_state(definition: str) -> None:
    # GIVEN each scope of states (the parent, each item processor)
    def check(scope: dict[str, Any]) -> None:
        names = set(scope["States"])
        assert scope["StartAt"] in names
        for name, state in scope["States"].items():
            targets = [state.get("Next"), state.get("Default")]
            targets += [choice.get("Next") for choice in state.get("Choices", [])]
            targets += [catch.get("Next") for catch in state.get("Catch", [])]
            # THEN every Next/Default/Catch target exists in the same scope
            assert {t for t in targets if t} <= names, name
            processor = state.get("ItemProcessor") or state.get("Iterator")
            if processor:
                check(processor)

    check(json.loads(definition))


def test_the_result_writer_writes_where_the_layout_says(states: dict[str, dict[str, Any]]) -> None:
    # GIVEN the ResultWriter of the Distributed Map
    writer = states["ProcessItems"]["ResultWriter"]
    assert writer["Resource"] == "arn:aws:states:::s3:putObject"
    parameters = writer["Parameters"]
    # THEN it writes to the job's bucket, under the prefix jobcore.layout names for the job (AWS puts
    # "/<map-run-id>/" after the prefix)
    assert parameters["Bucket.$"] == "$.bucket"
    match = re.fullmatch(r"States\.Format\('([^']*)', \$\.job_id\)", parameters["Prefix.$"])
    assert match, parameters["Prefix.$"]
    assert match.group(1).replace("{}", "job-1") + "/" == layout.map_results_prefix("job-1")
    # and the Map's own result (the files' location) does not replace the execution's state
    assert states["ProcessItems"]["ResultPath"] is None


def test_a_succeeded_child_outputs_the_outcome_record_poll_task_sets(
    states: dict[str, dict[str, Any]],
) -> None:
    # GIVEN the state a succeeded child ends in
    output_path = states["ItemSucceeded"]["OutputPath"]
    # THEN its output is the ItemState field that PollTask fills with the item's outcome record
    assert output_path.startswith("$.")
    assert output_path[2:] in ItemState.model_fields
    assert output_path == "$.outcome"


def test_throttled_launches_retry_by_time_not_by_count() -> None:
    # GIVEN the Launch state's retriers (Fargate's launch bucket refills 20 per second: with hundreds of
    # items launching at once a jittered retry can find it empty many times in a row; a 10,000-item
    # local run once lost 12 items "after 14 retries")
    definition = json.loads((ROOT / "statemachine" / "job.asl.json").read_text())
    launch = definition["States"]["ProcessItems"]["ItemProcessor"]["States"]["Launch"]
    retriers = {tuple(retrier["ErrorEquals"]): retrier for retrier in launch["Retry"]}

    # THEN throttling is retried with no practical count limit: Step Functions' largest MaxAttempts
    # ("MaxAttempts has a maximum value of 99999999", concepts-error-handling.html); LaunchTask ends the
    # wait itself at the item's timeout (LaunchTimedOut, which no retrier matches)
    throttled = retriers[("LaunchThrottled",)]
    assert throttled["MaxAttempts"] == 99_999_999
    assert not any("LaunchTimedOut" in names for names in retriers)
    # AND it is paced by time: full jitter, the wait bounded so a refilled bucket is used soon, and long
    # enough that the child's 25,000-event history lasts (~3 events a try) through a default 240-minute
    # ItemTimeoutMinutes of uninterrupted throttling
    assert throttled["JitterStrategy"] == "FULL"
    assert 10 <= throttled["MaxDelaySeconds"] <= 60
    mean_wait = throttled["MaxDelaySeconds"] / 2
    assert 240 * 60 / mean_wait * 3 < 25_000
    # AND capacity shortages keep a count: after CapacityRetriesBeforeOnDemand the launch is on-demand
    assert retriers[("CapacityUnavailable",)]["MaxAttempts"] == 8


def test_the_waiting_launch_retries_as_launch_does_and_falls_back_to_polling(
    states: dict[str, dict[str, Any]],
) -> None:
    # GIVEN the two ways an item's task is launched: polling (Launch) and waiting for its stop event
    launch, waiting = states["Launch"], states["LaunchAndWait"]
    assert waiting["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert waiting["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    # THEN the waiting launch retries what Launch retries, except States.Timeout: its timeout is the
    # wait for the event, and retrying it would start a second task
    expected = [
        {**retry, "ErrorEquals": [e for e in retry["ErrorEquals"] if e != "States.Timeout"]}
        for retry in launch["Retry"]
    ]
    assert waiting["Retry"] == expected
    # AND a heartbeat timeout (no event within a period) hands the item to Poll, the backstop;
    # anything else is recorded as the item's failure
    first, rest = waiting["Catch"]
    assert set(first["ErrorEquals"]) == {"States.HeartbeatTimeout", "States.Timeout"}
    assert (first["Next"], first["ResultPath"]) == ("Poll", "$.wait_error")
    assert (rest["ErrorEquals"], rest["Next"]) == (["States.ALL"], "RecordFailure")
    assert "wait_error" in ItemState.model_fields
    # AND it waits at most one heartbeat period of silence, the period the ItemSelector passes
    assert waiting["HeartbeatSecondsPath"] == "$.heartbeat_seconds"
    assert "OutputPath" not in waiting  # the output is what TaskStopped sends, the item state itself


def test_items_choose_events_or_polls_from_the_task_events_parameter(
    states: dict[str, dict[str, Any]], machine: dict[str, Any], template: dict[str, Any]
) -> None:
    # GIVEN the Map's ItemSelector and the item's first state
    selector = states["ProcessItems"]["ItemSelector"]
    assert states["ProcessItems"]["ItemProcessor"]["StartAt"] == "ChooseCompletion"
    # THEN the flag and the heartbeat period come from template parameters
    assert machine["DefinitionSubstitutions"]["TaskEvents"] == {"Ref": "TaskEvents"}
    assert machine["DefinitionSubstitutions"]["TaskHeartbeatSeconds"] == {"Ref": "TaskHeartbeatSeconds"}
    assert template["Parameters"]["TaskEvents"]["AllowedValues"] == ["Enabled", "Disabled"]
    assert template["Parameters"]["TaskEvents"]["Default"] == "Enabled"
    assert set(selector) >= {"task_events", "heartbeat_seconds.$"}
    # AND Enabled waits for the event, anything else polls, on the first launch and after a reclaim
    (rule,) = states["ChooseCompletion"]["Choices"]
    assert (rule["Variable"], rule["StringEquals"], rule["Next"]) == (
        "$.task_events",
        "Enabled",
        "LaunchAndWait",
    )
    assert states["ChooseCompletion"]["Default"] == "Launch"
    relaunch = [
        choice["Next"] for choice in states["CheckTask"]["Choices"] if "INTERRUPTED" in json.dumps(choice)
    ]
    assert relaunch == ["LaunchAndWait", "Launch"]


def test_a_timed_out_launch_or_poll_is_retried() -> None:
    # GIVEN the Launch and Poll states (both idempotent: RunTask's clientToken, DescribeTasks a read)
    definition = json.loads((ROOT / "statemachine" / "job.asl.json").read_text())
    states = definition["States"]["ProcessItems"]["ItemProcessor"]["States"]
    for name in ("Launch", "Poll"):
        retried = {error for retrier in states[name]["Retry"] for error in retrier["ErrorEquals"]}
        # THEN a Lambda invocation that timed out (errorType Sandbox.Timedout, as Lambda reports it:
        # https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html) is retried, not
        # the item's failure: on a loaded machine (or a slow S3 call) it is no fault of the item
        assert "Sandbox.Timedout" in retried, name
