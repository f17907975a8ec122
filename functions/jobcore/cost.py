"""What a job cost, from the usage its items accumulated (`models.Usage`), priced from a dated table.

Prices are public list prices (Linux/x86, no free tier, no Savings Plans). Fargate Spot has no fixed
price: AWS moves it with supply and demand ("up to 70% off" on-demand), so the table carries a dated
figure and the summary says which table it used. Override any price with the SPOTMAP_PRICES
environment variable (JSON, either `{"<region>": {field: value}}` or `{field: value}` for every
region) or the `prices` argument.

Fargate is billed per task from the start of its image pull, at least a minute (jobcore.billing). This
is an estimate: it counts the items' tasks, the Launch/Poll/RecordFailure invocations and
their state transitions plus the parent execution's few transitions; S3 requests, CloudWatch and data
transfer are not included.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from jobcore.billing import MINIMUM_SECONDS as MINIMUM_TASK_SECONDS
from jobcore.models import Usage

SECONDS_PER_HOUR = 3600.0
DEFAULT_REGION = "us-east-1"
# The least an item run alone costs in orchestration: LaunchTask and one PollTask, and the transitions of
# Launch, one Wait → Poll → CheckTask cycle and its end (launching.LAUNCH_TRANSITIONS,
# stopped_tasks.POLL_TRANSITIONS and FINAL_TRANSITIONS).
MINIMUM_ITEM_INVOCATIONS = 2
MINIMUM_ITEM_TRANSITIONS = 1 + 3 + 1
PARENT_TRANSITIONS = 5  # CheckJob, ProcessItems, EvaluateJob, WithinTolerance, JobSucceeded/Fail


class PriceTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    date: str
    source: str
    fargate_vcpu_hour: float
    fargate_gb_hour: float
    fargate_spot_vcpu_hour: float
    fargate_spot_gb_hour: float
    lambda_gb_second: float
    lambda_request: float
    state_transition: float


_ON_DEMAND_SOURCE = "aws.amazon.com/fargate/pricing, /lambda/pricing, /step-functions/pricing (Linux/x86)"

PRICE_TABLES: dict[str, PriceTable] = {
    "us-east-1": PriceTable(
        date="2025-06-01",
        source=(
            f"{_ON_DEMAND_SOURCE}; Fargate Spot = on-demand less the advertised 70% (the rate AWS "
            "publishes for us-east-1 moves around that figure)"
        ),
        fargate_vcpu_hour=0.04048,
        fargate_gb_hour=0.004445,
        fargate_spot_vcpu_hour=0.012144,
        fargate_spot_gb_hour=0.0013335,
        lambda_gb_second=0.0000166667,
        lambda_request=0.20 / 1_000_000,
        state_transition=0.025 / 1000,
    ),
    "eu-west-1": PriceTable(
        date="2025-06-01",
        source=(
            f"{_ON_DEMAND_SOURCE}; Fargate Spot: the eu-west-1 rate quoted in tomgregory.com's "
            "'AWS Fargate Spot vs. Fargate price comparison' (0.01334053 vCPU-h, 0.00146489 GB-h)"
        ),
        fargate_vcpu_hour=0.04048,
        fargate_gb_hour=0.004445,
        fargate_spot_vcpu_hour=0.01334053,
        fargate_spot_gb_hour=0.00146489,
        lambda_gb_second=0.0000166667,
        lambda_request=0.20 / 1_000_000,
        state_transition=0.025 / 1000,
    ),
}


class PriceError(ValueError):
    """SPOTMAP_PRICES or a prices argument is not a valid price override."""


def price_table(region: str, overrides: dict[str, Any] | None = None) -> tuple[str, PriceTable]:
    """(the region whose table is used, the table with overrides applied). Unknown regions fall back
    to us-east-1."""
    overrides = overrides if overrides is not None else _env_overrides()
    used_region = region if region in PRICE_TABLES or region in overrides else DEFAULT_REGION
    base = PRICE_TABLES.get(used_region, PRICE_TABLES[DEFAULT_REGION]).model_dump()
    region_specific = overrides.get(used_region)
    flat = {key: value for key, value in overrides.items() if key in PriceTable.model_fields}
    base.update(flat)
    if isinstance(region_specific, dict):
        base.update(region_specific)
    try:
        return used_region, PriceTable.model_validate(base)
    except ValidationError as error:
        raise PriceError(f"invalid price override for {used_region}: {error}") from None


def _env_overrides() -> dict[str, Any]:
    text = os.environ.get("SPOTMAP_PRICES", "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise PriceError(f"SPOTMAP_PRICES is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise PriceError("SPOTMAP_PRICES must be a JSON object")
    return value


def _usd(amount: float) -> float:
    # to a billionth of a dollar: a small local job costs fractions of a cent, and they should add up
    return round(amount, 9)


def cost_block(
    usages: Usage | Iterable[Usage],
    region: str,
    prices: dict[str, Any] | None = None,
    parent_transitions: int = PARENT_TRANSITIONS,
    *,
    items: int | None = None,
    tasks: int | None = None,
) -> dict[str, Any]:
    """The summary's `cost` block for the summed usage of a job's items. With `items` run in fewer
    `tasks` (batches), it also estimates what one task per item would have cost."""
    total = usages if isinstance(usages, Usage) else sum(usages, Usage())
    block = _priced(total, region, prices, parent_transitions)
    if items is not None and tasks is not None and 0 < tasks < items:
        alone = one_task_per_item(total, items, tasks)
        block["one_task_per_item"] = {
            "tasks": items,
            "usd": _priced(alone, region, prices, parent_transitions)["total_usd"],
            "estimate": (
                "each item a task of the same size billed at least a minute (Fargate's minimum), "
                "launched and polled once: a lower bound"
            ),
        }
    return block


def one_task_per_item(total: Usage, items: int, tasks: int) -> Usage:
    """The usage the same job would have had with one task per item, at least: every item a task of the
    batches' mean size billed no less than Fargate's minute (jobcore.billing), launched and polled once
    (the fewest Lambda invocations and state transitions an item costs: Launch, one poll cycle, the end)."""
    billed = max(total.task_seconds, items * MINIMUM_TASK_SECONDS)
    scale = billed / total.task_seconds if total.task_seconds > 0 else 0.0
    invoked = total.lambda_invocations
    gb_seconds_per_invocation = total.lambda_gb_seconds / invoked if invoked else 0.0
    invocations = max(total.lambda_invocations, items * MINIMUM_ITEM_INVOCATIONS)
    return Usage(
        spot_vcpu_seconds=total.spot_vcpu_seconds * scale,
        spot_gb_seconds=total.spot_gb_seconds * scale,
        on_demand_vcpu_seconds=total.on_demand_vcpu_seconds * scale,
        on_demand_gb_seconds=total.on_demand_gb_seconds * scale,
        lambda_invocations=invocations,
        lambda_gb_seconds=gb_seconds_per_invocation * invocations,
        state_transitions=max(total.state_transitions, items * MINIMUM_ITEM_TRANSITIONS),
        task_seconds=billed,
    )


def _priced(
    total: Usage, region: str, prices: dict[str, Any] | None, parent_transitions: int
) -> dict[str, Any]:
    used_region, table = price_table(region, prices)

    def fargate(vcpu_s: float, gb_s: float, vcpu_hour: float, gb_hour: float) -> float:
        return (vcpu_s * vcpu_hour + gb_s * gb_hour) / SECONDS_PER_HOUR

    spot_usd = fargate(
        total.spot_vcpu_seconds,
        total.spot_gb_seconds,
        table.fargate_spot_vcpu_hour,
        table.fargate_spot_gb_hour,
    )
    on_demand_usd = fargate(
        total.on_demand_vcpu_seconds,
        total.on_demand_gb_seconds,
        table.fargate_vcpu_hour,
        table.fargate_gb_hour,
    )
    lambda_usd = (
        total.lambda_invocations * table.lambda_request + total.lambda_gb_seconds * table.lambda_gb_second
    )
    transitions = total.state_transitions + parent_transitions
    step_functions_usd = transitions * table.state_transition
    all_on_demand_usd = fargate(
        total.spot_vcpu_seconds + total.on_demand_vcpu_seconds,
        total.spot_gb_seconds + total.on_demand_gb_seconds,
        table.fargate_vcpu_hour,
        table.fargate_gb_hour,
    )
    return {
        "fargate": {
            "spot": {
                "vcpu_seconds": round(total.spot_vcpu_seconds, 3),
                "gb_seconds": round(total.spot_gb_seconds, 3),
                "usd": _usd(spot_usd),
            },
            "on_demand": {
                "vcpu_seconds": round(total.on_demand_vcpu_seconds, 3),
                "gb_seconds": round(total.on_demand_gb_seconds, 3),
                "usd": _usd(on_demand_usd),
            },
        },
        "lambda": {
            "invocations": total.lambda_invocations,
            "gb_seconds": round(total.lambda_gb_seconds, 3),
            "usd": _usd(lambda_usd),
        },
        "step_functions": {"state_transitions": transitions, "usd": _usd(step_functions_usd)},
        "total_usd": _usd(spot_usd + on_demand_usd + lambda_usd + step_functions_usd),
        "on_demand_equivalent_usd": _usd(all_on_demand_usd + lambda_usd + step_functions_usd),
        "prices": {"date": table.date, "region": used_region, "source": table.source},
    }
