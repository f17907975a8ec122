"""The AWS services' events onto the local EventBridge, as AWS sends them: S3 "Object Created" for
uploads, ECS "Task State Change" for the local Fargate's tasks, and Step Functions "Execution Status
Change" for moto's executions (which moto itself never emits: a watcher reads them from its backend)."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from spotmap.events import STATUS_CHANGE, TASK_STATE_CHANGE, LocalEventBus, envelope
from spotmap.template import Stack

log = logging.getLogger("spotmap.cloud")

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
MAX_EVENT_INPUT = 248 * 1024  # larger inputs are left out of status events, as AWS does
WATCH_INTERVAL_SECONDS = 0.2


class ServiceEvents:
    """Puts the services' events on `bus` until `stopping` is set (the local cloud shutting down)."""

    def __init__(self, stack: Stack, bus: LocalEventBus, stopping: threading.Event):
        self.stack = stack
        self.bus = bus
        self.stopping = stopping
        self._seen: dict[str, str] = {}  # execution ARN -> the status last sent

    # ------------------------------------------------------------------ S3
    def object_created(self, bucket: str, key: str, reason: str) -> None:
        from moto.s3.models import s3_backends

        try:
            obj = s3_backends[self.stack.account_id]["aws"].get_object(bucket, key)
        except Exception:  # deleted meanwhile
            return
        if obj is None:
            return
        detail = {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,  # verbatim, as moto and (by most accounts) AWS send it
                "size": obj.size,
                "etag": obj.etag.strip('"'),
                **({"version-id": obj.version_id} if obj.version_id and obj.version_id != "null" else {}),
                "sequencer": f"{int(time.time() * 1e6):016X}",
            },
            "request-id": "local",
            "requester": self.stack.account_id,
            "source-ip-address": "127.0.0.1",
            "reason": reason,
        }
        self.bus.put(envelope(self.stack, "aws.s3", "Object Created", detail, [f"arn:aws:s3:::{bucket}"]))

    # ------------------------------------------------------------------ ECS
    def task_state_change(self, detail: dict[str, Any]) -> None:
        if self.stopping.is_set():
            # The local cloud is shutting down and stops its own tasks: no Lambda instance is left to
            # resume an item with their stop events (delivering them only raced the instances' exit).
            return
        self.bus.put(envelope(self.stack, "aws.ecs", TASK_STATE_CHANGE, detail, [detail["taskArn"]]))

    # ------------------------------------------------------------------ Step Functions
    def watch_executions(self) -> None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        backend = stepfunctions_parser_backends[self.stack.account_id][self.stack.region]
        while not self.stopping.wait(WATCH_INTERVAL_SECONDS):
            try:
                executions: list[Any] = [
                    e for sm in list(backend.state_machines) for e in list(sm.executions)
                ]
                for execution in executions:
                    status = str(getattr(execution.exec_status, "value", execution.exec_status))
                    if status == "None" or self._seen.get(execution.exec_arn) == status:
                        continue
                    self._seen[execution.exec_arn] = status
                    self.bus.put(self.status_event(execution, status))
            except Exception:
                log.exception("execution watcher")

    def status_event(self, execution: Any, status: str) -> dict[str, Any]:
        def millis(moment: Any) -> int | None:
            return int(moment.timestamp() * 1000) if moment else None

        raw_input = json.dumps(execution.input_data)
        include_input = len(raw_input) <= MAX_EVENT_INPUT
        output = execution.output if status == "SUCCEEDED" else None
        if output is not None and not isinstance(output, str):
            output = json.dumps(output)
        detail = {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": status,
            "startDate": millis(execution.start_date),
            "stopDate": millis(execution.stop_date) if status in TERMINAL else None,
            "input": raw_input if include_input else None,
            "output": output,
            "inputDetails": {"included": include_input},
            "outputDetails": {"included": output is not None} if status == "SUCCEEDED" else None,
            "error": execution.error if status in TERMINAL else None,
            "cause": execution.cause if status in TERMINAL else None,
        }
        return envelope(self.stack, "aws.states", STATUS_CHANGE, detail, [execution.exec_arn])
