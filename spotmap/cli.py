"""`spotmap` command line: run jobs on the local cloud, serve it, abort a job, invoke a function."""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from spotmap.cloud import CloudOptions, LocalCloud, local_client, log_to_stderr, project_root
from spotmap.containers import DEFAULT_IMAGE, DockerUnavailable
from spotmap.fargate import Faults
from spotmap.jobs import JobAnnouncer, JobRunner, copy_bucket, format_summary
from spotmap.outputs import StateDir, UserError, prepare_out_dir
from spotmap.signals import Stopped, StopSignals
from spotmap.template import TemplateError

DEFAULT_SERVE_PORT = 4566
log = logging.getLogger("spotmap.cli")


def _param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability between 0 and 1, got {text}")
    return value


def _add_cloud_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help="override a template parameter (e.g. MaxConcurrency=2, ShardSizeMB=1)",
    )
    faults = parser.add_argument_group("fault injection")
    faults.add_argument("--seed", type=int, default=None, help="make the injected faults reproducible")
    faults.add_argument(
        "--spot-interruption-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that a Spot task attempt is interrupted (SIGTERM, grace, SIGKILL)",
    )
    faults.add_argument(
        "--spot-interruption-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="reclaims land this many seconds after their task started (default: a random moment of a "
        "typical run), e.g. to rehearse resuming from a checkpoint",
    )
    faults.add_argument(
        "--capacity-failure-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that RunTask on FARGATE_SPOT finds no capacity",
    )
    faults.add_argument(
        "--launch-rate",
        type=float,
        default=20.0,
        metavar="N",
        help="Fargate's task launch bucket refill per second (AWS: 20); excess launches are throttled",
    )
    faults.add_argument(
        "--launch-burst",
        type=int,
        default=100,
        metavar="N",
        help="Fargate's task launch bucket size (AWS: 100); smaller makes throttling certain sooner",
    )
    faults.add_argument(
        "--crash-rate",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that a worker process is killed with SIGKILL (exit 137)",
    )
    faults.add_argument(
        "--drop-status-events",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that a Step Functions status-change event is lost",
    )
    faults.add_argument(
        "--drop-task-events",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that an ECS task state change event is lost (items then complete by a poll)",
    )
    faults.add_argument(
        "--duplicate-task-events",
        type=_rate,
        default=0.0,
        metavar="P",
        help="probability that an ECS task state change event is delivered twice",
    )
    parser.add_argument(
        "--runtime",
        choices=("process", "docker"),
        default="process",
        help="run each Fargate task as an OS process (default, no Docker) or as a container of the worker "
        "image started as the task definition says (user, read-only root, capabilities, volumes)",
    )
    parser.add_argument(
        "--image",
        default=DEFAULT_IMAGE,
        help=f"worker image of --runtime docker (default {DEFAULT_IMAGE}: tools/images/build worker)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="logs and scratch space (default .spotmap); a local cloud that has it to itself starts by "
        "removing the previous run's",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log the local cloud's internals")
    _add_quota_options(parser, "as the local cloud's Service Quotas answer it (default 4000)")


def _add_quota_options(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument(
        "--fargate-spot-vcpu-quota",
        type=float,
        default=None,
        metavar="VCPUS",
        help=f"the account's Fargate Spot vCPU quota (Service Quotas L-36FBB829), {meaning}",
    )
    parser.add_argument(
        "--fargate-on-demand-vcpu-quota",
        type=float,
        default=None,
        metavar="VCPUS",
        help=f"the account's Fargate On-Demand vCPU quota (Service Quotas L-3032A538), {meaning}",
    )


def _options(args: argparse.Namespace, port: int = 0) -> CloudOptions:
    faults = Faults(
        spot_interruption_rate=args.spot_interruption_rate,
        capacity_failure_rate=args.capacity_failure_rate,
        crash_rate=args.crash_rate,
        launch_rate=args.launch_rate,
        launch_burst=args.launch_burst,
        seed=args.seed,
        spot_interruption_after=args.spot_interruption_after,
    )
    return CloudOptions(
        parameters=dict(args.param),
        faults=faults,
        drop_status_events=args.drop_status_events,
        drop_task_events=args.drop_task_events,
        duplicate_task_events=args.duplicate_task_events,
        seed=args.seed,
        port=port,
        state_dir=args.state_dir,
        runtime=args.runtime,
        image=args.image,
        **{
            name: value
            for name in ("fargate_spot_vcpu_quota", "fargate_on_demand_vcpu_quota")
            if (value := getattr(args, name, None)) is not None
        },
    )


def cmd_run(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    for path in files:
        if not path.is_file():
            print(f"spotmap: no such file: {path}", file=sys.stderr)
            return 2
    if args.key and len(files) != 1:
        print("spotmap: --key names the key of a single FILE", file=sys.stderr)
        return 2
    for data in args.data:
        if not data.exists():
            print(f"spotmap: no such file or directory: {data}", file=sys.stderr)
            return 2
    signals: StopSignals = args.stop_signals
    cloud = LocalCloud(options=_options(args))  # checks the template's parameters first
    state = StateDir(cloud.state_dir)
    alone = state.claim()
    if args.out is not None:
        out_dir = args.out
    elif alone:
        out_dir = cloud.state_dir / "out"
    else:  # another local cloud uses this state directory: its copy is not ours to replace
        out_dir = cloud.state_dir / f"out-{os.getpid()}"
    note = prepare_out_dir(out_dir, is_default=args.out is None)
    if note:
        print(f"spotmap: {note}", file=sys.stderr)
    try:
        with signals.deferred():  # a signal while it starts stops it once it has started
            cloud.start()
        runner = JobRunner(cloud, progress=None if args.json else sys.stderr)
        for data in args.data:
            runner.upload_data(data)
        watches = [runner.submit(path, args.key) for path in files]
        summaries = runner.wait(watches, timeout=args.timeout)
        copied = copy_bucket(cloud, out_dir)
    except Stopped as stopped:
        stopped.detail = _stop_detail(cloud)
        raise
    finally:
        with signals.deferred():  # stopping is never cut short: nothing of the cloud may outlive us
            cloud.stop()
        state.release()
    if copied.note(out_dir):
        print(f"spotmap: {copied.note(out_dir)}", file=sys.stderr)
    for watch, summary in zip(watches, summaries, strict=True):
        if not args.json:
            print(format_summary(watch, summary, out_dir))
    if args.json:
        print(json.dumps([summary for summary in summaries if summary is not None]))
    ok = all(summary is not None and summary.get("status") == "SUCCEEDED" for summary in summaries)
    return 0 if ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    options = _options(args, port=args.port)
    options.host = args.host
    options.object_events = args.object_events
    options.notifications_echo = sys.stdout  # what the stack's SNS topic would deliver
    signals: StopSignals = args.stop_signals
    cloud = LocalCloud(options=options)
    state = StateDir(cloud.state_dir)
    state.claim()
    try:
        with signals.deferred():
            cloud.start()
        print(f"spotmap local cloud listening on {cloud.endpoint}")
        print(f"  bucket:        {cloud.stack.bucket}")
        print(f"  state machine: {cloud.stack.state_machine_arn}")
        print(f"  try:  aws --endpoint-url {cloud.endpoint} s3 cp data.csv s3://{cloud.stack.bucket}/input/")
        print(
            f"        (credentials: AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
            f"AWS_DEFAULT_REGION={cloud.stack.region})"
        )
        print(f"  Ctrl-C (or kill {os.getpid()}) stops it and everything it started.", flush=True)
        announcer = JobAnnouncer(cloud, sys.stdout)
        while True:  # until a stop signal: Stopped ends it
            try:
                announcer.poll()
            except (BotoCoreError, ClientError) as error:  # a hiccup of the endpoint: try again
                log.warning("listing jobs failed: %s", error)
            time.sleep(0.5)
    except Stopped as stopped:
        stopped.detail = _stop_detail(cloud)
        raise
    finally:
        with signals.deferred():
            cloud.stop()
        state.release()


def _stop_detail(cloud: LocalCloud) -> str:
    fargate = getattr(cloud, "fargate", None)
    running = len(fargate.running_processes()) if fargate is not None else 0
    return f"stopped the local cloud and its {running} running task(s)"


def _endpoint(args: argparse.Namespace) -> str:
    return args.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{DEFAULT_SERVE_PORT}"


def _require_endpoint(endpoint: str) -> None:
    """Fail fast, in one line, when nothing listens at the endpoint (the SDK would retry for a while and
    then raise a traceback's worth of connection errors)."""
    url = urlsplit(endpoint)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise UserError(f"--endpoint-url {endpoint!r} is not an http(s) URL")
    try:
        port = url.port or (443 if url.scheme == "https" else 80)
        socket.create_connection((url.hostname, port), timeout=3).close()
    except (OSError, ValueError):
        raise UserError(
            f"nothing answers at {endpoint}: start it with `spotmap local serve` "
            "(or name another with --endpoint-url / AWS_ENDPOINT_URL)"
        ) from None


def cmd_abort(args: argparse.Namespace) -> int:
    from botocore.exceptions import ClientError

    from spotmap.template import load_stack

    stack = load_stack(project_root())
    endpoint = _endpoint(args)
    _require_endpoint(endpoint)
    sfn = local_client("stepfunctions", endpoint, stack.region)
    arn = stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{args.job_id}"
    summary = f"s3://{stack.bucket}/summaries/{args.job_id}.json"
    try:
        status = sfn.describe_execution(executionArn=arn)["status"]
        if status != "RUNNING":
            print(
                f"spotmap: job {args.job_id} already ended {status}; nothing to abort (summary: {summary})",
                file=sys.stderr,
            )
            return 1
        sfn.stop_execution(executionArn=arn, error="Aborted", cause="spotmap local abort")
    except ClientError as error:
        if error.response["Error"]["Code"] == "ExecutionDoesNotExist":
            print(f"spotmap: no job {args.job_id} on {endpoint}", file=sys.stderr)
            return 2
        print(f"spotmap: cannot abort {args.job_id}: {error.response['Error']['Message']}", file=sys.stderr)
        return 1
    print(f"aborting job {args.job_id}: its tasks are being stopped; its ABORTED summary will be {summary}")
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from spotmap.template import load_stack
    from spotmap.upload_event import upload_for_event, uploaded_object

    try:
        event = json.loads(Path(args.event).read_bytes())
        uploaded_object(event)
    except (OSError, ValueError) as error:
        print(f"spotmap: cannot read event {args.event}: {error}", file=sys.stderr)
        return 2
    except (KeyError, IndexError, TypeError):
        print(f"spotmap: {args.event} is not an S3 or EventBridge object event", file=sys.stderr)
        return 2
    if not Path(args.file).is_file():
        print(f"spotmap: no such file: {args.file}", file=sys.stderr)
        return 2
    _require_endpoint(_endpoint(args))
    s3 = local_client("s3", _endpoint(args), load_stack(project_root()).region)
    try:
        delivered = upload_for_event(s3, Path(args.file), event)
    except (BotoCoreError, ClientError) as error:
        print(f"spotmap: cannot upload {args.file}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(delivered, indent=2))
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    event_path = Path(args.event)
    try:
        payload = event_path.read_bytes()
        json.loads(payload)
    except (OSError, ValueError) as error:
        print(f"spotmap: cannot read event {event_path}: {error}", file=sys.stderr)
        return 2

    def invoke(cloud_endpoint: str, function_name: str, region: str) -> dict[str, Any]:
        client = local_client("lambda", cloud_endpoint, region)
        response = client.invoke(FunctionName=function_name, Payload=payload)
        return {
            "payload": json.loads(response["Payload"].read() or b"null"),
            "function_error": response.get("FunctionError"),
        }

    if args.endpoint_url:
        from spotmap.template import load_stack

        stack = load_stack(project_root())
        _require_endpoint(args.endpoint_url)
        spec = stack.functions.get(args.function)
        if spec is None:
            print(
                f"spotmap: no function {args.function!r}; the template has: {', '.join(stack.functions)}",
                file=sys.stderr,
            )
            return 2
        result = invoke(args.endpoint_url, spec.name, stack.region)
    else:
        with LocalCloud(options=CloudOptions(run_schedules=False)) as cloud:
            spec = cloud.stack.functions.get(args.function)
            if spec is None:
                print(
                    f"spotmap: no function {args.function!r}; the template has: "
                    f"{', '.join(cloud.stack.functions)}",
                    file=sys.stderr,
                )
                return 2
            result = invoke(cloud.endpoint, spec.name, cloud.stack.region)
    print(json.dumps(result["payload"], indent=2))
    if result["function_error"]:
        print(f"spotmap: {args.function} failed ({result['function_error']})", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from spotmap.status import aws_target, local_target, samconfig_stack, show_status

    if args.endpoint_url:
        target = local_target(args.endpoint_url, project_root())
    else:
        stack, region = samconfig_stack(project_root())
        target = aws_target(args.stack or stack or "spotmap", args.region, region or "us-east-1")
    return show_status(
        target, args.job_id, watch=args.watch, as_json=args.json, interval=args.interval, timeout=args.timeout
    )


def cmd_rerun(args: argparse.Namespace) -> int:
    from spotmap.reruns import submit_rerun
    from spotmap.status import aws_target, local_target, samconfig_stack

    if args.endpoint_url:
        _require_endpoint(args.endpoint_url)
        target = local_target(args.endpoint_url, project_root())
    else:
        stack, region = samconfig_stack(project_root())
        target = aws_target(args.stack or stack or "spotmap", args.region, region or "us-east-1")
    submitted = submit_rerun(target.s3, target.bucket, args.job_id)
    print(
        f"rerun of {args.job_id}: uploaded s3://{target.bucket}/{submitted.key} → job {submitted.job_id} "
        f"(its failed items only); summary: s3://{target.bucket}/{submitted.summary_key}"
    )
    print(submitted.job_id)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from spotmap.plan import build_plan
    from spotmap.product import _jobcore

    if args.endpoint_url:
        _require_endpoint(args.endpoint_url)
    plan = build_plan(args, project_root())
    if args.json:
        print(json.dumps(plan, indent=2))
    else:
        print(f"plan for {args.file} ({plan['processor']}) on {plan['target']}:")
        for line in _jobcore("planning").format_plan(plan):
            print(f"  {line}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from spotmap.demo import run_demo

    return run_demo(rows=args.rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spotmap", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    local = commands.add_parser("local", help="the local cloud").add_subparsers(
        dest="local_command", required=True
    )
    run = local.add_parser("run", help="upload files, wait for their jobs, copy the bucket out")
    run.add_argument("files", nargs="+", metavar="FILE")
    run.add_argument("--key", help="the object key of a single FILE (default input/<file name>)")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to copy the bucket: a new or empty directory, or an earlier copy, which is replaced "
        "(default .spotmap/out, replaced by every run)",
    )
    run.add_argument(
        "--data",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="upload a file or directory to data/ first (inputs a job manifest refers to)",
    )
    run.add_argument("--json", action="store_true", help="print the summaries as a JSON array (last line)")
    run.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for all jobs")
    _add_cloud_options(run)
    run.set_defaults(func=cmd_run)

    serve = local.add_parser("serve", help="keep the local cloud running on a port")
    serve.add_argument("--port", type=int, default=DEFAULT_SERVE_PORT)
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (0.0.0.0 lets `sam local invoke` containers reach it)",
    )
    serve.add_argument(
        "--no-object-events",
        dest="object_events",
        action="store_false",
        help="uploads raise no Object Created event (deliver it yourself, e.g. with sam local invoke)",
    )
    _add_cloud_options(serve)
    serve.set_defaults(func=cmd_serve)

    upload = local.add_parser(
        "upload", help="upload FILE under the key an event file names; print the event for that upload"
    )
    upload.add_argument("file", metavar="FILE")
    upload.add_argument("--event", required=True, help="an S3 or EventBridge event file (events/)")
    upload.add_argument("--endpoint-url", default=None)
    upload.set_defaults(func=cmd_upload)

    abort = local.add_parser("abort", help="abort a job running on `spotmap local serve`")
    abort.add_argument("job_id")
    abort.add_argument("--endpoint-url", default=None)
    abort.set_defaults(func=cmd_abort)

    invoke = commands.add_parser("invoke", help="invoke one function with an event file, no Docker")
    invoke.add_argument("function", metavar="LogicalId")
    invoke.add_argument("-e", "--event", required=True)
    invoke.add_argument(
        "--endpoint-url", default=None, help="a running local cloud (default: start an embedded one)"
    )
    invoke.set_defaults(func=cmd_invoke)

    status = commands.add_parser(
        "status", help="a job's progress (items, Spot interruptions, elapsed, ETA, cost so far)"
    )
    status.add_argument("job_id")
    status.add_argument("--watch", action="store_true", help="refresh until the job ends")
    status.add_argument("--json", action="store_true", help="one JSON document per read")
    status.add_argument(
        "--stack", default=None, help="the stack in AWS (default: samconfig.toml's stack_name)"
    )
    status.add_argument("--region", default=None, help="AWS region (default: your AWS configuration's)")
    status.add_argument(
        "--endpoint-url", default=None, help="a local cloud (`spotmap local serve`) instead of AWS"
    )
    status.add_argument("--interval", type=float, default=5.0, help="seconds between reads (at least 3)")
    status.add_argument("--timeout", type=float, default=24 * 3600.0, help="seconds --watch waits at most")
    status.set_defaults(func=cmd_status)

    rerun = commands.add_parser(
        "rerun", help="start a new job over exactly the failed items of an earlier job (same processor)"
    )
    rerun.add_argument("job_id")
    rerun.add_argument(
        "--stack", default=None, help="the stack in AWS (default: samconfig.toml's stack_name)"
    )
    rerun.add_argument("--region", default=None, help="AWS region (default: your AWS configuration's)")
    rerun.add_argument(
        "--endpoint-url", default=None, help="a local cloud (`spotmap local serve`) instead of AWS"
    )
    rerun.set_defaults(func=cmd_rerun)

    plan = commands.add_parser(
        "plan",
        help="before launching: items, tasks, waves, vCPUs against the Fargate quotas, launch rate, "
        "estimated wall time and cost, and warnings when a limit sets the pace",
    )
    plan.add_argument("file", metavar="FILE_OR_MANIFEST")
    sample = plan.add_mutually_exclusive_group()
    sample.add_argument(
        "--item-seconds", type=float, default=None, metavar="S", help="seconds one item takes"
    )
    sample.add_argument(
        "--sample", type=int, default=None, metavar="N", help="measure: run the first N items here"
    )
    plan.add_argument(
        "--start-seconds",
        type=float,
        default=None,
        help="a task's start-up before its item runs (default: 45 in AWS, 1 + PollMinSeconds locally)",
    )
    plan.add_argument(
        "--param", action="append", type=_param, default=[], metavar="NAME=VALUE", help="a template parameter"
    )
    plan.add_argument("--local", action="store_true", help="plan for the local cloud (nothing running)")
    plan.add_argument("--endpoint-url", default=None, help="a running local cloud (`spotmap local serve`)")
    plan.add_argument("--stack", default=None, help="the stack in AWS (default: samconfig.toml's stack_name)")
    plan.add_argument("--region", default=None, help="AWS region (default: your AWS configuration's)")
    _add_quota_options(plan, "instead of what Service Quotas answers")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)

    demo = commands.add_parser("demo", help="run the pipeline locally on a generated sample CSV")
    demo.add_argument("--rows", type=int, default=200_000)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    log_to_stderr(getattr(args, "verbose", False))
    with StopSignals() as signals:
        args.stop_signals = signals
        try:
            return int(args.func(args))
        except Stopped as stopped:
            print(f"spotmap: {stopped.name}: {stopped.detail or 'stopped'}", file=sys.stderr, flush=True)
            return stopped.exit_code
        except (TemplateError, ValueError, OSError, DockerUnavailable, UserError) as error:
            print(f"spotmap: {_one_line(error)}", file=sys.stderr)
            return 2
        except (BotoCoreError, ClientError) as error:  # the local cloud refused or vanished mid-way
            print(f"spotmap: {_one_line(error)}", file=sys.stderr)
            return 2


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 500 else text[:500] + "…"


if __name__ == "__main__":
    sys.exit(main())
