"""The status-change handlers (Summarize, StopJobTasks) take their event through Powertools' event_parser
and EventBridge envelope: a typed detail whose status is jobcore.models.ExecutionStatus, and a bad event
fails the invocation with a validation error that names what is wrong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from jobcore.executions import ExecutionStatusChange
from jobcore.models import ExecutionStatus
from stop_job_tasks import app as stop_job_tasks
from summarize import app as summarize
from tests.conftest import load_event

HANDLERS = {"summarize": summarize.lambda_handler, "stop_job_tasks": stop_job_tasks.lambda_handler}


def _without(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: event.pop(field)


def _detail(**changes: Any) -> Callable[[dict[str, Any]], None]:
    return lambda event: event["detail"].update(changes)


def _without_detail(field: str) -> Callable[[dict[str, Any]], None]:
    return lambda event: event["detail"].pop(field)


@pytest.mark.parametrize("handler_name", sorted(HANDLERS))
@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (_detail(status="DONE"), "status"),  # not a Step Functions execution status
        (_without_detail("name"), "name"),
        (_without("detail-type"), "detail-type"),  # not an EventBridge event
        (_without("detail"), "detail"),
    ],
    ids=["unknown-status", "no-name", "no-detail-type", "no-detail"],
)
def test_a_bad_status_change_event_fails_naming_what_is_wrong(
    aws: None, lambda_context: Any, handler_name: str, spoil: Callable[[dict[str, Any]], None], named: str
) -> None:
    # GIVEN an aborted job's status-change event with one thing wrong
    event = load_event("stop_job_tasks_aborted.json")
    spoil(event)

    # WHEN the handler receives it THEN the invocation fails with a validation error naming the field
    with pytest.raises(ValidationError) as raised:
        HANDLERS[handler_name](event, lambda_context)
    assert named in {str(part) for problem in raised.value.errors() for part in problem["loc"]}


def test_the_detail_is_typed() -> None:
    # GIVEN a status-change event's detail WHEN parsed THEN its status is the enum the state machine uses
    change = ExecutionStatusChange.model_validate(load_event("summarize_timed_out.json")["detail"])
    assert change.status is ExecutionStatus.TIMED_OUT and change.closed
    assert change.execution()["status"] == "TIMED_OUT"
