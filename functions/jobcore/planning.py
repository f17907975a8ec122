"""A job's plan before it launches: tasks, waves, vCPUs against the account's Fargate quotas, the launch
rate, the estimated wall time and cost, and warnings when a limit rather than the work sets the pace.

One module computes it for `spotmap plan` (before anything starts) and for StartJob (which writes the
warnings into the job descriptor, whence the summary copies them). The arithmetic:

    tasks       = items, or the batches of a batched job (jobcore.batching: many items per task)
    concurrency = min(MaxConcurrency, tasks, 10,000 (Distributed Map), floor(Spot vCPU quota / task vCPU))
    waves       = ceil(tasks / concurrency)
    per task    = start-up (image pull, provisioning) + item seconds × items per task (their mean)
    work bound  = waves × per task
    launch bound = max(0, tasks − burst) / refill + per task   (Fargate launches: 100 at once, 20 per s)
    wall time   = max(work bound, launch bound)

Fargate facts: launches draw from a token bucket of 100 refilled 20 per second, Spot and on-demand
alike (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html); running vCPUs are
a per-Region quota, on-demand and Spot counted apart, in Service Quotas under service code `fargate`:
"Fargate Spot vCPU resource count" (L-36FBB829) and "Fargate On-Demand vCPU resource count"
(L-3032A538), default value 4,000 each, often far lower on new accounts
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html). A task reaches
RUNNING in about 30-60 s in AWS, most of it pulling the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from jobcore.cost import PARENT_TRANSITIONS, cost_block
from jobcore.models import Usage

SERVICE_QUOTAS_SERVICE_CODE = "fargate"
SPOT_VCPU_QUOTA_CODE = "L-36FBB829"  # "Fargate Spot vCPU resource count"
ON_DEMAND_VCPU_QUOTA_CODE = "L-3032A538"  # "Fargate On-Demand vCPU resource count"
DEFAULT_VCPU_QUOTA = 4000.0  # Service Quotas' default value of both; new accounts often get less
LAUNCH_BURST = 100  # Fargate task launches: token bucket size
LAUNCH_REFILL_PER_SECOND = 20.0  # and its refill
MAP_MAX_CONCURRENCY = 10_000  # Distributed Map: child executions at once (hard limit)
AWS_TASK_START_SECONDS = 45.0  # provisioning + image pull until RUNNING: 30-60 s
# The state transitions of one item: Launch, then per poll Wait + Poll + CheckTask, then ItemSucceeded
# (jobcore.launching's LAUNCH_TRANSITIONS, jobcore.stopped_tasks' POLL_TRANSITIONS and FINAL_TRANSITIONS).
LAUNCH_TRANSITIONS, POLL_TRANSITIONS, FINAL_TRANSITIONS = 1, 3, 1
LAMBDA_SECONDS_PER_INVOCATION = 0.2  # a warm Launch/Poll invocation: a few AWS calls


@dataclass(frozen=True)
class Quota:
    """A vCPU quota and where the number came from (Service Quotas, a flag, a documented default)."""

    vcpus: float
    source: str


@dataclass(frozen=True)
class PlanInputs:
    items: int
    max_concurrency: int
    task_vcpu: float  # TaskCpu / 1024
    task_memory_gb: float  # TaskMemory / 1024
    spot_quota: Quota
    on_demand_quota: Quota
    region: str = "us-east-1"
    item_seconds: float | None = None  # None: no estimate of the work (no wall time, no cost)
    item_seconds_source: str = "not given (use --item-seconds S or --sample N)"
    start_seconds: float = AWS_TASK_START_SECONDS
    poll_seconds: float = 30.0  # the typical wait between polls (PollMaxSeconds)
    lambda_memory_mb: int = 128
    launch_burst: int = LAUNCH_BURST
    launch_refill_per_second: float = LAUNCH_REFILL_PER_SECOND
    task_count: int | None = None  # a batched job's tasks (its batches); None: one task per item
    batch: dict[str, Any] | None = None  # its batching ({"max_items": N, "max_bytes": B}), to print

    @property
    def tasks(self) -> int:
        return self.items if self.task_count is None else self.task_count

    @property
    def items_per_task(self) -> float:
        """The mean items a task runs (1 unless batched)."""
        return self.items / self.tasks if self.tasks else 1.0


def _fmt(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def make_plan(inputs: PlanInputs, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plan document (what `spotmap plan --json` prints and the descriptor's `plan` holds)."""
    tasks = inputs.tasks
    wanted = min(inputs.max_concurrency, tasks, MAP_MAX_CONCURRENCY)
    spot_fits = math.floor(inputs.spot_quota.vcpus / inputs.task_vcpu + 1e-9) if inputs.task_vcpu else 0
    on_demand_fits = (
        math.floor(inputs.on_demand_quota.vcpus / inputs.task_vcpu + 1e-9) if inputs.task_vcpu else 0
    )
    concurrency = min(wanted, spot_fits)
    waves = math.ceil(tasks / concurrency) if concurrency else (0 if tasks == 0 else None)
    warnings: list[str] = []
    quota_binds = tasks > 0 and spot_fits < wanted
    if quota_binds and spot_fits == 0:
        warnings.append(
            f"the Fargate Spot vCPU quota ({inputs.spot_quota.vcpus:g} vCPUs, {inputs.spot_quota.source}) is "
            f"smaller than one task ({inputs.task_vcpu:g} vCPU): no task can start; ask for more in Service "
            f"Quotas ({SERVICE_QUOTAS_SERVICE_CODE} {SPOT_VCPU_QUOTA_CODE}) or lower TaskCpu"
        )
    elif quota_binds:
        warnings.append(
            f"the Fargate Spot vCPU quota sets the pace: {inputs.spot_quota.vcpus:g} vCPUs "
            f"({inputs.spot_quota.source}) run {spot_fits} task(s) of {inputs.task_vcpu:g} vCPU at once, "
            f"not {wanted} ({wanted * inputs.task_vcpu:g} vCPUs needed): {waves} wave(s) instead of "
            f"{math.ceil(tasks / wanted)}; ask for more in Service Quotas ({SERVICE_QUOTAS_SERVICE_CODE} "
            f"{SPOT_VCPU_QUOTA_CODE})"
        )
    if tasks > 0 and on_demand_fits == 0:
        warnings.append(
            f"the Fargate On-Demand vCPU quota ({inputs.on_demand_quota.vcpus:g} vCPUs, "
            f"{inputs.on_demand_quota.source}) cannot run one task: on-demand fallbacks after Spot "
            f"interruptions or capacity shortages will fail ({ON_DEMAND_VCPU_QUOTA_CODE})"
        )
    if inputs.max_concurrency > MAP_MAX_CONCURRENCY:
        warnings.append(
            f"MaxConcurrency {inputs.max_concurrency} is above the Distributed Map's "
            f"{MAP_MAX_CONCURRENCY} child executions at once"
        )
    launch_all_seconds = max(0, tasks - inputs.launch_burst) / inputs.launch_refill_per_second
    estimate: dict[str, Any] = {"wall_seconds": None, "wall": None, "paced_by": None}
    cost: dict[str, Any] | None = None
    if inputs.item_seconds is not None and waves is not None:
        per_task = inputs.start_seconds + inputs.item_seconds * inputs.items_per_task
        work_bound = waves * per_task if tasks else 0.0
        launch_bound = launch_all_seconds + per_task if tasks else 0.0
        wall = max(work_bound, launch_bound)
        if tasks and launch_bound > work_bound:
            paced_by = "the Fargate launch rate"
            warnings.append(
                f"the Fargate launch rate sets the pace: {tasks} tasks at "
                f"{inputs.launch_refill_per_second:g} launches per second after a burst of "
                f"{inputs.launch_burst} take {_fmt(launch_all_seconds)} "
                f"to launch, longer than the work ({_fmt(work_bound)}); longer items per task would help"
            )
        elif quota_binds:
            paced_by = "the Fargate Spot vCPU quota"
        elif tasks > wanted:
            paced_by = "MaxConcurrency" if wanted == inputs.max_concurrency else "the Distributed Map limit"
        else:
            paced_by = "the work (every task runs at once)"
        estimate = {
            "wall_seconds": round(wall, 1),
            "wall": _fmt(wall),
            "paced_by": paced_by,
            "per_task_seconds": round(per_task, 1),
            "work_bound_seconds": round(work_bound, 1),
            "launch_bound_seconds": round(launch_bound, 1),
        }
        cost = _estimated_cost(inputs, prices)
    return {
        "items": inputs.items,
        "tasks": tasks,
        "batch": inputs.batch,
        "items_per_task": round(inputs.items_per_task, 3),
        "max_concurrency": inputs.max_concurrency,
        "concurrency": concurrency,
        "waves": waves,
        "task": {"vcpu": inputs.task_vcpu, "memory_gb": inputs.task_memory_gb},
        "vcpus": {
            "needed": round(wanted * inputs.task_vcpu, 3),
            "spot_quota": inputs.spot_quota.vcpus,
            "spot_quota_source": inputs.spot_quota.source,
            "spot_tasks_at_once": spot_fits,
            "on_demand_quota": inputs.on_demand_quota.vcpus,
            "on_demand_quota_source": inputs.on_demand_quota.source,
            "on_demand_tasks_at_once": on_demand_fits,
        },
        "launch_rate": {
            "burst": inputs.launch_burst,
            "per_second": inputs.launch_refill_per_second,
            "seconds_to_launch_all": round(launch_all_seconds, 1),
        },
        "item_seconds": inputs.item_seconds,
        "item_seconds_source": inputs.item_seconds_source,
        "start_seconds": inputs.start_seconds,
        "estimate": estimate,
        "cost": cost,
        "warnings": warnings,
    }


