"""Fixtures for the Lambda functions' unit tests: moto started before any client, the client factory
reset around every test, each function's environment, and a Lambda context."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.stub import Stubber

# Powertools reads these when a handler module is imported: no X-Ray daemon, a metrics namespace.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "spotmap-test")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "spotmap-test")

BUCKET = "spotmap-jobbucket"  # the bucket the events/ files name
ACCOUNT = "123456789012"
STATE_MACHINE_NAME = "spotmap-job"
STATE_MACHINE_ARN = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{STATE_MACHINE_NAME}"
CLUSTER_ARN = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/spotmap-WorkerCluster"
TASK_DEFINITION_ARN = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/spotmap-worker:1"
TASK_ARN = f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/spotmap-WorkerCluster/feedfacefeedfacefeedfacefeedface"
# RunTask's failure reason when Fargate Spot has no capacity
CAPACITY_REASON = (
    "Capacity is unavailable at this time. Please try again later or in a different availability zone"
)
HANDLER_MODULES = (
    "start_job.app",
    "launch_task.app",
    "poll_task.app",
    "record_failure.app",
    "evaluate_job.app",
    "summarize.app",
    "stop_job_tasks.app",
    "reconcile.app",
    "task_stopped.app",
)

FUNCTION_ENV = {
    "JOB_BUCKET": BUCKET,
    "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
    "SHARD_SIZE_MB": "64",
    "MAX_CONCURRENCY": "100",
    "PROCESSORS": "csv-profile,command,noop",
    "CLUSTER_ARN": CLUSTER_ARN,
    "TASK_DEFINITION_ARN": TASK_DEFINITION_ARN,
    "CONTAINER_NAME": "worker",
    "SUBNET_IDS": "subnet-0aaa,subnet-0bbb",
    "SECURITY_GROUP_IDS": "sg-0ccc",
    "ASSIGN_PUBLIC_IP": "ENABLED",
    "MAX_ATTEMPTS": "4",
    "SPOT_ATTEMPTS_BEFORE_ON_DEMAND": "2",
    "CAPACITY_RETRIES_BEFORE_ON_DEMAND": "3",
    "POLL_MIN_SECONDS": "10",
    "POLL_MAX_SECONDS": "300",
    "ITEM_TIMEOUT_MINUTES": "240",
    "TASK_LOG_GROUP": "/spotmap/spotmap/worker",
    "TASK_LOG_STREAM_PREFIX": "spotmap",
    "TOLERATED_FAILURE_PERCENTAGE": "0",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
}


def reset_handler_settings() -> None:
    for name in HANDLER_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            module.settings.cache_clear()


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Every variable the template gives the functions (tests override single ones)."""
    monkeypatch.delenv("LOCAL_TASK_LOG_DIR", raising=False)
    monkeypatch.delenv("SPOTMAP_PRICES", raising=False)
    for name, value in FUNCTION_ENV.items():
        monkeypatch.setenv(name, value)
    reset_handler_settings()
    yield dict(FUNCTION_ENV)
    reset_handler_settings()


@pytest.fixture
def aws(aws_credentials: None, function_env: dict[str, str]) -> Iterator[None]:
    """moto for every service (fresh state per test) and an empty polling cache.

    The factory's clients are kept across tests: moto hooks every botocore client created after it
    is imported, and creating clients is the slow part of a test (~0.1 s each)."""
    from moto import mock_aws

    from jobcore import launching, wait_policy

    wait_policy.clear_cache()
    launching.clear_descriptor_cache()
    with mock_aws():
        yield
    wait_policy.clear_cache()
    launching.clear_descriptor_cache()


@pytest.fixture
def s3(aws: None) -> Any:
    """The factory's S3 client, with the job bucket (versioned, as the template creates it)."""
    from jobcore import aws as factory

    client = factory.s3()
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    return client


@pytest.fixture
def sfn(aws: None) -> Any:
    """The factory's Step Functions client, with the job state machine (moto does not run it)."""
    from jobcore import aws as factory

    client = factory.stepfunctions()
    client.create_state_machine(
        name=STATE_MACHINE_NAME,
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/spotmap-states",
    )
    return client


@dataclass
class FakeLambdaContext:
    function_name: str = "spotmap-test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:spotmap-test-function"
    aws_request_id: str = "c0ffee00-0000-4000-8000-000000000000"
    log_group_name: str = "/aws/lambda/spotmap-test-function"
    log_stream_name: str = "2026/11/23/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def ecs(aws: None) -> Iterator[tuple[Stubber, list[dict[str, Any]]]]:
    """The launch client, stubbed (moto's ECS cannot place Fargate capacity-provider tasks), with the
    RunTask requests it received."""
    from jobcore import aws as factory

    client = factory.ecs_single_attempt()
    requests: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        requests.append(params)

    client.meta.events.register("provide-client-params.ecs.RunTask", capture)
    with Stubber(client) as stubber:
        yield stubber, requests
        stubber.assert_no_pending_responses()
    client.meta.events.unregister("provide-client-params.ecs.RunTask", capture)
