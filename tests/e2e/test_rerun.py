"""Rerun only what failed: `spotmap rerun JOB_ID` over the local cloud (jobcore.rerun)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest

from spotmap.cli import main as spotmap_main
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner, JobWatch
from tests.e2e.conftest import write_csv

DATA_KEYS = [f"data/rerun/part-{index}.csv" for index in range(4)]
BAD_ITEMS = (1, 3)
INVALID_UTF8 = b"\xff\xfe not UTF-8\n"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    params = {"MaxConcurrency": "4", "PollMinSeconds": "1", "PollMaxSeconds": "1"}
    options = CloudOptions(parameters=params, state_dir=tmp_path_factory.mktemp("state"))
    with LocalCloud(options=options) as running:
        yield running


def _put_parts(
    cloud: LocalCloud, tmp_path: Path, broken: tuple[int, ...], keys: list[str] = DATA_KEYS
) -> None:
    """Four CSV objects of floats (sums that depend on their order, to the last bit); `broken` ones
    end in bytes that are not UTF-8, which fails their item."""
    s3 = cloud.client("s3")
    for index, key in enumerate(keys):
        body = write_csv(tmp_path / f"part-{index}.csv", rows=300, seed=10 + index).read_bytes()
        s3.put_object(
            Bucket=cloud.stack.bucket, Key=key, Body=body + (INVALID_UTF8 if index in broken else b"")
        )


def _run_manifest(cloud: LocalCloud, tmp_path: Path, name: str, document: dict[str, Any]) -> dict[str, Any]:
    path = tmp_path / f"{name}.job.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    runner = JobRunner(cloud, progress=None)
    (summary,) = runner.wait([runner.submit(path)], timeout=300)
    assert summary is not None
    return summary


def _readme_rerun_command() -> str:
    """The README's `spotmap rerun` line for a job of `spotmap local serve`."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- rerun:begin -->", 1)[1].split("<!-- rerun:end -->", 1)[0]
    return next(line.split("#")[0].strip() for line in section.splitlines() if "--endpoint-url" in line)