def _estimated_cost(inputs: PlanInputs, prices: dict[str, Any] | None) -> dict[str, Any]:
    """The cost block (jobcore.cost, the summary's own price table) of the estimated usage: every task
    on Spot for its items' seconds, a Launch and a poll every `poll_seconds` per task."""
    task_seconds = (inputs.item_seconds or 0.0) * inputs.items_per_task
    polls = max(1, math.ceil(task_seconds / max(inputs.poll_seconds, 1.0)))
    invocations = 1 + polls
    per_task = Usage(
        spot_vcpu_seconds=inputs.task_vcpu * task_seconds,
        spot_gb_seconds=inputs.task_memory_gb * task_seconds,
        lambda_invocations=invocations,
        lambda_gb_seconds=invocations * inputs.lambda_memory_mb / 1024 * LAMBDA_SECONDS_PER_INVOCATION,
        state_transitions=LAUNCH_TRANSITIONS + polls * POLL_TRANSITIONS + FINAL_TRANSITIONS,
    )
    total = Usage(**{name: getattr(per_task, name) * inputs.tasks for name in Usage.model_fields})
    block = cost_block(total, inputs.region, prices, PARENT_TRANSITIONS)
    orchestration = block["lambda"]["usd"] + block["step_functions"]["usd"]
    block["orchestration_usd"] = round(orchestration, 9)
    return block


