"""Checkpoints across a Spot reclaim, on the local cloud: an item interrupted mid-run resumes from its
checkpoint on the relaunch, does not redo the work before it, and gives the result of a run that was
never interrupted. Once for a Python processor (which saves when it is told to stop) and once for the
command processor (whose checkpoint directory the worker saves when the command stops)."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobcore import layout
from spotmap.cloud import CloudOptions, LocalCloud
from spotmap.jobs import JobRunner
from tests.e2e.conftest import wait_for
from tests.e2e.test_container_runtime import worker_image  # noqa: F401 - the image fixture

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PARTS = ("template.yaml", "samconfig.toml", "statemachine", "functions", "worker")
UNITS = 24  # at 0.25 s each: 5 s of margin between seeing 3 units and the end (a loaded machine)
UNIT_SECONDS = 0.25
INTERRUPT_AFTER_UNITS = 3

# A cooperative Python processor that saves a checkpoint only when it is told to stop (SIGTERM): what it
# did before the reclaim survives only through the grace the worker gives it.
SQUARES_PROCESSOR = '''
import time

from worker.api import Context, processor


@processor("slow-squares", cooperative=True)
def slow_squares(ctx: Context) -> dict:
    """Adds up i * i for i < n, one unit at a time; checkpoints when told to stop."""
    state = ctx.resume_from() or {"next": 0, "total": 0}
    for i in range(state["next"], int(ctx.params["n"])):
        if ctx.cancelled:  # a Spot reclaim: save, then stop (checkpoint() raises Terminated)
            ctx.checkpoint(state, progress=state["next"])
        time.sleep(float(ctx.params["unit_seconds"]))
        ctx.log.info("unit done", extra={"unit": i})
        state = {"next": i + 1, "total": state["total"] + i * i}
    return {"sum_of_squares": {"$sum": state["total"]}, "units": {"$sum": int(ctx.params["n"])}}
'''

# A command that keeps its state in $SPOTMAP_CHECKPOINT_DIR (written whole, then renamed) and dies of
# the SIGTERM the worker forwards: the worker saves the directory once it has stopped.
SQUARES_COMMAND = """
import json, os, time
state_file = os.path.join(os.environ["SPOTMAP_CHECKPOINT_DIR"], "state.json")
state = {"next": 0, "total": 0}
if os.path.exists(state_file):
    with open(state_file) as f:
        state = json.load(f)
    print(f"resuming at {state['next']}", flush=True)
