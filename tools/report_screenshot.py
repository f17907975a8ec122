"""docs/report.png: the report page of a small faulty job, run on the local cloud and screenshotted in
headless Chromium, so the README shows what the code draws (`make report-image`).

The job: a 24-item parameter sweep (the `command` processor) whose items run for one to three seconds,
with Spot interruptions injected (seeded) and item 13 exiting with code 3, within a tolerated failure
rate; `spotmap local run` writes summaries/<job_id>.html and tools.report_browser screenshots it.

    python -m tools.report_screenshot [--output docs/report.png] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

from spotmap.cli import main as spotmap_main
from tools.report_browser import chromium_missing, load_report

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 24
FAILING_ITEM = 13
COMMAND = (
    "import json, os, sys, time; x = int(os.environ['SPOTMAP_PARAM_X']); "
    "time.sleep(1 + (x * 7 % 5) * 0.5); "
    f"sys.exit(3) if x == {FAILING_ITEM} else "
    "print(json.dumps({'runs': {'$sum': 1}, 'best_score': {'$max': x * 37 % 101}}))"
)
FAULTS = ["--spot-interruption-rate", "0.25", "--seed", "7"]
PARAMS = {"MaxConcurrency": 6, "ToleratedFailurePercentage": 10}


def run_job(work_dir: Path) -> Path:
    """Run the sweep with `spotmap local run` and return its report page (in the copied-out bucket)."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    manifest = work_dir / "sweep.job.json"
    manifest.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {"command": ["python3", "-c", COMMAND]},
                "source": {"items": [{"x": str(x)} for x in range(ITEMS)]},
            }
        ),
        encoding="utf-8",
    )
    argv = ["local", "run", "--json", "--out", str(work_dir / "out"), "--state-dir", str(work_dir / "state")]
    for name, value in PARAMS.items():
        argv += ["--param", f"{name}={value}"]
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        spotmap_main([*argv, *FAULTS, str(manifest)])
    lines = output.getvalue().strip().splitlines()
    summaries = json.loads(lines[-1]) if lines else []
    if len(summaries) != 1:
        raise SystemExit(f"report_screenshot: expected one job summary, got: {output.getvalue()[-2000:]}")
    page = work_dir / "out" / "summaries" / f"{summaries[0]['job_id']}.html"
    if not page.is_file():
        raise SystemExit(f"report_screenshot: {page} was not written")
    return page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "report.png")
    # a neutral path: the failure's log location is on the picture
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "spotmap-report-image")
    args = parser.parse_args(argv)
    missing = chromium_missing()
    if missing:
        print(f"report_screenshot: {missing}", file=sys.stderr)
        return 1
    page = run_job(args.work_dir)
    loaded = load_report(page, args.output)
    problems = loaded.console_errors + loaded.page_errors + [u for u in loaded.requests if u != loaded.url]
    if problems:
        print(f"report_screenshot: the page is not clean: {problems}", file=sys.stderr)
        return 1
    print(f"report page {page}")
    print(f"screenshot {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