def format_plan(plan: dict[str, Any]) -> list[str]:
    """The plan as lines a person reads (`spotmap plan`)."""
    vcpus = plan["vcpus"]
    item_seconds = "?" if plan["item_seconds"] is None else f"{plan['item_seconds']:.4g}"
    batch = plan.get("batch")
    per_task = (
        "one per item"
        if not batch
        else f"batches of {' and '.join(f'{key} {value}' for key, value in batch.items())}: "
        f"{plan['items_per_task']:g} items per task on average"
    )
    lines = [
        f"items: {plan['items']}   tasks: {plan['tasks']} ({per_task})",
        f"concurrency: {plan['concurrency']} task(s) at once (MaxConcurrency {plan['max_concurrency']})"
        f"   waves: {plan['waves'] if plan['waves'] is not None else 'none: no task can start'}",
        f"task: {plan['task']['vcpu']:g} vCPU, {plan['task']['memory_gb']:g} GB",
        f"vCPUs needed: {vcpus['needed']:g}",
        f"  Fargate Spot vCPU quota: {vcpus['spot_quota']:g} ({vcpus['spot_quota_source']}): "
        f"{vcpus['spot_tasks_at_once']} task(s) at once",
        f"  Fargate On-Demand vCPU quota: {vcpus['on_demand_quota']:g} ({vcpus['on_demand_quota_source']}): "
        f"{vcpus['on_demand_tasks_at_once']} task(s) at once (on-demand fallbacks)",
        f"launch rate: burst {plan['launch_rate']['burst']}, then {plan['launch_rate']['per_second']:g} per "
        f"second: {plan['launch_rate']['seconds_to_launch_all']:g} s to launch every task after the burst",
        f"item seconds: {item_seconds} "
        f"({plan['item_seconds_source']}); task start-up: {plan['start_seconds']:g} s",
    ]
    estimate = plan["estimate"]
    if estimate["wall_seconds"] is not None:
        lines.append(
            f"estimated wall time: {estimate['wall']} ({estimate['wall_seconds']:g} s), paced by "
            f"{estimate['paced_by']}"
        )
    elif plan["waves"] is None:
        lines.append("estimated wall time: never: no task can start")
    else:
        lines.append("estimated wall time: unknown (give --item-seconds S or --sample N)")
    cost = plan["cost"]
    if cost is not None:
        lines.append(
            f"estimated cost: ${cost['total_usd']:.6f} on Spot "
            f"(Fargate ${cost['fargate']['spot']['usd']:.6f}, "
            f"orchestration ${cost['orchestration_usd']:.6f}); on-demand equivalent "
            f"${cost['on_demand_equivalent_usd']:.6f} (prices of {cost['prices']['date']}, "
            f"{cost['prices']['region']})"
        )
    for warning in plan["warnings"]:
        lines.append(f"WARNING: {warning}")
    return lines


