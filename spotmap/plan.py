"""`spotmap plan FILE_OR_MANIFEST`: what a job would take, printed before anything starts.

The items are built by StartJob's own code (jobcore.sharding for a CSV, jobcore.starting.manifest_items
for a manifest, jobcore.rerun for a rerun manifest), so the plan counts exactly the job's items, and
its tasks: a batched job's batches (the manifest's `batch`, else the stack's BatchMaxItems /
BatchMaxBytes, grouped by jobcore.batching as StartJob groups them); the arithmetic, warnings and cost
are jobcore.planning's, which StartJob also writes into the job descriptor. Three targets:

- AWS (default): the stack's parameters and bucket from CloudFormation (`--stack`), the Fargate vCPU
  quotas from Service Quotas (`servicequotas:GetServiceQuota`); a quota it cannot read is Service
  Quotas' documented default, and the plan says so.
- `--endpoint-url URL`: a running local cloud (`spotmap local serve`), whose Service Quotas answer with
  its `--fargate-spot-vcpu-quota` / `--fargate-on-demand-vcpu-quota`.
- `--local`: the local cloud's parameters (template, samconfig.toml's `local`, `--param`) and quotas
  (the flags, else the default), nothing running; manifests whose items are in the bucket (prefix,
  shard, rerun) need one of the other two.

`--item-seconds S` states how long one item takes; `--sample N` measures it by running the first N
items' processor here, in this process (this machine's speed, not a Fargate task's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spotmap.outputs import UserError
from spotmap.product import _jobcore

LOCAL_TASK_START_SECONDS = 1.0  # local: forking a worker and the first poll, on top of PollMinSeconds


@dataclass
class PlanTarget:
    parameters: dict[str, str]
    region: str
    bucket: str
    s3: Any | None  # None: nothing to read items from (--local)
    spot_quota: Any  # jobcore.planning.Quota
    on_demand_quota: Any
    start_seconds: float
    where: str


def file_range_reader(path: Path) -> Any:
    """jobcore.sharding's RangeReader over a local file: the shards StartJob would cut from its upload."""
    sharding = _jobcore("sharding")

    class FileRangeReader(sharding.ClippedRangeReader):  # type: ignore[name-defined]
        def _read_within(self, start: int, end: int) -> bytes:
            with path.open("rb") as handle:
                handle.seek(start)
                return handle.read(end - start)

    return FileRangeReader(path.stat().st_size)


def service_quota(client: Any, code: str, where: str) -> Any:
    """The quota as Service Quotas answers it; its documented default, saying why, when it cannot."""
    return _jobcore("planning").read_quota(client, code, where)


def _flag_or(value: float | None, flag: str, read: Callable[[], Any]) -> Any:
    planning = _jobcore("planning")
    return planning.Quota(float(value), flag) if value is not None else read()


def account_quotas(args: Any, quotas: Any, where: str) -> tuple[Any, Any]:
    """The Fargate Spot and on-demand vCPU quotas: the flags when given, else Service Quotas' answer."""
    planning = _jobcore("planning")
    spot = _flag_or(
        args.fargate_spot_vcpu_quota,
        "--fargate-spot-vcpu-quota",
        lambda: service_quota(quotas, planning.SPOT_VCPU_QUOTA_CODE, where),
    )
    on_demand = _flag_or(
        args.fargate_on_demand_vcpu_quota,
        "--fargate-on-demand-vcpu-quota",
        lambda: service_quota(quotas, planning.ON_DEMAND_VCPU_QUOTA_CODE, where),
    )
    return spot, on_demand


def local_target(args: Any, root: Path) -> PlanTarget:
    """--local or --endpoint-url: the local cloud's stack; its Service Quotas when it is running."""
    from spotmap.template import load_stack

    planning = _jobcore("planning")
    stack = load_stack(root, dict(args.param))
    start = LOCAL_TASK_START_SECONDS + float(stack.parameters.get("PollMinSeconds") or 0)
    if args.endpoint_url:
        from spotmap.cloud import local_client

        s3 = local_client("s3", args.endpoint_url, stack.region)
        quotas = local_client("service-quotas", args.endpoint_url, stack.region)
        where = f"the local cloud at {args.endpoint_url}"
        spot, on_demand = account_quotas(args, quotas, where)
        return PlanTarget(stack.parameters, stack.region, stack.bucket, s3, spot, on_demand, start, where)
    default = "the local cloud's default; set it with --fargate-spot-vcpu-quota"
    spot = _flag_or(
        args.fargate_spot_vcpu_quota,
        "--fargate-spot-vcpu-quota",
        lambda: planning.Quota(planning.DEFAULT_VCPU_QUOTA, default),
    )
    on_demand = _flag_or(
        args.fargate_on_demand_vcpu_quota,
        "--fargate-on-demand-vcpu-quota",
        lambda: planning.Quota(planning.DEFAULT_VCPU_QUOTA, default.replace("spot", "on-demand")),
    )
    return PlanTarget(stack.parameters, stack.region, stack.bucket, None, spot, on_demand, start, "--local")


