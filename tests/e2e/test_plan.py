"""`spotmap plan` against the local cloud, whose Fargate vCPU quotas are configurable, and the same
warnings in the job StartJob starts (jobcore.planning)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner
from spotmap.product import read_json

SWEEP = {
    "processor": "command",
    "params": {"command": ["python3", "-c", 'print(\'{"runs": {"$sum": 1}}\')']},
    "source": {"count": 8},
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    # MaxConcurrency 4 tasks of 1 vCPU (TaskCpu 1024), and an account with 2 Fargate Spot vCPUs
    params = {"MaxConcurrency": "4", "TaskCpu": "1024", "PollMinSeconds": "1", "PollMaxSeconds": "1"}
    options = CloudOptions(
        parameters=params, state_dir=tmp_path_factory.mktemp("state"), fargate_spot_vcpu_quota=2.0
    )
    with LocalCloud(options=options) as running:
        yield running


def _plan(cloud: LocalCloud, path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> list[str]:
    """`spotmap plan` as a user types it against the running local cloud; its printed lines."""
    capsys.readouterr()
    argv = ["plan", str(path), "--endpoint-url", cloud.endpoint, "--item-seconds", "10", *extra]
    argv += [
        arg
        for name, value in cloud.stack.parameters.items()
        if name in ("MaxConcurrency", "TaskCpu")
        for arg in ("--param", f"{name}={value}")
    ]
    assert spotmap_main(argv) == 0
    return capsys.readouterr().out.splitlines()


def test_a_spot_quota_that_binds_is_warned_about_by_plan_and_by_the_job(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a sweep of 8 items, MaxConcurrency 4, and 2 Spot vCPUs in the (local) account
    path = tmp_path / "sweep.job.json"
    path.write_text(json.dumps(SWEEP), encoding="utf-8")

    # WHEN it is planned
    lines = [line.strip() for line in _plan(cloud, path, capsys)]
    plan: dict[str, Any] = json.loads("\n".join(_plan(cloud, path, capsys, "--json")))

    # THEN the plan reads the quota from the cloud's Service Quotas and says it sets the pace
    source = f"Service Quotas L-36FBB829, the local cloud at {cloud.endpoint}"
    assert "items: 8   tasks: 8 (one per item)" in lines
    assert "concurrency: 2 task(s) at once (MaxConcurrency 4)   waves: 4" in lines
    assert f"Fargate Spot vCPU quota: 2 ({source}): 2 task(s) at once" in lines
    warning = (
        f"the Fargate Spot vCPU quota sets the pace: 2 vCPUs ({source}) run 2 task(s) of 1 vCPU at once, "
        "not 4 (4 vCPUs needed): 4 wave(s) instead of 2; ask for more in Service Quotas (fargate L-36FBB829)"
    )
    assert f"WARNING: {warning}" in lines
    assert plan["warnings"] == [warning]
    assert plan["estimate"]["paced_by"] == "the Fargate Spot vCPU quota"

    # AND WHEN the job runs, THEN StartJob (reading the quota through its own role) put the same warning
    # into the job descriptor, and the summary repeats it
    runner = JobRunner(cloud, progress=None)
    (summary,) = runner.wait([watch := runner.submit(path)], timeout=300)
    assert summary is not None and summary["status"] == "SUCCEEDED", summary
    descriptor = read_json(cloud.client("s3"), cloud.stack.bucket, f"jobs/{watch.job_id}/job.json")
    assert descriptor["warnings"] == [warning.replace(f"the local cloud at {cloud.endpoint}", "this account")]
    assert summary["warnings"] == descriptor["warnings"]
    # AND the job kept within the quota, which the local Fargate enforces as AWS does (RunTask over it
    # starts nothing): the Map ran 2 items at once, not MaxConcurrency's 4, and none failed
    assert descriptor["max_concurrency"] == 2
    assert _most_tasks_at_once(cloud, watch.job_id) == 2
    assert summary["items"] == {"total": 8, "succeeded": 8, "failed": 0}


def _most_tasks_at_once(cloud: LocalCloud, job_id: str) -> int:
    """The most of the job's tasks that were not yet STOPPED at one moment (local Fargate's records)."""
    tasks = [task for task in cloud.fargate.tasks.values() if task.started_by == job_id]
    moments = sorted(
        [(task.created_at, 1) for task in tasks] + [(task.stopped_at or 0.0, -1) for task in tasks],
        key=lambda moment: (moment[0], moment[1]),
    )
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def test_a_quota_that_does_not_bind_leaves_the_work_to_set_the_pace(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the same sweep, planned for an account with 8 Spot vCPUs (the flag overrides Service Quotas)
    path = tmp_path / "sweep.job.json"
    path.write_text(json.dumps(SWEEP), encoding="utf-8")

    # WHEN it is planned
    lines = [line.strip() for line in _plan(cloud, path, capsys, "--fargate-spot-vcpu-quota", "8")]

    # THEN all 4 run at once, in 2 waves paced by MaxConcurrency, and nothing is warned about
    assert "concurrency: 4 task(s) at once (MaxConcurrency 4)   waves: 2" in lines
    assert "Fargate Spot vCPU quota: 8 (--fargate-spot-vcpu-quota): 8 task(s) at once" in lines
    assert "estimated wall time: 0:24 (24 s), paced by MaxConcurrency" in lines  # 2 waves × (2 s + 10 s)
    assert not [line for line in lines if line.startswith("WARNING")]


def readme_block(name: str) -> str:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    return readme.split(f"<!-- {name}:begin -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0]


def test_the_readme_plan_runs_as_written_and_prints_what_it_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the README's manifest, saved where the command runs
    section = readme_block("plan")
    name, body = re.search(r"```json file=(\S+)\n(.*?)```", section, re.S).groups()  # type: ignore[union-attr]
    (tmp_path / name).write_text(body, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPOTMAP_ROOT", str(Path(__file__).resolve().parents[2]))

    # WHEN its command runs exactly as written
    command = re.search(r"```bash run\n(.*?)```", section, re.S).group(1).strip()  # type: ignore[union-attr]
    words = shlex.split(command)
    assert words[0] == ".venv/bin/spotmap"
    capsys.readouterr()
    assert spotmap_main(words[1:]) == 0

    # THEN it prints what the README shows, line for line
    shown = re.search(r"```text output\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    assert capsys.readouterr().out == shown
