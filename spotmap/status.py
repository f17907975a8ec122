"""`spotmap status JOB_ID`: a job's progress, in AWS or on the local cloud, from what the stack has.

In AWS (no --endpoint-url) the default credentials and region are used, and the stack (`--stack`,
default: samconfig.toml's stack_name) gives the bucket and the state machine through its
CloudFormation outputs (JobBucketName, JobStateMachineArn). On the local cloud (`--endpoint-url`) they
come from template.yaml as `spotmap local serve` resolves it, and the calls are the admin's.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from spotmap.progress import CLOSED, MIN_READ_INTERVAL_SECONDS, Progress, ProgressDisplay, ProgressReader

SUMMARY_GRACE_SECONDS = 60.0  # after the execution closes, Summarize writes the summary within seconds
BUCKET_OUTPUT = "JobBucketName"
STATE_MACHINE_OUTPUT = "JobStateMachineArn"


class StackNotFound(ValueError):
    """The stack, or the outputs the status command needs, does not exist."""


@dataclass(frozen=True)
class Target:
    s3: Any
    sfn: Any
    bucket: str
    state_machine_arn: str
    region: str


def samconfig_stack(root: Path, environment: str = "default") -> tuple[str | None, str | None]:
    """(stack_name, region) of a samconfig.toml environment's global parameters."""
    path = root / "samconfig.toml"
    if not path.exists():
        return None, None
    parameters = tomllib.loads(path.read_text(encoding="utf-8")).get(environment, {})
    found = parameters.get("global", {}).get("parameters", {})
    return found.get("stack_name"), found.get("region")


def aws_target(stack_name: str, region: str | None, fallback_region: str = "us-east-1") -> Target:
    """Clients with the default credentials and region (`fallback_region` when none is configured,
    e.g. samconfig.toml's); bucket and state machine from the stack's outputs."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.Session(region_name=region) if region else boto3.Session()
    if session.region_name is None:
        session = boto3.Session(region_name=fallback_region)
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise StackNotFound(f"stack {stack_name}: {error.response['Error']['Message']}") from None
    except BotoCoreError as error:  # no credentials, no endpoint
        raise StackNotFound(f"stack {stack_name}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    missing = [name for name in (BUCKET_OUTPUT, STATE_MACHINE_OUTPUT) if name not in outputs]
    if missing:
        raise StackNotFound(f"stack {stack_name} has no output {', '.join(missing)}")
    return Target(
        session.client("s3"),
        session.client("stepfunctions"),
        outputs[BUCKET_OUTPUT],
        outputs[STATE_MACHINE_OUTPUT],
        session.region_name or "us-east-1",
    )


def local_target(endpoint: str, root: Path) -> Target:
    """The admin's clients for the local cloud at `endpoint`, with few retries: a local cloud that is
    not running is reported at once rather than after the SDK's backoff."""
    import boto3
    from botocore.config import Config

    from spotmap.cloud import CREDENTIALS
    from spotmap.template import load_stack

    stack = load_stack(root)

    def client(service: str) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint,
            region_name=stack.region,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5),
        )

    return Target(
        client("s3"),
        client("stepfunctions"),
        stack.bucket,
        stack.state_machine_arn,
        stack.region,
    )


def show_status(
    target: Target,
    job_id: str,
    *,
    watch: bool,
    as_json: bool,
    interval: float,
    timeout: float,
    out: TextIO | None = None,
) -> int:
    """Print the job's progress once, or (`watch`) until it is closed and summarised, bounded by
    `timeout`. 0: found and not failed; 1: unknown job, or closed other than SUCCEEDED; 3: timed out."""
    from botocore.exceptions import BotoCoreError, ClientError

    out = out or sys.stdout  # looked up now: a default bound at import would keep a replaced stream
    try:
        return _show(
            target, job_id, watch=watch, as_json=as_json, interval=interval, timeout=timeout, out=out
        )
    except (BotoCoreError, ClientError) as error:
        print(f"spotmap: cannot read the status of {job_id}: {error}", file=sys.stderr)
        return 1


def _show(
    target: Target, job_id: str, *, watch: bool, as_json: bool, interval: float, timeout: float, out: TextIO
) -> int:
    interval = max(interval, MIN_READ_INTERVAL_SECONDS)
    reader = ProgressReader(
        target.s3, target.sfn, target.bucket, target.state_machine_arn, target.region, min_interval=interval
    )
    display = None if as_json else ProgressDisplay(out, plain_interval=interval)
    deadline = time.monotonic() + timeout
    closed_at: float | None = None
    while True:
        progress = reader.read(job_id)
        done = (
            not watch
            or (progress.closed and progress.summary_key is not None)
            or (closed_at is not None and time.monotonic() - closed_at > SUMMARY_GRACE_SECONDS)
        )
        if progress.closed and closed_at is None:
            closed_at = time.monotonic()
        if as_json:
            if watch or done:
                print(json.dumps(progress.to_json()), file=out, flush=True)
        elif display is not None:
            display.show([progress], final=done)
        if done:
            return _exit_code(progress, out if not as_json else None)
        if time.monotonic() > deadline:
            print(f"spotmap: job {job_id} still {progress.status} after {timeout:.0f} s", file=sys.stderr)
            return 3
        time.sleep(1.0 if display is not None and display.terminal else interval)


def _exit_code(progress: Progress, out: TextIO | None) -> int:
    if progress.status == "NOT_FOUND":
        print(f"spotmap: no job {progress.job_id} (no such execution)", file=sys.stderr)
        return 1
    if out is not None and progress.summary_key:
        print(f"  summary: {progress.summary_key}", file=out)
    return 1 if progress.closed and progress.status != "SUCCEEDED" else 0


__all__ = [
    "CLOSED",
    "StackNotFound",
    "Target",
    "aws_target",
    "local_target",
    "samconfig_stack",
    "show_status",
]
