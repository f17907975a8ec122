"""Bring your own workload: job manifests through the local cloud."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    params = {"MaxConcurrency": "50", "PollMinSeconds": "1", "PollMaxSeconds": "2"}
    options = CloudOptions(parameters=params, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


def run_manifest(cloud: LocalCloud, tmp_path: Path, name: str, document: dict | str) -> dict:
    path = tmp_path / f"{name}.job.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), encoding="utf-8")
    runner = JobRunner(cloud, progress=None)
    watch = runner.submit(path)
    (summary,) = runner.wait([watch], timeout=600)
    assert summary is not None, watch
    return summary


def test_a_prefix_job_makes_one_item_per_object(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN 1,000 small CSV objects under data/logs/ (and one folder marker)
    s3 = cloud.client("s3")
    bucket = cloud.stack.bucket

    def put(index: int) -> None:
        s3.put_object(Bucket=bucket, Key=f"data/logs/part-{index:04d}.csv", Body=f"n\n{index}\n".encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(1000)))
    s3.put_object(Bucket=bucket, Key="data/logs/", Body=b"")

    # WHEN a manifest profiles every object under the prefix
    summary = run_manifest(
        cloud, tmp_path, "logs", {"processor": "csv-profile", "source": {"prefix": "data/logs/"}}
    )

    # THEN there was one item per object and the merged profile covers them all
    assert summary["status"] == "SUCCEEDED", summary.get("failures", [])[:3]
    assert summary["items"] == {"total": 1000, "succeeded": 1000, "failed": 0}
    column = summary["result"]["columns"]["n"]
    assert summary["result"]["rows"] == 1000
    assert (column["min"], column["max"], column["sum"]) == (0, 999, sum(range(1000)))


def test_a_sweep_of_200_parameter_sets_with_the_command_processor(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN 200 parameter sets for an unchanged program that prints its result as a JSON line
    program = (
        "import json, math, os; a = float(os.environ['SPOTMAP_PARAM_A']); b = int('{b}');"
        "print('working...'); print(json.dumps({'runs': {'$sum': 1}, 'total': {'$sum': a * b},"
        " 'peak': {'$max': math.hypot(a, b)}}))"
    )
    items = [{"a": a, "b": b} for a in range(20) for b in range(10)]

    # WHEN the sweep runs
    summary = run_manifest(
        cloud,
        tmp_path,
        "sweep",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", program]},
            "source": {"items": items},
        },
    )

    # THEN every parameter set ran once and the merged result is exact
    assert summary["status"] == "SUCCEEDED", summary.get("failures", [])[:3]
    assert summary["items"]["succeeded"] == 200
    assert summary["result"]["runs"] == 200
    assert summary["result"]["total"] == sum(item["a"] * item["b"] for item in items)
    assert summary["result"]["peak"] == pytest.approx(math.hypot(19, 9))


def test_a_monte_carlo_count_gives_every_item_its_own_seed(cloud: LocalCloud, tmp_path: Path) -> None:
    # GIVEN 50 seeds starting at 1000
    program = "import json; print(json.dumps({'seeds': {'$sum': {seed}}, 'lowest': {'$min': {seed}}}))"

    # WHEN the job runs
    summary = run_manifest(
        cloud,
        tmp_path,
        "montecarlo",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", program]},
            "source": {"count": 50, "seed_start": 1000},
        },
    )

    # THEN each item saw its own seed
    assert summary["result"] == {"seeds": sum(range(1000, 1050)), "lowest": 1000}


@pytest.mark.parametrize(
    ("name", "document", "message"),
    [
        ("bad-json", '{"processor": "noop", "source": {"count": 3}', "not valid JSON"),
        ("unknown-processor", {"processor": "render", "source": {"count": 3}}, "'render' is not provided"),
        ("missing-source", {"processor": "noop"}, "source"),
        (
            "both-sources",
            {"processor": "noop", "source": {"count": 3, "items": [{}]}},
            "exactly one of shard, keys, prefix, items, count",
        ),
        ("wrong-types", {"processor": "noop", "source": {"count": "three"}}, "source.count"),
        (
            # one sweep item of 300,000 bytes: more than a 256 KiB state can carry
            "huge-item",
            {"processor": "noop", "source": {"items": [{"x": 1}, {"blob": "b" * 300_000}]}},
            "item 1 is too large for the state machine: it is 300,",
        ),
    ],
)
def test_malformed_manifests_fail_clearly_and_start_no_task(
    cloud: LocalCloud, tmp_path: Path, name: str, document: dict | str, message: str
) -> None:
    # GIVEN the tasks started so far
    started = cloud.fargate.counters["run_task"]

    # WHEN a malformed manifest is uploaded
    summary = run_manifest(cloud, tmp_path, name, document)

    # THEN its job FAILED with a message naming the problem, and no task was started
    assert summary["status"] == "FAILED"
    assert message in summary["error"]
    assert summary["items"]["total"] == 0
    assert cloud.fargate.counters["run_task"] == started
