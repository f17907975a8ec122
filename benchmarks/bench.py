"""`make bench`: the seven figures of docs/benchmarks.md, measured in one go on this machine.

    P1 speedup      CPU-bound csv-profile: one process over the whole file vs `spotmap local run`
    P2 overhead     1,000 no-op items end to end: seconds per item
    P3 polling      state transitions per item and mean detection delay, 20-minute tasks scaled down
    P3 events       the same with completion by task events; "P3 events dropped" with every event lost
    P4 scale        one 10,000-item job end to end locally
    P5 aggregation  Summarize over 10,000 result records
    P6 memory       StartJob's peak memory while sharding a 1 GB object
    P7 orchestration  (state transitions + Lambda) as a share of Spot compute, 20-minute items
    P8 small items  a prefix job over 100,000 small objects in batches: tasks, cost, wall time

Benchmarks measure; they never fail on a time. Each figure is printed next to its target.
Options: --only P1,P3 runs a subset; --quick shrinks every workload (to check the harness itself).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from spotmap.cloud import CloudOptions, LocalCloud  # noqa: E402
from spotmap.jobs import JobRunner  # noqa: E402


@dataclass
class Figure:
    name: str
    what: str
    value: str
    target: str
    met: bool | None
    detail: str = ""


@dataclass
class Phases:
    """Where a local run's wall time went: starting the cloud, uploading the input, the job itself
    (StartJob to summary)."""

    start: float = 0.0
    upload: float = 0.0
    job: float = 0.0


def _run_job(
    path: Path, params: dict[str, str], state: Path, timeout: float = 1500, phases: Phases | None = None
) -> tuple[dict[str, Any], float]:
    phases = phases if phases is not None else Phases()
    started = time.monotonic()
    with LocalCloud(options=CloudOptions(parameters=params, state_dir=state, run_schedules=False)) as cloud:
        phases.start = time.monotonic() - started
        runner = JobRunner(cloud, progress=None)
        watch = runner.submit(path)
        phases.upload = time.monotonic() - started - phases.start
        (summary,) = runner.wait([watch], timeout=timeout)
        phases.job = time.monotonic() - started - phases.start - phases.upload
    elapsed = time.monotonic() - started
    if summary is None:
        raise RuntimeError(f"{path.name}: no summary ({watch.status}, {watch.error})")
    return summary, elapsed


def write_wide_csv(path: Path, rows: int, columns: int = 24, seed: int = 5) -> Path:
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"c{i}" for i in range(columns)])
        for _ in range(rows):
            writer.writerow(
                [
                    f"{rng.uniform(-1e6, 1e6):.4f}" if i % 3 else rng.choice(("alpha", "beta", "gamma"))
                    for i in range(columns)
                ]
            )
    return path


def p1_speedup(work: Path, quick: bool) -> Figure:
    from worker.testing import run_processor

    probe = write_wide_csv(work / "probe.csv", rows=20_000)
    started = time.process_time()
    run_processor("csv-profile", probe)
    per_row = (time.process_time() - started) / 20_000
    rows = 20_000 if quick else int(32 / per_row)  # about 32 s of one process
    data = write_wide_csv(work / "cpu-bound.csv", rows=rows)
    started = time.monotonic()
    run_processor("csv-profile", data)
    single = time.monotonic() - started
    shard_mb = data.stat().st_size / 1e6 / 16
    phases = Phases()
    summary, pipeline = _run_job(
        data,
        # the template's MaxConcurrency (every shard at once: the OS shares the cores, and no core idles
        # while an item waits for its poll); polls bounded for tasks of seconds
        {"ShardSizeMB": f"{shard_mb:.3f}", "PollMinSeconds": "1", "PollMaxSeconds": "2"},
        work / "p1",
        phases=phases,
    )
    assert summary["status"] == "SUCCEEDED", summary
    speedup = single / pipeline
    return Figure(
        "P1",
        "speedup, CPU-bound csv-profile",
        f"{speedup:.2f}x",
        ">= 1.8x",
        speedup >= 1.8,
        f"{rows:,} rows ({data.stat().st_size / 1e6:.0f} MB): one process {single:.1f} s, "
        f"local run {pipeline:.1f} s in {summary['items']['total']} items = cloud start "
        f"{phases.start:.1f} s + upload {phases.upload:.1f} s + job {phases.job:.1f} s "
        f"(the job alone {single / phases.job:.2f}x)",
    )


def _manifest(work: Path, name: str, document: dict[str, Any]) -> Path:
    path = work / f"{name}.job.json"
    path.write_text(json.dumps(document))
    return path


def p2_overhead(work: Path, quick: bool) -> Figure:
    count = 100 if quick else 1000
    manifest = _manifest(work, "noop-1000", {"processor": "noop", "source": {"count": count}})
    summary, elapsed = _run_job(manifest, {"MaxConcurrency": "100"}, work / "p2")
    assert summary["items"]["succeeded"] == count, (
        summary["status"],
        summary["items"],
        summary["failures"][:3],
        summary.get("error"),
    )
    per_item = elapsed / count
    return Figure(
        "P2",
        "overhead, no-op items end to end",
        f"{per_item * 1000:.0f} ms/item",
        "<= 50 ms/item",
        per_item <= 0.05,
        f"{count} items in {elapsed:.1f} s (cloud start included)",
    )


# 20-minute tasks and the template's poll bounds (10 s, 900 s) and heartbeat period (120 s), all scaled by
# the same factor; a Wait takes whole seconds, so the scaled minimum is rounded up to 1 s
SCALE_FACTOR = 1 / 60
TASK_MINUTES = 20


@dataclass
class ScaledJob:
    """A job of sleeping `command` items, 20-minute tasks scaled down in time (P3 and P7)."""

    items: int
    task_seconds: float
    summary: dict[str, Any]
    outcomes: list[dict[str, Any]]


def _scaled_sleepers(
    work: Path, quick: bool, mode: dict[str, str], drop_task_events: float = 0.0
) -> ScaledJob:
    # a job of several waves (items > MaxConcurrency), as large jobs are: the first wave has nothing to
    # learn from, the later ones wait for the job's typical duration
    factor = SCALE_FACTOR
    task_seconds = TASK_MINUTES * 60 * factor
    items = 10 if quick else 40
    manifest = _manifest(
        work,
        "sleepers",
        {
            "processor": "command",
            "params": {"command": ["python3", "-c", f"import time; time.sleep({task_seconds})"]},
            "source": {"count": items},
        },
    )
    params = {
        "MaxConcurrency": str(items // 4),
        "PollMinSeconds": str(max(1, round(10 * factor))),
        "PollMaxSeconds": str(max(1, round(900 * factor))),
        "TaskHeartbeatSeconds": str(max(1, round(120 * factor))),
        **mode,
    }
    options = CloudOptions(
        parameters=params, state_dir=work / "job", run_schedules=False, drop_task_events=drop_task_events
    )
    with LocalCloud(options=options) as cloud:
        runner = JobRunner(cloud, progress=None)
        watch = runner.submit(manifest)
        (summary,) = runner.wait([watch], timeout=1200)
        s3 = cloud.client("s3")
        outcomes = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=cloud.stack.bucket, Prefix=f"jobs/{watch.job_id}/outcomes/"
        ):
            for obj in page.get("Contents", []):
                outcomes.append(
                    json.loads(s3.get_object(Bucket=cloud.stack.bucket, Key=obj["Key"])["Body"].read())
                )
    assert summary is not None and summary["items"]["succeeded"] == items, summary
    return ScaledJob(items, task_seconds, summary, outcomes)


def p3_polling(work: Path, quick: bool) -> Figure:
    """Items poll DescribeTasks (TaskEvents Disabled)."""
    return _p3(work, quick, "P3", "polling: transitions/item, detection delay", {"TaskEvents": "Disabled"})


def p3_events(work: Path, quick: bool) -> Figure:
    """Items wait for their task's stop event (TaskEvents Enabled, the default)."""
    return _p3(
        work,
        quick,
        "P3 events",
        "task events: transitions/item, detection delay",
        {"TaskEvents": "Enabled"},
        targets=(5, 0.02),
    )


