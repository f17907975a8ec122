"""Local EventBridge: the template's rules, matched with moto's pattern matcher, delivering to the
local Lambda functions asynchronously (an async invoke is retried twice on a function error)."""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from moto.events.models import EventPattern

from spotmap.lambdas import LocalLambda
from spotmap.template import Rule, Stack

log = logging.getLogger("spotmap.events")

ASYNC_RETRY_DELAYS = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; locally, seconds
STATUS_CHANGE = "Step Functions Execution Status Change"
TASK_STATE_CHANGE = "ECS Task State Change"


def envelope(
    stack: Stack, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": stack.account_id,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": stack.region,
        "resources": resources,
        "detail": detail,
    }


def rate_seconds(expression: str) -> float:
    """Seconds between runs of a `rate(N unit)` schedule."""
    match = re.fullmatch(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not match:
        raise ValueError(f"unsupported schedule expression {expression!r} (use rate(N minutes))")
    unit = match.group(2).rstrip("s")
    return int(match.group(1)) * {"minute": 60, "hour": 3600, "day": 86400}[unit]


class LocalEventBus:
    def __init__(
        self,
        stack: Stack,
        lambdas: LocalLambda,
        drop_status_events: float = 0.0,
        seed: int | None = None,
        drop_task_events: float = 0.0,
        duplicate_task_events: float = 0.0,
    ):
        for name, value in (
            ("drop-status-events", drop_status_events),
            ("drop-task-events", drop_task_events),
            ("duplicate-task-events", duplicate_task_events),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        self.stack = stack
        self.lambdas = lambdas
        self.drop_status_events = drop_status_events
        # ECS task state change events are delivered at least once: lost (--drop-task-events) or
        # delivered twice (--duplicate-task-events), each drawn per event
        self.drop_task_events = drop_task_events
        self.duplicate_task_events = duplicate_task_events
        self.rng = random.Random(seed)
        self._task_rng = random.Random(None if seed is None else f"{seed}/task-events")
        self.rules = [rule for rule in stack.rules if rule.pattern is not None]
        self.schedules = [rule for rule in stack.rules if rule.schedule is not None]
        self._patterns = {rule.name: EventPattern.load(json.dumps(rule.pattern)) for rule in self.rules}
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventbridge")
        self._pending = 0
        self._idle = threading.Condition()
        self._stop = threading.Event()
        self.delivered: list[tuple[str, dict[str, Any]]] = []
        self.failed: list[tuple[str, dict[str, Any], str]] = []
        self.dropped = 0
        self.task_events = {"put": 0, "dropped": 0, "duplicated": 0}

    def put(self, event: dict[str, Any]) -> list[str]:
        """Deliver an event to every matching rule's target; returns the matched rule names."""
        if event["detail-type"] == STATUS_CHANGE and self.rng.random() < self.drop_status_events:
            self.dropped += 1
            log.info("dropped status event of %s (--drop-status-events)", event["detail"].get("name"))
            return []
        copies = 1
        if event["detail-type"] == TASK_STATE_CHANGE:
            with self._idle:
                self.task_events["put"] += 1
                if self._task_rng.random() < self.drop_task_events:
                    self.task_events["dropped"] += 1
                    return []
                if self._task_rng.random() < self.duplicate_task_events:
                    self.task_events["duplicated"] += 1
                    copies = 2
        matched = [rule for rule in self.rules if self._patterns[rule.name].matches_event(event)]  # type: ignore[arg-type]
        for rule in matched:
            for _ in range(copies):  # a duplicate is the same event (same id), delivered again
                self._submit(rule, event)
        return [rule.name for rule in matched]

    def _submit(self, rule: Rule, event: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._pool.submit(self._deliver, rule, event)

    def _deliver(self, rule: Rule, event: dict[str, Any]) -> None:
        try:
            payload = json.dumps(event).encode()
            for attempt, delay in enumerate((0.0, *ASYNC_RETRY_DELAYS)):
                if delay:
                    time.sleep(delay)
                result = self.lambdas.invoke(rule.function, payload)
                if result.function_error is None:
                    self.delivered.append((rule.name, event))
                    return
                log.warning("%s failed (attempt %d): %s", rule.function, attempt + 1, result.payload[:500])
            self.failed.append((rule.name, event, result.payload.decode(errors="replace")))
        except RuntimeError:
            pass  # the local cloud is shutting down
        except Exception:
            log.exception("delivering to %s failed", rule.function)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def run_schedules(self) -> None:
        """Run every scheduled rule's target once now (e.g. the reconciler before `local run` returns)."""
        for rule in self.schedules:
            event = envelope(self.stack, "aws.scheduler", "Scheduled Event", {}, [rule.name])
            self._submit(rule, event)

    def start_scheduler(self) -> None:
        for rule in self.schedules:
            interval = rate_seconds(rule.schedule or "")
            threading.Thread(
                target=self._schedule_loop, args=(rule, interval), daemon=True, name=f"schedule-{rule.name}"
            ).start()

    def _schedule_loop(self, rule: Rule, interval: float) -> None:
        while not self._stop.wait(interval):
            self._submit(rule, envelope(self.stack, "aws.scheduler", "Scheduled Event", {}, [rule.name]))

    def close(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
