"""`spotmap plan`'s estimate for a local job beside the job's measured time (docs/benchmarks.md).

    .venv/bin/python -m benchmarks.plan_vs_run [--items 40] [--sleep 5] [--concurrency 10]

Plans a manifest of `--items` command items that each sleep `--sleep` seconds (`spotmap plan --local
--item-seconds <sleep>`), then runs it (`spotmap local run`) with the same parameters, and prints the
plan's waves and wall time next to the job's measured wall time (its summary's `timing.seconds`, and
from upload to summary)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path

from spotmap.cli import main as spotmap_main


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--sleep", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="spotmap-plan-") as tmp:
        path = Path(tmp) / "sleepers.job.json"
        program = f"import json, time; time.sleep({args.sleep}); print(json.dumps({{'runs': {{'$sum': 1}}}}))"
        path.write_text(
            json.dumps(
                {
                    "processor": "command",
                    "params": {"command": ["python3", "-c", program]},
                    "source": {"count": args.items},
                }
            ),
            encoding="utf-8",
        )
        params = ["--param", f"MaxConcurrency={args.concurrency}"]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert (
                spotmap_main(
                    ["plan", str(path), "--local", "--item-seconds", str(args.sleep), "--json", *params]
                )
                == 0
            )
        plan = json.loads(out.getvalue())
        out = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = spotmap_main(
                [
                    "local",
                    "run",
                    "--json",
                    "--out",
                    str(Path(tmp) / "out"),
                    "--state-dir",
                    str(Path(tmp) / "state"),
                    *params,
                    str(path),
                ]
            )
        elapsed = time.perf_counter() - started
        (summary,) = json.loads(out.getvalue().strip().splitlines()[-1])
    print(
        json.dumps(
            {
                "items": plan["items"],
                "concurrency": plan["concurrency"],
                "waves": plan["waves"],
                "plan_wall_seconds": plan["estimate"]["wall_seconds"],
                "plan_paced_by": plan["estimate"]["paced_by"],
                "plan_cost_usd": plan["cost"]["total_usd"],
                "run_status": summary["status"],
                "run_exit": code,
                "run_execution_seconds": summary["timing"]["seconds"],
                "run_cli_seconds": round(elapsed, 1),
                "run_cost_usd": summary["cost"]["total_usd"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