def p3_events_dropped(work: Path, quick: bool) -> Figure:
    """Every task event lost: items complete through the heartbeat backstop and a poll."""
    return _p3(
        work,
        quick,
        "P3 events dropped",
        "all task events lost: transitions, delay",
        {"TaskEvents": "Enabled"},
        drop_task_events=1.0,
    )


def _p3(
    work: Path,
    quick: bool,
    name: str,
    what: str,
    mode: dict[str, str],
    targets: tuple[float, float] = (15, 0.10),
    drop_task_events: float = 0.0,
) -> Figure:
    job = _scaled_sleepers(work, quick, mode, drop_task_events)
    transitions = statistics.mean(o["usage"]["state_transitions"] for o in job.outcomes)
    delays = [
        o["detection_delay_seconds"] for o in job.outcomes if o.get("detection_delay_seconds") is not None
    ]
    delay = statistics.mean(delays) if delays else float("nan")
    ratio = delay / job.task_seconds
    polls = statistics.mean(o.get("polls", 0) for o in job.outcomes)
    most_transitions, most_delay = targets
    return Figure(
        name,
        what,
        f"{transitions:.1f} / {ratio:.1%}",
        f"<= {most_transitions:g} / <= {most_delay:.0%}",
        transitions <= most_transitions and ratio <= most_delay,
        f"{job.items} tasks of {job.task_seconds:.0f} s ({TASK_MINUTES} min x {SCALE_FACTOR:g}); "
        f"mean delay {delay:.2f} s (max {max(delays, default=float('nan')):.2f} s), {polls:.1f} polls/item",
    )