def aws_target(args: Any, root: Path) -> PlanTarget:
    """The deployed stack's parameters and bucket, and the account's quotas, with the default credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from spotmap.status import StackNotFound, samconfig_stack

    planning = _jobcore("planning")
    stack_name, samconfig_region = samconfig_stack(root)
    name = args.stack or stack_name or "spotmap"
    session = boto3.Session(region_name=args.region) if args.region else boto3.Session()
    if session.region_name is None:
        session = boto3.Session(region_name=samconfig_region or "us-east-1")
    try:
        found = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except (ClientError, BotoCoreError) as error:
        raise StackNotFound(f"stack {name}: {error}") from None
    parameters = {
        entry["ParameterKey"]: entry.get("ParameterValue", "") for entry in found.get("Parameters", [])
    }
    parameters.update(dict(args.param))
    outputs = {entry["OutputKey"]: entry["OutputValue"] for entry in found.get("Outputs", [])}
    quotas = session.client("service-quotas")
    where = f"account of stack {name}, {session.region_name}"
    spot, on_demand = account_quotas(args, quotas, where)
    return PlanTarget(
        parameters,
        session.region_name or "us-east-1",
        outputs.get("JobBucketName", ""),
        session.client("s3"),
        spot,
        on_demand,
        planning.AWS_TASK_START_SECONDS,
        f"stack {name}",
    )


@dataclass
class PlannedJob:
    processor: str
    params: dict[str, Any]
    items: list[Any]  # jobcore.models.Item: every item, a batch's included
    tasks: list[Any] | None = None  # a batched job's Map items (batches); None: one task per item
    batch: dict[str, Any] | None = None  # its batching, as the job descriptor records it


def _batched(
    processor: str, params: dict[str, Any], tasks: list[Any], batch: dict[str, Any] | None
) -> PlannedJob:
    """A job whose Map items are `tasks`: batches hold their items (jobcore.batching.members)."""
    if batch is None:
        return PlannedJob(processor, params, tasks)
    members = _jobcore("batching").members
    return PlannedJob(processor, params, [item for task in tasks for item in members(task)], tasks, batch)


def job_items(path: Path, target: PlanTarget) -> PlannedJob:
    """The job's items as StartJob would build them for an upload of `path` under input/."""
    layout, manifest, sharding = _jobcore("layout"), _jobcore("manifest"), _jobcore("sharding")
    key = f"{layout.INPUT_PREFIX}{path.name}"
    shard_size_mb = float(target.parameters.get("ShardSizeMB") or 8)
    if not path.name.endswith(layout.MANIFEST_SUFFIX):
        items = sharding.shard_items(
            file_range_reader(path),
            bucket=target.bucket,
            key=key,
            version_id=None,
            shard_size_mb=shard_size_mb,
        )
        return PlannedJob(manifest.CSV_PROFILE, {}, list(items))
    processors = [name.strip() for name in target.parameters.get("Processors", "").split(",") if name.strip()]
    try:
        parsed = manifest.parse_job_manifest(path.read_bytes(), key, processors)
        if isinstance(parsed, manifest.RerunManifest):
            if target.s3 is None:
                raise UserError(
                    "a rerun manifest reads the earlier job from the bucket: plan it with "
                    "--endpoint-url or against AWS, not --local"
                )
            planned = _jobcore("rerun").rerun_job(target.s3, target.bucket, key, parsed)
            return _batched(planned.processor, planned.params, planned.items, planned.batch)
        if parsed.source.kind in ("prefix", "shard") and target.s3 is None:
            raise UserError(
                f"a {parsed.source.kind} manifest's items are in the bucket: plan it with --endpoint-url "
                "or against AWS, not --local"
            )
        sizes: dict[str, int] = {}  # a prefix listing's object sizes, for max_bytes
        items = _jobcore("starting").manifest_items(
            target.s3, target.bucket, key, parsed, shard_size_mb, sizes
        )
        spec = _batch_spec(parsed, target)
        if spec is None:
            return PlannedJob(parsed.processor, parsed.params, list(items))
        tasks = list(_jobcore("batching").Batcher(spec, _size_of(parsed, target, sizes))(items))
        return _batched(parsed.processor, parsed.params, tasks, spec.model_dump(exclude_none=True))
    except manifest.ManifestError as error:
        raise UserError(str(error)) from None


