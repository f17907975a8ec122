"""What `spotmap local run` prints for a finished job."""

from __future__ import annotations

from pathlib import Path

from spotmap.jobs import JobWatch, format_summary


def _summary(checkpoints: dict) -> dict:
    return {
        "job_id": "squares-1",
        "status": "SUCCEEDED",
        "items": {"total": 2, "succeeded": 2, "failed": 0},
        "attempts": {"launched": 5, "spot_interruptions": 3, "capacity_retries": 0, "on_demand_fallbacks": 1},
        "timing": {"seconds": 13.6},
        "checkpoints": checkpoints,
        "failures": [],
    }


def test_the_job_line_says_what_checkpoints_saved_and_nothing_when_none_resumed(tmp_path: Path) -> None:
    # GIVEN a finished job whose items resumed from checkpoints, and one whose items never did
    watch = JobWatch(tmp_path / "squares.job.json", "input/squares.job.json", "squares-1", None)
    resumed = {"items_resumed": 2, "resumed_attempts": 2, "saved_units": 12, "saved_seconds": 3.043}
    nothing = {"items_resumed": 0, "resumed_attempts": 0, "saved_units": 0, "saved_seconds": 0.0}

    # WHEN their lines are printed
    with_resumes = format_summary(watch, _summary(resumed), tmp_path)
    without = format_summary(watch, _summary(nothing), tmp_path)

    # THEN the first says how many attempts resumed and the work they did not redo; the second is silent
    assert (
        "  checkpoints: 2 attempts of 2 items resumed, not redoing 12 units / 3.043 s of work" in with_resumes
    )
    assert "checkpoints" not in without