def p7_orchestration_share(work: Path, quick: bool) -> Figure:
    """(State transitions + Lambda) as a share of Spot compute, for 20-minute items on 1 vCPU / 2 GB.

    Measured on P3's scaled-down job (the template's TaskCpu 1024 / TaskMemory 2048). Scaling: the
    poll bounds are scaled with the task, so an item makes the transitions and Lambda invocations
    a 20-minute item makes (the 1 s floor of a Wait only makes fewer polls); a handler's run time does not
    depend on the task's, so Lambda GB-seconds are taken as measured (on a loaded 2-core machine: more
    than AWS's). The numerator is the cost block's Step Functions and Lambda dollars per item (the
    parent's 5 transitions included); the denominator is the cost block's Spot price of one 20-minute
    task of 1 vCPU / 2 GB, not the scaled run's (which a per-task minimum charge would distort)."""
    from jobcore.cost import cost_block
    from jobcore.models import Usage

    job = _scaled_sleepers(work, quick, {"TaskEvents": "Enabled"})  # the default: events
    cost = job.summary["cost"]
    region = cost["prices"]["region"]
    transitions_usd = cost["step_functions"]["usd"] / job.items
    lambda_usd = cost["lambda"]["usd"] / job.items
    per_item_usd = transitions_usd + lambda_usd
    seconds = TASK_MINUTES * 60
    spot = cost_block(Usage(spot_vcpu_seconds=1.0 * seconds, spot_gb_seconds=2.0 * seconds), region)
    spot_usd = spot["fargate"]["spot"]["usd"]
    share = per_item_usd / spot_usd
    transitions = cost["step_functions"]["state_transitions"] / job.items
    invocations = cost["lambda"]["invocations"] / job.items
    gb_seconds = cost["lambda"]["gb_seconds"] / job.items
    # the seed's fixed 60-second loop, for comparison: a Launch, 20 Wait→Poll→Choice cycles, the end
    fixed_loop = cost_block(
        Usage(
            lambda_invocations=21,
            lambda_gb_seconds=gb_seconds / max(invocations, 1) * 21,
            state_transitions=62,
        ),
        region,
        parent_transitions=0,
    )
    fixed_share = (fixed_loop["step_functions"]["usd"] + fixed_loop["lambda"]["usd"]) / spot_usd
    return Figure(
        "P7",
        "orchestration share of Spot compute",
        f"{share:.1%}",
        "<= 2.5 %",
        share <= 0.025,
        f"transitions {transitions_usd / spot_usd:.1%} + Lambda {lambda_usd / spot_usd:.2%}: "
        f"{transitions:.1f} transitions/item, {invocations:.1f} Lambda invocations/item "
        f"({gb_seconds:.3f} GB-s); ${per_item_usd * 1e6:.0f}e-6 per item against ${spot_usd * 1e6:.0f}e-6 "
        f"of Spot for {TASK_MINUTES} min at 1 vCPU / 2 GB ({region}, prices {cost['prices']['date']}); "
        f"the fixed 60 s loop: {fixed_share:.0%}",
    )



