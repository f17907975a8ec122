"""The report page of a faulty local run, loaded in a real headless Chromium (Debian's package).

Needs /usr/bin/chromium and playwright's Python package: skipped without them, unless
SPOTMAP_REQUIRE_BROWSER=1 (make test, which runs tools/ensure-chromium first) makes that a failure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from spotmap.cli import main as spotmap_main
from tools.report_browser import chromium_missing, load_report

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".spotmap" / "report-test"


@pytest.fixture
def browser() -> None:
    missing = chromium_missing()
    if missing:
        if os.environ.get("SPOTMAP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SPOTMAP_REQUIRE_BROWSER=1 but no browser can run: {missing}")
        pytest.skip(missing)


def test_a_faulty_runs_report_page_shows_its_interruptions_and_failure_and_fetches_nothing(
    tmp_path: Path, browser: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a finished local run of 8 items with Spot reclaims injected (seeded) and item 5 exiting 3
    manifest = tmp_path / "faulty.job.json"
    manifest.write_text(
        json.dumps(
            {
                "processor": "command",
                "params": {
                    "command": [
                        "python3",
                        "-c",
                        "import os, sys, time; time.sleep(1); "
                        "sys.exit(3 if os.environ['SPOTMAP_PARAM_X'] == '5' else 0)",
                    ]
                },
                "source": {"items": [{"x": str(x)} for x in range(8)]},
            }
        ),
        encoding="utf-8",
    )
    out_dir = tmp_path / "out"
    argv = ["local", "run", "--out", str(out_dir), "--state-dir", str(tmp_path / "state")]
    argv += ["--param", "ToleratedFailurePercentage=20", "--param", "MaxConcurrency=4"]
    argv += ["--spot-interruption-rate", "0.5", "--seed", "4", str(manifest)]
    capsys.readouterr()
    assert spotmap_main(argv) == 0
    printed = capsys.readouterr().out
    # `spotmap local run` names the page in the copied-out bucket, beside the summary
    (page,) = [Path(line.split("report: ", 1)[1]) for line in printed.splitlines() if "report: " in line]
    summary = json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))
    assert summary["items"]["failed"] == 1 and summary["attempts"]["spot_interruptions"] > 0, summary
    assert page == out_dir.resolve() / "summaries" / f"{summary['job_id']}.html" and page.is_file()

    # WHEN the copied-out page is opened from disk in headless Chromium and screenshotted
    screenshot = SCREENSHOTS / f"{summary['job_id']}.png"
    loaded = load_report(page, screenshot)
    with capsys.disabled():
        print(f"\nreport page {page}\nscreenshot {screenshot}")

    # THEN it loaded with no console error, no exception and no request but its own file:// load
    assert loaded.console_errors == [] and loaded.page_errors == []
    assert loaded.requests == [loaded.url]
    # ... its timeline has a visible bar for every interrupted attempt, and the failed item's row and bar
    dom = loaded.dom
    interrupted = [bar for bar in dom["bars"] if bar["outcome"] == "interrupted"]
    assert len(interrupted) == summary["attempts"]["spot_interruptions"]
    assert all(bar["visible"] and bar["capacity"] == "FARGATE_SPOT" for bar in interrupted)
    failed_bars = [bar for bar in dom["bars"] if bar["outcome"] == "failed"]
    assert {bar["item"] for bar in failed_bars} == {5} and all(bar["visible"] for bar in failed_bars)
    assert [row["items"] for row in dom["rows"] if row["status"] == "failed"] == ["5"]
    assert len(dom["bars"]) == summary["attempts"]["launched"]
    # ... the counts and the failure's reason and log location are on the page
    assert dom["counts"]["Spot interruptions"] == str(summary["attempts"]["spot_interruptions"])
    (failure,) = dom["failures"]
    assert failure["item"] == 5 and "code 3" in failure["text"] and ".log" in failure["text"]
    # ... its legend works (the inline script ran), and the screenshot was saved
    assert loaded.hidden_after_legend_click == len(interrupted)
    assert screenshot.stat().st_size > 10_000