def read_quota(client: Any, code: str, where: str) -> Quota:
    """A Fargate vCPU quota as Service Quotas answers it; when it cannot be read (no permission, no
    endpoint), Service Quotas' documented default, and the source says so."""
    try:
        answer = client.get_service_quota(ServiceCode=SERVICE_QUOTAS_SERVICE_CODE, QuotaCode=code)
        return Quota(float(answer["Quota"]["Value"]), f"Service Quotas {code}, {where}")
    except (BotoCoreError, ClientError) as error:
        reason = (
            str(error.response.get("Error", {}).get("Code", "")) if isinstance(error, ClientError) else ""
        ) or type(error).__name__
        return Quota(DEFAULT_VCPU_QUOTA, f"Service Quotas' default value: could not read {code} ({reason})")


def account_quotas(client: Any, where: str = "this account") -> tuple[Quota, Quota]:
    """(Fargate Spot vCPU quota, Fargate On-Demand vCPU quota)."""
    return read_quota(client, SPOT_VCPU_QUOTA_CODE, where), read_quota(
        client, ON_DEMAND_VCPU_QUOTA_CODE, where
    )


def start_warnings(
    items: int,
    max_concurrency: int,
    task_cpu: int,
    task_memory: int,
    quotas: tuple[Quota, Quota],
    task_count: int | None = None,
) -> list[str]:
    """The plan's warnings StartJob can give before any item has run (the work's length is not known:
    the quotas and the Map's limit, not the launch rate's effect on the wall time)."""
    plan = start_plan(items, max_concurrency, task_cpu, task_memory, quotas, task_count)
    warnings: list[str] = plan["warnings"]
    return warnings


def quota_concurrency(plan: dict[str, Any]) -> int | None:
    """The Map's MaxConcurrency that keeps the job's Spot tasks within the Spot vCPU quota, when the
    quota allows fewer than MaxConcurrency (at least 1: a Map's 0 would mean no limit at all); else None."""
    fits = int(plan["vcpus"]["spot_tasks_at_once"])
    return max(1, fits) if fits < plan["max_concurrency"] else None


def start_plan(
    items: int,
    max_concurrency: int,
    task_cpu: int,
    task_memory: int,
    quotas: tuple[Quota, Quota],
    task_count: int | None = None,
) -> dict[str, Any]:
    """The plan StartJob makes for a job (no item seconds: quotas and limits only); a batched job's
    `task_count` is its batches, the tasks that need vCPUs."""
    inputs = PlanInputs(
        items=items,
        task_count=task_count,
        max_concurrency=max_concurrency,
        task_vcpu=task_cpu / 1024,
        task_memory_gb=task_memory / 1024,
        spot_quota=quotas[0],
        on_demand_quota=quotas[1],
    )
    return make_plan(inputs)