def p4_scale(work: Path, quick: bool) -> Figure:
    count = 500 if quick else 10_000
    manifest = _manifest(work, "noop-10000", {"processor": "noop", "source": {"count": count}})
    summary, elapsed = _run_job(manifest, {"MaxConcurrency": "200"}, work / "p4", timeout=5400)
    # items lost are a figure of their own (target 0), reported with their reasons, not an exception
    lost = count - summary["items"]["succeeded"]
    reasons = sorted({failure["reason"][:80] for failure in summary["failures"]})[:3]
    attempts = summary["attempts"]
    return Figure(
        "P4",
        f"scale, one {count:,}-item job",
        f"{elapsed / 60:.1f} min",
        "<= 10 min, 0 lost",
        elapsed <= 600 and lost == 0,
        f"{count / elapsed:.1f} items/s; {lost} items lost{' ' + str(reasons) if lost else ''}; "
        f"throttled RunTask calls {attempts.get('throttled_run_task_calls', 0):,} (summary), "
        f"capacity retries {attempts['capacity_retries']}, on-demand fallbacks "
        f"{attempts['on_demand_fallbacks']}",
    )


def p5_aggregation(work: Path, quick: bool) -> Figure:
    count = 1000 if quick else 10_000
    script = ROOT / "benchmarks" / "aggregate.py"
    result = subprocess.run(
        [sys.executable, str(script), str(count)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    seconds = float(result.stdout.strip().splitlines()[-1])
    return Figure(
        "P5", f"Summarize over {count:,} result records", f"{seconds:.1f} s", "<= 10 s", seconds <= 10
    )


def p6_memory(work: Path, quick: bool) -> Figure:
    size_mb = 64 if quick else 1024
    script = ROOT / "benchmarks" / "shard_memory.py"
    result = subprocess.run(
        [sys.executable, str(script), str(size_mb), str(work / "big.csv")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    peak_mb, shards = result.stdout.strip().splitlines()[-1].split()
    return Figure(
        "P6",
        f"StartJob peak memory sharding {size_mb:,} MB",
        f"{float(peak_mb):.0f} MB",
        "<= 256 MB",
        float(peak_mb) <= 256,
        f"{shards} shards of 64 MB",
    )


def _seed_objects(cloud: LocalCloud, prefix: str, count: int) -> None:
    """Put `count` small CSV objects straight into moto's S3 backend: over HTTP, 100,000 PUTs would take
    minutes of the benchmark before the job starts (and objects under data/ start nothing anyway)."""
    from moto.s3.models import s3_backends

    backend = s3_backends[cloud.stack.account_id]["aws"]
    for number in range(count):
        backend.put_object(cloud.stack.bucket, f"{prefix}{number:06d}.csv", f"n\n{number}\n".encode())


P8_OBJECTS = int(os.environ.get("SPOTMAP_P8_OBJECTS") or 100_000)  # a smaller run where 100,000 cannot


def p8_small_items(work: Path, quick: bool) -> Figure:
    """a prefix job over 100,000 small objects, 100 per task"""
    count = 2_000 if quick else P8_OBJECTS
    per_task = 100
    manifest = _manifest(
        work,
        "small-objects",
        {"processor": "csv-profile", "source": {"prefix": "data/p8/"}, "batch": {"max_items": per_task}},
    )
    params = {"MaxConcurrency": "200", "PollMinSeconds": "1", "PollMaxSeconds": "5"}
    started = time.monotonic()
    options = CloudOptions(parameters=params, state_dir=work / "p8", run_schedules=False)
    with LocalCloud(options=options) as cloud:
        seeded = time.monotonic()
        _seed_objects(cloud, "data/p8/", count)
        seeding = time.monotonic() - seeded
        runner = JobRunner(cloud, progress=sys.stderr)  # a line every 5 s: a long run shows its pace
        watch = runner.submit(manifest)
        (summary,) = runner.wait([watch], timeout=3600)
    elapsed = time.monotonic() - started
    assert summary is not None and summary["items"]["succeeded"] == count, (
        summary and (summary["status"], summary["items"], summary["failures"][:3], summary.get("error"))
    )
    column = summary["result"]["columns"]["n"]
    assert summary["result"]["rows"] == count and column["sum"] == sum(range(count)), summary["result"]
    cost = summary["cost"]
    alone = cost["one_task_per_item"]["usd"]
    ratio = cost["total_usd"] / alone
    return Figure(
        "P8",
        f"small items: {count:,} objects, {per_task} per task",
        f"1/{1 / ratio:.0f}, {elapsed / 60:.1f} min",
        "<= 1/50, <= 10 min",
        ratio <= 1 / 50 and elapsed <= 600,
        f"{summary['tasks']['total']} tasks ({summary['tasks']['launched']} launched) for {count:,} items; "
        f"estimated ${cost['total_usd']:.4f} against ${alone:.4f} for one task per object "
        f"(Fargate {cost['fargate']['spot']['vcpu_seconds']:,.0f} Spot vCPU-s, "
        f"{cost['step_functions']['state_transitions']:,} transitions); "
        f"wall {elapsed:.0f} s end to end (seeding {seeding:.0f} s, "
        f"execution {summary['timing']['seconds']:.0f} s)",
    )


BENCHMARKS: dict[str, Callable[[Path, bool], Figure]] = {
    "P1": p1_speedup,
    "P2": p2_overhead,
    "P3": p3_polling,
    "P3 events": p3_events,
    "P3 events dropped": p3_events_dropped,
    "P4": p4_scale,
    "P5": p5_aggregation,
    "P6": p6_memory,
    "P7": p7_orchestration_share,
    "P8": p8_small_items,
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(BENCHMARKS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = parser.parse_args()
    figures = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spotmap-bench-") as tmp:
        for name in args.only.split(","):
            work = Path(tmp) / name
            work.mkdir()
            print(f"running {name}...", file=sys.stderr, flush=True)
            began = time.monotonic()
            try:
                figure = BENCHMARKS[name](work, args.quick)
            except Exception as error:  # report and go on: one broken figure must not hide the others
                figure = Figure(name, BENCHMARKS[name].__doc__ or name, "error", "", False, repr(error)[:300])
            figure.detail += f" [{time.monotonic() - began:.0f} s]"
            figures.append(figure)
            print(f"  {figure.name} {figure.value} (target {figure.target}) {figure.detail}", file=sys.stderr)
    cores = os.cpu_count()
    print(
        f"\nspotmap benchmarks on {cores} cores, Python {sys.version.split()[0]}, "
        f"total {time.monotonic() - started:.0f} s{' (quick)' if args.quick else ''}"
    )
    print(f"{'':4} {'figure':44} {'measured':>18} {'target':>18}  met")
    for f in figures:
        met = "yes" if f.met else "no"
        print(f"{f.name:4} {f.what:44} {f.value:>18} {f.target:>18}  {met}")
        if f.detail:
            print(f"{'':4}   {f.detail}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)  # .spotmap/ does not exist in a fresh clone
        args.json.write_text(json.dumps([f.__dict__ for f in figures], indent=2))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(harness peak RSS {peak:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
