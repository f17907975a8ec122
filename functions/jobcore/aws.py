"""boto3 clients behind one cached factory.

Clients are created on first use (not at import, so a test can start moto first) and then reused for
the life of the Lambda instance. boto3 itself honours AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>,
which is how the local cloud points them at moto. Tests replace a client by calling `reset()` after
starting moto, or by attaching a botocore Stubber to the client the factory returns.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# ECS error codes that mean "try again later": throttling (the SDK's names for it across APIs), and ECS's
# own transient failures, which are as safe to retry (RunTask's clientToken dedups a launch).
THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)
TRANSIENT_CODES = frozenset({"ServerException", "ServiceUnavailable", "InternalFailure"})

# RunTask failures are retried by the state machine (jittered backoff, then on-demand), so the SDK must
# not retry them a second time underneath.
_SINGLE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})
_STANDARD = Config(retries={"max_attempts": 5, "mode": "standard"})
# Summaries fetch many small objects concurrently; the default pool (10) would serialise them.
_WIDE_POOL = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)


@functools.cache
def s3() -> Any:
    return boto3.client("s3", config=_WIDE_POOL)


@functools.cache
def ecs() -> Any:
    """ECS with the SDK's usual retries (DescribeTasks, StopTask, ListTasks)."""
    return boto3.client("ecs", config=_STANDARD)


@functools.cache
def ecs_single_attempt() -> Any:
    """ECS for RunTask: one attempt, the state machine owns backoff."""
    return boto3.client("ecs", config=_SINGLE_ATTEMPT)


@functools.cache
def stepfunctions() -> Any:
    return boto3.client("stepfunctions", config=_STANDARD)


@functools.cache
def sns() -> Any:
    return boto3.client("sns", config=_STANDARD)


@functools.cache
def service_quotas() -> Any:
    return boto3.client("service-quotas", config=_STANDARD)


def reset() -> None:
    """Forget every cached client (tests call this after starting or stopping moto)."""
    for factory in (s3, ecs, ecs_single_attempt, stepfunctions, sns, service_quotas):
        factory.cache_clear()