def _rerun(cloud: LocalCloud, job_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The README's `spotmap rerun <job_id> --endpoint-url ...`, for this job and this local cloud, then
    wait for the new job."""
    command = _readme_rerun_command().replace("<job_id>", job_id)
    words = shlex.split(command.replace("http://127.0.0.1:4566", cloud.endpoint))
    assert words[0] == ".venv/bin/spotmap"
    capsys.readouterr()
    assert spotmap_main(words[1:]) == 0
    new_id = capsys.readouterr().out.strip().splitlines()[-1]
    key = f"input/rerun-{job_id}.job.json"
    arn = cloud.stack.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{new_id}"
    runner = JobRunner(cloud, progress=None)
    (summary,) = runner.wait([JobWatch(Path(key), key, new_id, arn)], timeout=300)
    assert summary is not None, f"no summary for rerun job {new_id}"
    return summary


def _launched_items(cloud: LocalCloud, job_id: str) -> list[int]:
    """The item index of every task the local Fargate started for the job (ECS startedBy = job id)."""
    return sorted(
        int(task.env["ITEM_INDEX"]) for task in cloud.fargate.tasks.values() if task.started_by == job_id
    )


def test_a_rerun_after_the_input_is_fixed_launches_only_the_failed_items_and_equals_a_clean_job(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job over four objects of which two are not valid UTF-8: those two items fail
    _put_parts(cloud, tmp_path, broken=BAD_ITEMS)
    manifest = {"processor": "csv-profile", "source": {"keys": DATA_KEYS}}
    first = _run_manifest(cloud, tmp_path, "parts", manifest)
    assert first["status"] == "FAILED"
    assert [failure["index"] for failure in first["failures"]] == list(BAD_ITEMS)

    # WHEN the two objects are fixed (uploaded again under the same keys) and the job is rerun
    _put_parts(cloud, tmp_path, broken=())
    rerun = _rerun(cloud, first["job_id"], capsys)

    # THEN only the failed items were launched, once each
    assert _launched_items(cloud, rerun["job_id"]) == list(BAD_ITEMS)
    assert rerun["attempts"]["launched"] == len(BAD_ITEMS)
    # AND the rerun's summary is complete and says what it reran
    assert rerun["status"] == "SUCCEEDED", rerun["error"]
    assert rerun["items"] == {"total": 4, "succeeded": 4, "failed": 0}
    assert rerun["rerun_of"] == first["job_id"]
    assert rerun["rerun"] == {"of": first["job_id"], "items_rerun": 2, "items_inherited": 2, "note": None}
    assert (rerun["processor"], rerun["params"]) == (first["processor"], first["params"])

    # AND its merged result is, to the last bit, a clean job's over the fixed input
    clean = _run_manifest(cloud, tmp_path, "parts-clean", manifest)
    assert clean["status"] == "SUCCEEDED"
    assert json.dumps(rerun["result"], sort_keys=True) == json.dumps(clean["result"], sort_keys=True)
    assert rerun["items"] == clean["items"]

    # AND a rerun of the rerun (nothing failed) is a clear no-op: nothing launched, same result
    again = _rerun(cloud, rerun["job_id"], capsys)
    assert again["status"] == "SUCCEEDED", again["error"]
    assert _launched_items(cloud, again["job_id"]) == []
    assert again["rerun"]["items_rerun"] == 0
    assert again["rerun"]["note"] == (
        f"job {rerun['job_id']} had no failed items: nothing was rerun, and this job's result is "
        f"{rerun['job_id']}'s"
    )
    assert json.dumps(again["result"], sort_keys=True) == json.dumps(clean["result"], sort_keys=True)
    assert again["items"] == {"total": 4, "succeeded": 4, "failed": 0}


def test_a_rerun_of_a_rerun_inherits_along_the_chain(
    cloud: LocalCloud, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a job whose items 1 and 3 failed, and a rerun after fixing only item 1's input
    keys = [key.replace("data/rerun/", "data/chain/") for key in DATA_KEYS]
    manifest = {"processor": "csv-profile", "source": {"keys": keys}}
    _put_parts(cloud, tmp_path, broken=(1, 3), keys=keys)
    first = _run_manifest(cloud, tmp_path, "chain", manifest)
    _put_parts(cloud, tmp_path, broken=(3,), keys=keys)
    second = _rerun(cloud, first["job_id"], capsys)
    assert _launched_items(cloud, second["job_id"]) == [1, 3]
    assert second["status"] == "FAILED"
    assert [failure["index"] for failure in second["failures"]] == [3]
    assert second["items"] == {"total": 4, "succeeded": 3, "failed": 1}

    # WHEN item 3's input is fixed too and the rerun is rerun
    _put_parts(cloud, tmp_path, broken=(), keys=keys)
    third = _rerun(cloud, second["job_id"], capsys)

    # THEN only item 3 ran, and the result (items 0 and 2 from the first job, 1 from the second, 3 from
    # the third) is a clean job's, to the last bit
    assert _launched_items(cloud, third["job_id"]) == [3]
    assert third["status"] == "SUCCEEDED", third["error"]
    assert third["rerun"] == {"of": second["job_id"], "items_rerun": 1, "items_inherited": 3, "note": None}
    clean = _run_manifest(cloud, tmp_path, "chain-clean", manifest)
    assert json.dumps(third["result"], sort_keys=True) == json.dumps(clean["result"], sort_keys=True)


def test_a_rerun_of_a_job_that_does_not_exist_is_a_failed_summary_saying_so(
    cloud: LocalCloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no job named no-such-job-0123456789abcdef
    # WHEN it is rerun
    summary = _rerun(cloud, "no-such-job-0123456789abcdef", capsys)

    # THEN the rerun job's summary is FAILED and says the job does not exist; nothing was launched
    assert summary["status"] == "FAILED"
    assert "job no-such-job-0123456789abcdef does not exist" in summary["error"]
    assert _launched_items(cloud, summary["job_id"]) == []
