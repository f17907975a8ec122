"""One observability module for every handler (jobcore/observability.py): the handler decorator puts the
Lambda context and the job in every log line and flushes the invocation's metrics as one EMF line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobcore import observability
from jobcore.config import EvaluateJobSettings
from tests.unit.conftest import HANDLER_MODULES


def test_a_handler_logs_with_its_context_and_flushes_its_counts(
    lambda_context: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a handler decorated by the observability module that names its job and counts twice
    @observability.handler
    def handle(event: dict[str, Any], context: Any) -> str:
        observability.log_job(event["job_id"])
        observability.count("ThingsDone")
        observability.count("ThingsDone", 2)
        observability.logger.info("did things")
        return "done"

    # WHEN it is invoked
    with caplog.at_level("INFO"):
        assert handle({"job_id": "job-1"}, lambda_context) == "done"

    # THEN its log line (as Powertools formats it) carries the Lambda context and the job
    (record,) = [record for record in caplog.records if record.getMessage() == "did things"]
    logged = json.loads(observability.logger.registered_formatter.format(record))
    assert logged["job_id"] == "job-1"
    assert logged["function_name"] == lambda_context.function_name
    # AND one EMF document holds the counts
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (emf,) = [line for line in lines if "_aws" in line]
    assert emf["ThingsDone"] == [1.0, 2.0]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "ThingsDone", "Unit": "Count"}]


def test_settings_are_read_once_until_the_cache_is_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a loader of EvaluateJob's settings over an environment
    monkeypatch.setenv("JOB_BUCKET", "first")
    monkeypatch.setenv("TOLERATED_FAILURE_PERCENTAGE", "5")
    settings = observability.settings_loader(EvaluateJobSettings)

    # WHEN the environment changes after the first call
    first = settings()
    monkeypatch.setenv("JOB_BUCKET", "second")

    # THEN the instance keeps its settings until the cache is cleared
    assert settings() is first and first.job_bucket == "first"
    settings.cache_clear()
    assert settings().job_bucket == "second"


@pytest.mark.parametrize("module_name", HANDLER_MODULES)
def test_every_handler_uses_the_one_module(module_name: str) -> None:
    # GIVEN a handler module WHEN imported THEN its logger and settings loader come from jobcore.observability
    import importlib

    module = importlib.import_module(module_name)
    assert module.logger is observability.logger
    assert callable(module.settings) and hasattr(module.settings, "cache_clear")
