"""Settings come from the template's variables, typed, and fail fast with the variable's name."""

from __future__ import annotations

import pytest

from jobcore.config import ConfigError, LaunchSettings, PollSettings, StartJobSettings
from tests.unit.conftest import FUNCTION_ENV


def test_every_function_setting_parses_from_the_template_environment() -> None:
    launch = LaunchSettings.from_env(FUNCTION_ENV)
    assert launch.subnet_ids == ["subnet-0aaa", "subnet-0bbb"]
    assert launch.security_group_ids == ["sg-0ccc"]
    assert launch.lambda_memory_mb == 256
    poll = PollSettings.from_env(FUNCTION_ENV)
    assert (poll.min_wait, poll.max_wait, poll.item_timeout_seconds) == (10, 300, 240 * 60)
    start = StartJobSettings.from_env(FUNCTION_ENV)
    assert start.processors == ["csv-profile", "command", "noop"]


def test_empty_lists_and_fractional_seconds() -> None:
    # GIVEN the template's empty comma lists and fractional poll bounds
    env = {**FUNCTION_ENV, "SECURITY_GROUP_IDS": "", "POLL_MIN_SECONDS": "0.5", "POLL_MAX_SECONDS": "2.2"}

    # THEN the lists are empty and Wait seconds are rounded up to whole numbers
    assert LaunchSettings.from_env(env).security_group_ids == []
    poll = PollSettings.from_env(env)
    assert (poll.min_wait, poll.max_wait) == (1, 3)


def test_missing_and_malformed_variables_are_named() -> None:
    env = {key: value for key, value in FUNCTION_ENV.items() if key != "CLUSTER_ARN"}
    env["ITEM_TIMEOUT_MINUTES"] = "soon"
    with pytest.raises(ConfigError) as raised:
        PollSettings.from_env(env)
    assert "CLUSTER_ARN is not set" in str(raised.value)
    assert "ITEM_TIMEOUT_MINUTES" in str(raised.value) and "'soon'" in str(raised.value)


def test_poll_bounds_must_be_ordered() -> None:
    with pytest.raises(ConfigError, match="POLL_MAX_SECONDS"):
        PollSettings.from_env({**FUNCTION_ENV, "POLL_MAX_SECONDS": "5"})


def test_functions_and_worker_share_one_config_error() -> None:
    # GIVEN the worker's environment with two problems
    from worker.errors import EXIT_CONFIG
    from worker.errors import ConfigError as WorkerConfigError
    from worker.runner import WorkerConfig

    env = {"JOB_BUCKET": "bucket", "JOB_ID": "job-1", "ITEM_INDEX": "one", "ATTEMPT": " "}

    # WHEN it is read THEN the one ConfigError names both, and the worker exits 2 with it
    with pytest.raises(ConfigError) as raised:
        WorkerConfig.from_env(env)
    assert WorkerConfigError is ConfigError and EXIT_CONFIG == ConfigError.exit_code == 2
    assert str(raised.value) == (
        "bad worker configuration: ITEM_INDEX must be a non-negative integer (got 'one'); ATTEMPT is not set"
    )