def _batch_spec(parsed: Any, target: PlanTarget) -> Any:
    """The job's batching as StartJob decides it: the manifest's `batch`, else the stack's BatchMaxItems
    and BatchMaxBytes (jobcore.batching.spec_for)."""
    parameters = target.parameters
    return _jobcore("batching").spec_for(
        parsed.source.kind,
        int(parameters.get("BatchMaxItems") or 1),
        int(parameters.get("BatchMaxBytes") or 0),
        parsed.batch,
        parsed.batch_given,
    )


def _size_of(parsed: Any, target: PlanTarget, sizes: dict[str, int]) -> Callable[[Any], int]:
    """An item's object size for max_bytes: from the prefix listing, else HeadObject as StartJob does;
    with --local (nothing to read) 0, so that only max_items groups them."""
    if parsed.source.kind == "prefix":
        return lambda item: sizes.get(item.key or "", 0)
    if target.s3 is None:
        return lambda item: 0
    size_of: Callable[[Any], int] = _jobcore("batching").head_size(target.s3, target.bucket)
    return size_of


def sample_seconds(job: PlannedJob, path: Path, count: int, target: PlanTarget) -> tuple[float, str]:
    """The mean seconds of running the first `count` items' processor here (worker.testing)."""
    run_processor = _worker_testing().run_processor
    sampled = job.items[:count]
    if not sampled:
        raise UserError("--sample: the job has no items to run")
    models = _jobcore("models")
    started = time.perf_counter()
    for item in sampled:
        data: bytes | Path | None = None
        shard = isinstance(item, models.ShardItem)
        if shard:  # a shard of the file being planned, or of an object in the bucket
            data = path if item.key == f"input/{path.name}" else _object(target, item.key)
        elif isinstance(item, models.ObjectItem):
            data = _object(target, item.key)
        run_processor(
            job.processor,
            data,
            start=item.start if shard else None,
            end=item.end if shard else None,
            header_end=item.header_end if shard else 0,
            index=item.index,
            params=job.params,
            item_params=item.params if isinstance(item, models.SweepItem) else None,
        )
    mean = (time.perf_counter() - started) / len(sampled)
    return mean, f"measured here: the mean of the first {len(sampled)} item(s) run by {job.processor}"


def _worker_testing() -> Any:
    """worker.testing (runs a processor in this process), found the way spotmap.product finds jobcore:
    the worker package lives at the project root, which an installed `spotmap` need not have on its path."""
    import importlib
    import sys

    from spotmap.cloud import project_root

    root = str(project_root())
    if root not in sys.path:
        sys.path.append(root)
    _jobcore("models")  # and jobcore, which the worker imports
    return importlib.import_module("worker.testing")


def _object(target: PlanTarget, key: str) -> bytes:
    if target.s3 is None:
        raise UserError(f"--sample needs {key} from the bucket: use --endpoint-url or AWS, or --item-seconds")
    body: bytes = target.s3.get_object(Bucket=target.bucket, Key=key)["Body"].read()
    return body


def build_plan(args: Any, root: Path) -> dict[str, Any]:
    planning = _jobcore("planning")
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    target = local_target(args, root) if (args.local or args.endpoint_url) else aws_target(args, root)
    job = job_items(path, target)
    item_seconds, source = (
        (args.item_seconds, "--item-seconds") if args.item_seconds is not None else (None, "")
    )
    if args.sample is not None:
        item_seconds, source = sample_seconds(job, path, args.sample, target)
    parameters = target.parameters
    inputs = planning.PlanInputs(
        items=len(job.items),
        task_count=len(job.tasks) if job.tasks is not None else None,
        batch=job.batch,
        max_concurrency=int(parameters.get("MaxConcurrency") or 100),
        task_vcpu=float(parameters.get("TaskCpu") or 1024) / 1024,
        task_memory_gb=float(parameters.get("TaskMemory") or 2048) / 1024,
        spot_quota=target.spot_quota,
        on_demand_quota=target.on_demand_quota,
        region=target.region,
        item_seconds=item_seconds,
        item_seconds_source=source or planning.PlanInputs.item_seconds_source,
        start_seconds=args.start_seconds if args.start_seconds is not None else target.start_seconds,
        poll_seconds=float(parameters.get("PollMaxSeconds") or 30),
    )
    plan: dict[str, Any] = planning.make_plan(inputs)
    plan["target"] = target.where
    plan["processor"] = job.processor
    return plan
