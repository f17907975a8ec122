"""The cost block against a hand computation, and price overrides."""

from __future__ import annotations

import json

import pytest

from jobcore.cost import PRICE_TABLES, PriceError, cost_block
from jobcore.models import Capacity, Usage


def usage() -> Usage:
    # 1 vCPU / 2 GB for one hour on Spot, 0.5 h on-demand, 10 Lambda calls of 0.5 s at 512 MB, 40 transitions
    result = Usage().add_task(Capacity.SPOT, 1.0, 2.0, 3600).add_task(Capacity.ON_DEMAND, 1.0, 2.0, 1800)
    for _ in range(10):
        result = result.add_lambda(512, 0.5, 4)
    return result


def test_cost_matches_a_hand_computation() -> None:
    # GIVEN the usage above, priced in us-east-1 without the parent execution's transitions
    block = cost_block(usage(), "us-east-1", prices={}, parent_transitions=0)

    # THEN every figure matches the published prices (by hand)
    spot = 1 * 0.012144 + 2 * 0.0013335  # one hour
    on_demand = 0.5 * 0.04048 + 0.5 * 2 * 0.004445
    lam = 10 * 0.20 / 1e6 + 10 * 0.5 * 0.5 * 0.0000166667  # 0.5 GB × 0.5 s each
    sfn = 40 * 0.025 / 1000
    assert block["fargate"]["spot"] == {
        "vcpu_seconds": 3600,
        "gb_seconds": 7200,
        "usd": pytest.approx(spot, abs=1e-6),
    }
    assert block["fargate"]["on_demand"]["usd"] == pytest.approx(on_demand, abs=1e-6)
    assert block["lambda"] == {"invocations": 10, "gb_seconds": 2.5, "usd": pytest.approx(lam, abs=1e-6)}
    assert block["step_functions"] == {"state_transitions": 40, "usd": pytest.approx(sfn, abs=1e-6)}
    assert block["total_usd"] == pytest.approx(spot + on_demand + lam + sfn, abs=1e-5)
    all_on_demand = 1.5 * 0.04048 + 1.5 * 2 * 0.004445
    assert block["on_demand_equivalent_usd"] == pytest.approx(all_on_demand + lam + sfn, abs=1e-5)
    assert block["prices"]["region"] == "us-east-1"
    assert block["prices"]["date"] == PRICE_TABLES["us-east-1"].date


def test_spot_is_about_seventy_percent_cheaper_than_on_demand() -> None:
    table = PRICE_TABLES["us-east-1"]
    assert table.fargate_spot_vcpu_hour / table.fargate_vcpu_hour == pytest.approx(0.30, abs=0.01)
    assert set(PRICE_TABLES) >= {"us-east-1", "eu-west-1"}


def test_unknown_region_falls_back_to_us_east_1() -> None:
    assert cost_block(Usage(), "ap-south-2", prices={})["prices"]["region"] == "us-east-1"


def test_prices_are_overridable_by_argument_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a region-specific override in SPOTMAP_PRICES and a flat one passed in
    monkeypatch.setenv("SPOTMAP_PRICES", json.dumps({"eu-west-1": {"state_transition": 1.0}}))
    transitions_only = Usage().add_lambda(128, 0, 3)

    # WHEN / THEN each applies
    env_block = cost_block(transitions_only, "eu-west-1", parent_transitions=0)
    assert env_block["step_functions"]["usd"] == 3.0
    arg_block = cost_block(
        transitions_only, "us-east-1", prices={"state_transition": 2.0}, parent_transitions=0
    )
    assert arg_block["step_functions"]["usd"] == 6.0


def test_a_malformed_override_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOTMAP_PRICES", "{not json")
    with pytest.raises(PriceError, match="SPOTMAP_PRICES"):
        cost_block(Usage(), "us-east-1")
