"""`make demo`: generate a sample CSV and run it through the whole pipeline on the local cloud."""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

from spotmap.cloud import LocalCloud
from spotmap.jobs import JobRunner, copy_bucket, format_summary
from spotmap.outputs import prepare_out_dir

REGIONS = ["north", "south", "east", "west", "Île-de-France", "São Paulo"]


def write_sample_csv(path: Path, rows: int, seed: int = 7) -> Path:
    """A sales ledger with numbers, text, empty cells and quoted fields that contain newlines."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "region", "amount", "quantity", "note"])
        for order in range(rows):
            note = rng.choice(["", "gift", "rush, please", "line one\nline two", 'said "hi"'])
            amount = "" if rng.random() < 0.01 else f"{rng.uniform(1, 500):.2f}"
            writer.writerow([order, rng.choice(REGIONS), amount, rng.randint(1, 9), note])
    return path


def run_demo(rows: int = 200_000) -> int:
    state = Path(".spotmap")
    sample = write_sample_csv(state / "demo" / "sales.csv", rows)
    print(f"spotmap demo: {rows:,} rows in {sample} ({sample.stat().st_size / 1e6:.1f} MB)")
    print("starting the local cloud (moto S3 + Step Functions + EventBridge, local Lambda, local Fargate)...")
    out_dir = state / "out"
    replaced = prepare_out_dir(out_dir, is_default=True)
    if replaced:
        print(replaced)
    with LocalCloud() as cloud:
        print(
            f"  endpoint {cloud.endpoint}, bucket {cloud.stack.bucket}, "
            f"parameters: ShardSizeMB={cloud.stack.parameters['ShardSizeMB']} "
            f"MaxConcurrency={cloud.stack.parameters['MaxConcurrency']}"
        )
        runner = JobRunner(cloud, progress=sys.stdout)
        watch = runner.submit(sample)
        (summary,) = runner.wait([watch], timeout=900)
        copy_bucket(cloud, out_dir)
    print(format_summary(watch, summary, out_dir))
    if summary is not None:
        print(json.dumps(summary["result"], indent=2)[:3000])
    return 0 if summary is not None and summary["status"] == "SUCCEEDED" else 1
