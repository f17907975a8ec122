"""samconfig.toml: deployable environments with nothing account-specific, and the local
environment's overrides name parameters the template declares."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest

from tools.expand_template import ROOT, load_template


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("environment", ["default", "prod"])
def test_deploy_environments_are_safe_and_portable(config: dict[str, Any], environment: str) -> None:
    # GIVEN a deployable environment
    deploy = config[environment]["deploy"]["parameters"]
    stack = {**config[environment].get("global", {}).get("parameters", {}), **deploy}
    # THEN SAM manages its artifact bucket, IAM changes are acknowledged, changesets are confirmed
    assert stack["stack_name"]
    assert deploy["resolve_s3"] is True
    assert "s3_bucket" not in deploy
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["confirm_changeset"] is True
    assert stack["region"]


def test_default_and_prod_deploy_different_stacks(config: dict[str, Any]) -> None:
    # GIVEN both environments
    names = [config[env]["global"]["parameters"]["stack_name"] for env in ("default", "prod")]
    # THEN deploying one never updates the other
    assert len(set(names)) == 2


def test_no_account_specific_values_are_committed() -> None:
    # GIVEN the text of samconfig.toml
    text = (ROOT / "samconfig.toml").read_text(encoding="utf-8")
    # THEN it holds no account id, ARN or bucket of anyone's account
    assert not re.search(r"\b\d{12}\b", text)
    assert "arn:" not in text
    assert "s3_bucket" not in text


def test_local_overrides_name_declared_parameters(config: dict[str, Any]) -> None:
    # GIVEN the overrides the local cloud applies
    raw = config["local"]["deploy"]["parameters"]["parameter_overrides"]
    overrides = dict(pair.split("=", 1) for pair in shlex.split(raw))
    # THEN they are short polls, a short heartbeat period (a lost task event costs 10 s, and short item
    # timeouts are enforced within 10 s) and small shards, for parameters the template declares
    assert overrides == {
        "PollMinSeconds": "1",
        "PollMaxSeconds": "5",
        "ShardSizeMB": "1",
        "ItemTimeoutMinutes": "30",
        "TaskHeartbeatSeconds": "10",
    }
    assert set(overrides) <= set(load_template()["Parameters"])
