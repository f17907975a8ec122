"""What every Lambda handler shares: one Logger, Tracer and Metrics, the decorators a handler stacks, its
settings read once, and the log keys that name the job (and item) an invocation works on.

A handler module is then only parse, call, return (the Lambda handler cookbook's
`handlers/utils/observability.py`; Powertools' examples). Powertools reads the service name, the metrics
namespace and the log level from the template's environment (`POWERTOOLS_SERVICE_NAME` per function,
the rest in `Globals`), so the same objects serve every function: each Lambda instance runs one.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import envelopes, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from jobcore.config import Settings
from jobcore.models import ItemState

logger = Logger()
tracer = Tracer()
metrics = Metrics()

S = TypeVar("S", bound=Settings)
E = TypeVar("E", bound="JobEvent")
S_co = TypeVar("S_co", bound=Settings, covariant=True)
R = TypeVar("R")
Handler = Callable[[Any, LambdaContext], R]


class SettingsLoader(Protocol[S_co]):
    def __call__(self) -> S_co: ...

    def cache_clear(self) -> None: ...


def handler(function: Handler[R]) -> Handler[R]:
    """A Lambda handler with Powertools' three decorators: the Lambda context in every log line, the
    invocation traced, and the metrics it added flushed (as one EMF line) when it returns or raises."""
    traced = tracer.capture_lambda_handler(function)
    flushed: Handler[R] = metrics.log_metrics(traced)
    contextual: Handler[R] = logger.inject_lambda_context(flushed)
    return contextual


class JobEvent(Protocol):
    """An event's typed detail that says which job it is about."""

    @property
    def job_id(self) -> str: ...


def eventbridge_handler(
    detail: type[E],
) -> Callable[[Callable[[E, LambdaContext], R]], Handler[R]]:
    """A handler of EventBridge events (e.g. "Step Functions Execution Status Change"): Powertools'
    event_parser validates the event with its EventBridge envelope into the typed `detail` model, a bad
    event failing the invocation with a ValidationError that names the field, and every log line of
    the invocation names the detail's job."""

    def decorate(function: Callable[[E, LambdaContext], R]) -> Handler[R]:
        @functools.wraps(function)
        def for_job(event: E, context: LambdaContext) -> R:
            log_job(event.job_id)
            return function(event, context)

        parse = event_parser(model=detail, envelope=envelopes.EventBridgeEnvelope)
        parsed: Handler[R] = parse(for_job)
        return handler(parsed)

    return decorate


def settings_loader(settings_class: type[S]) -> SettingsLoader[S]:
    """`settings()`: the function's settings, read from the environment on the first call and kept for
    the life of the Lambda instance (tests call `settings.cache_clear()` after changing the environment).
    A bad environment fails that first invocation with ConfigError naming the variable."""

    @functools.cache
    def settings() -> S:
        return settings_class.from_env()

    return settings


def count(name: str, value: float = 1) -> None:
    """Add `value` to the metric `name` (a count) of this invocation."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def log_job(job_id: str | None) -> None:
    """Every later log line of the invocation names the job."""
    logger.append_keys(job_id=job_id)


def log_item(state: ItemState) -> ItemState:
    """Every later log line of the invocation names the job and the item; returns the state."""
    logger.append_keys(job_id=state.job_id, item_index=state.item.index)
    return state