n = int(os.environ["SPOTMAP_PARAM_N"])
for i in range(state["next"], n):
    time.sleep(float(os.environ["SPOTMAP_PARAM_UNIT_SECONDS"]))
    print(f"unit {i}", flush=True)
    state = {"next": i + 1, "total": state["total"] + i * i}
    with open(state_file + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(state_file + ".tmp", state_file)
print(json.dumps({"sum_of_squares": {"$sum": state["total"]}, "units": {"$sum": n}}))
"""

EXPECTED = {"sum_of_squares": sum(i * i for i in range(UNITS)), "units": UNITS}


@dataclass
class Cloud:
    cloud: LocalCloud
    runner: JobRunner
    manifests: Path


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """A local cloud over a copy of the project whose image also provides `slow-squares`."""
    project = tmp_path_factory.mktemp("project")
    for part in PROJECT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / part)
    (project / "worker" / "processors" / "slow_squares.py").write_text(SQUARES_PROCESSOR, encoding="utf-8")
    options = CloudOptions(
        parameters={
            "Processors": "csv-profile,command,noop,slow-squares",
            "PollMinSeconds": "1",
            "PollMaxSeconds": "1",
        },
        state_dir=project / ".spotmap",
    )
    with LocalCloud(root=project, options=options) as local:
        yield Cloud(local, JobRunner(local, progress=None), project)


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _tasks_of(cloud: LocalCloud, job_id: str) -> list[Any]:
    return sorted(
        (task for task in list(cloud.fargate.tasks.values()) if task.env.get("JOB_ID") == job_id),
        key=lambda task: int(task.env["ATTEMPT"]),
    )


def _log_lines(task: Any) -> list[dict[str, Any]]:
    if not task.log_path.exists():
        return []
    lines = []
    for line in task.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def _units(task: Any) -> list[int]:
    """The units a task's log says it finished: the Python processor's `unit done` lines, or the
    command's `unit <i>` stdout lines."""
    found = []
    for line in _log_lines(task):
        if line.get("message") == "unit done":
            found.append(int(line["unit"]))
        elif line.get("stream") == "stdout" and str(line.get("message", "")).startswith("unit "):
            found.append(int(line["message"].split()[1]))
    return found


def _resumed_at(task: Any) -> Any:
    """The unit a task resumed at: the progress of the checkpoint the worker says it resumed from (the
    Python processor's), or what the command says it found in its checkpoint directory."""
    for line in _log_lines(task):
        message = str(line.get("message", ""))
        if message == "resuming from a checkpoint" and line.get("progress") is not None:
            return line["progress"]
        if line.get("stream") == "stdout" and message.startswith("resuming at "):
            return int(message.split()[-1])
    return None


def _checkpoint_meta(cloud: LocalCloud, job_id: str) -> dict[str, Any] | None:
    s3 = cloud.client("s3")
    try:
        body = s3.get_object(Bucket=cloud.stack.bucket, Key=layout.checkpoint_key(job_id, 0))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        meta = tar.extractfile("checkpoint.json")
        assert meta is not None
        return json.load(meta)


def _interrupt_mid_run(env: Cloud, manifest: dict[str, Any], name: str) -> tuple[dict, dict, list[Any]]:
    """Run `manifest` twice at once: one job is reclaimed once its first attempt has finished
    INTERRUPT_AFTER_UNITS units, the other runs undisturbed. Returns both summaries and the tasks of
    the interrupted job."""
    interrupted = env.runner.submit(_write(env.manifests / f"{name}-interrupted.job.json", manifest))
    steady = env.runner.submit(_write(env.manifests / f"{name}-steady.job.json", manifest))
    assert interrupted.job_id and steady.job_id

    def first_attempt_far_enough() -> Any:
        tasks = _tasks_of(env.cloud, str(interrupted.job_id))
        if tasks and len(_units(tasks[0])) >= INTERRUPT_AFTER_UNITS:
            return tasks[0]
        return None

    first = wait_for(first_attempt_far_enough, f"attempt 1 to finish {INTERRUPT_AFTER_UNITS} units")
    assert env.cloud.fargate.interrupt(first.arn)  # a Spot reclaim: SIGTERM, the stop timeout, SIGKILL
    summaries = env.runner.wait([interrupted, steady], timeout=120)
    assert summaries[0] is not None and summaries[1] is not None
    return summaries[0], summaries[1], _tasks_of(env.cloud, str(interrupted.job_id))


def _assert_resumed_without_redoing(summary: dict, steady: dict, tasks: list[Any], env: Cloud) -> None:
    # THEN the interrupted item was relaunched once, and the relaunch resumed from the checkpoint
    assert summary["status"] == "SUCCEEDED", summary
    assert [task.stop_code for task in tasks] == ["SpotInterruption", "EssentialContainerExited"]
    first, second = (_units(task) for task in tasks)
    resumed_at = _resumed_at(tasks[1])
    assert isinstance(resumed_at, int) and resumed_at >= INTERRUPT_AFTER_UNITS, resumed_at
    # ... the work before the checkpoint was done by attempt 1 and not redone by attempt 2
    assert first[:resumed_at] == list(range(resumed_at))
    assert second == list(range(resumed_at, UNITS))
    # ... the result is the undisturbed job's, and the right one
    assert steady["status"] == "SUCCEEDED"
    assert steady["checkpoints"]["resumed_attempts"] == 0
    assert summary["result"] == steady["result"] == EXPECTED
    # ... the summary counts the resumed attempt, and the checkpoint is gone once the item succeeded
    assert summary["attempts"]["spot_interruptions"] == 1
    assert summary["checkpoints"]["items_resumed"] == 1
    assert summary["checkpoints"]["resumed_attempts"] == 1
    assert summary["checkpoints"]["saved_seconds"] > 0
    assert _checkpoint_meta(env.cloud, summary["job_id"]) is None
    return None


def test_a_python_processor_resumes_from_the_checkpoint_it_saved_when_reclaimed(cloud: Cloud) -> None:
    # GIVEN a processor of UNITS units that saves its progress when told to stop, and two jobs of it
    manifest = {
        "processor": "slow-squares",
        "params": {"n": UNITS, "unit_seconds": UNIT_SECONDS},
        "source": {"count": 1},
    }

    # WHEN one job's first attempt is reclaimed after 3 units, the other runs undisturbed
    summary, steady, tasks = _interrupt_mid_run(cloud, manifest, "squares")

    # THEN (above) it resumed where the checkpoint says and the result is the undisturbed one; the
    # processor reported its units, so the work saved is counted in them
    _assert_resumed_without_redoing(summary, steady, tasks, cloud)
    assert summary["checkpoints"]["saved_units"] == _resumed_at(tasks[1])


def test_a_command_resumes_from_its_checkpoint_directory_when_reclaimed(cloud: Cloud) -> None:
    # GIVEN a command of UNITS units that keeps its state in $SPOTMAP_CHECKPOINT_DIR, and two jobs of it
    manifest = {
        "processor": "command",
        "params": {"command": ["python3", "-c", SQUARES_COMMAND], "n": UNITS, "unit_seconds": UNIT_SECONDS},
        "source": {"count": 1},
    }

    # WHEN one job's first attempt is reclaimed after 3 units, the other runs undisturbed
    summary, steady, tasks = _interrupt_mid_run(cloud, manifest, "command")

    # THEN the worker saved the directory when the command stopped; the relaunch found it restored,
    # went on from there, and the result is the undisturbed one
    _assert_resumed_without_redoing(summary, steady, tasks, cloud)


def test_a_command_in_the_worker_image_resumes_from_its_checkpoint_directory(
    tmp_path: Path,
    worker_image: str,  # noqa: F811 - the fixture imported above
) -> None:
    # GIVEN the worker image run as the task definition says (user 10001, read-only root file system,
    # the `scratch` volume the only writable place), and the checkpointing command's two jobs
    manifest = {
        "processor": "command",
        "params": {"command": ["python3", "-c", SQUARES_COMMAND], "n": UNITS, "unit_seconds": UNIT_SECONDS},
        "source": {"count": 1},
    }
    options = CloudOptions(
        runtime="docker",
        image=worker_image,
        parameters={"PollMinSeconds": "1", "PollMaxSeconds": "1"},
        state_dir=tmp_path / "state",
    )
    with LocalCloud(options=options) as local:
        env = Cloud(local, JobRunner(local, progress=None), tmp_path)

        # WHEN one job's container is reclaimed after 3 units (docker stop -t <stopTimeout>)
        summary, steady, tasks = _interrupt_mid_run(env, manifest, "docker")

        # THEN the checkpoint directory, under /scratch, was saved as the container stopped and restored
        # in the relaunched container, which went on from there
        _assert_resumed_without_redoing(summary, steady, tasks, env)
