"""The report page (jobcore.report): written beside the summary, self-contained, escaped, and small for a
10,000-item job. The browser test (tests/e2e/test_report_page.py) loads a real one in Chromium."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

from jobcore import layout, report
from jobcore.models import AttemptRecord, Capacity, ItemOutcome, TaskStatus
from jobcore.summary import execution_info, summarize_job
from tests.unit.conftest import BUCKET
from tests.unit.job_builder import item_usage, put_descriptor, put_json, put_success, rows

ARN = "arn:aws:states:us-east-1:123456789012:execution:spotmap-job:job-1"
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc)


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_attr(self, name: str, value: str | None = None) -> list[dict[str, str | None]]:
        return [a for _, a in self.elements if name in a and (value is None or a[name] == value)]


def parse(page: str) -> Elements:
    elements = Elements()
    elements.feed(page)
    return elements


def attempt(number: int, capacity: Capacity, start_s: float, stop_s: float, outcome: str) -> AttemptRecord:
    def at(seconds: float) -> str:
        return (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return AttemptRecord(
        attempt=number, capacity=capacity, launched_at=at(start_s), stopped_at=at(stop_s), outcome=outcome
    )


def test_summarize_job_writes_a_report_page_with_every_attempt_beside_the_summary(s3: Any) -> None:
    # GIVEN a 3-item job: item 0 succeeded, item 1 succeeded on on-demand after a Spot interruption,
    # item 2 failed (its reason and log location hold markup)
    put_descriptor(s3, "job-1", 3)
    put_success(s3, "job-1", 0, rows(10, 1.0, 5.0))
    succeeded = ItemOutcome(
        index=0,
        status=TaskStatus.SUCCEEDED,
        attempts=1,
        usage=item_usage(600),
        history=[attempt(1, Capacity.SPOT, 0, 600, "succeeded")],
    )
    put_json(s3, layout.outcome_key("job-1", 0, "SUCCEEDED"), succeeded.model_dump(mode="json"))
    put_success(s3, "job-1", 1, rows(5, -2.0, 3.0), attempts=2, interruptions=1)
    fell_back = succeeded.model_copy(
        update={
            "index": 1,
            "attempts": 2,
            "spot_interruptions": 1,
            "history": [
                attempt(1, Capacity.SPOT, 5, 200, "interrupted"),
                attempt(2, Capacity.ON_DEMAND, 210, 700, "succeeded"),
            ],
        }
    )
    put_json(s3, layout.outcome_key("job-1", 1, "SUCCEEDED"), fell_back.model_dump(mode="json"))
    failed = ItemOutcome(
        index=2,
        status=TaskStatus.FAILED,
        reason='exited with code 1: <script>alert("x")</script>',
        log='/tmp/logs/"><img src=x>.log',
        attempts=1,
        history=[attempt(1, Capacity.SPOT, 10, 100, "failed")],
    )
    put_json(s3, layout.outcome_key("job-1", 2, "FAILED"), failed.model_dump(mode="json"))
    execution = execution_info(
        ARN, "FAILED", T0, T0 + timedelta(seconds=720), "States.ExceedToleratedFailureThreshold", None
    )

    # WHEN the job is summarised
    written = summarize_job(s3, BUCKET, "job-1", execution)

    # THEN summaries/job-1.html is an HTML page beside summaries/job-1.json ...
    assert written.report_key == "summaries/job-1.html" and written.summary_key == "summaries/job-1.json"
    stored = s3.get_object(Bucket=BUCKET, Key="summaries/job-1.html")
    assert stored["ContentType"] == "text/html; charset=utf-8"
    page = stored["Body"].read().decode("utf-8")
    elements = parse(page)
    # ... with one bar per attempt, coloured by what happened, in the item's row
    bars = [
        (a["data-item"], a["data-attempt"], a["data-outcome"]) for a in elements.with_attr("data-outcome")
    ]
    assert sorted(bars) == [
        ("0", "1", "succeeded"),
        ("1", "1", "interrupted"),
        ("1", "2", "on-demand"),
        ("2", "1", "failed"),
    ]
    assert [a["data-items"] for a in elements.with_attr("data-row-status", "failed")] == ["2"]
    # ... the counts, the failure with its reason and log, escaped, and no way to fetch anything
    assert elements.with_attr("data-count", "Spot interruptions")
    assert [a["data-item"] for t, a in elements.elements if t == "tr" and "data-item" in a] == ["2"]
    text = "".join(elements.text)
    assert 'exited with code 1: <script>alert("x")</script>' in text
    assert '/tmp/logs/"><img src=x>.log' in text
    assert "<script>alert" not in page and "<img src=x>" not in page
    assert not [a for t, a in elements.elements if t == "img" or a.get("src") or t == "link"]
    assert "default-src 'none'" in page
    assert (
        json.loads(s3.get_object(Bucket=BUCKET, Key="summaries/job-1.json")["Body"].read())["status"]
        == "FAILED"
    )


def test_a_10000_item_job_page_stays_small_and_keeps_every_interruption_and_failure() -> None:
    # GIVEN 10,000 items of about a minute each, 40 at a time; every 50th was interrupted once first,
    # every 1,000th failed, every 700th fell back to on-demand
    timeline = report.Timeline()
    interrupted = failed = 0
    for index in range(10_000):
        start = (index // 40) * 65.0
        history = []
        number = 1
        if index % 50 == 0:
            history.append(attempt(number, Capacity.SPOT, start, start + 20, "interrupted"))
            interrupted += 1
            number += 1
        fate = "failed" if index % 1000 == 999 else "succeeded"
        capacity = Capacity.ON_DEMAND if index % 700 == 0 else Capacity.SPOT
        history.append(attempt(number, capacity, start + 25, start + 85, fate))
        failed += fate == "failed"
        outcome = {
            "history": [record.model_dump(mode="json") for record in history],
            "log": f"/logs/{index}.log",
        }
        timeline.add(index, TaskStatus(fate.upper()), outcome)
    summary = {
        "job_id": "big",
        "status": "FAILED",
        "items": {"total": 10_000, "succeeded": 10_000 - failed, "failed": failed},
        "failures": [{"index": i, "reason": "exited with code 1"} for i in range(999, 10_000, 1000)],
        "result": {"rows": 123},
    }

    # WHEN its page is rendered
    page = report.render_report(summary, timeline)

    # THEN it is a few hundred KB, in at most MAX_ROWS rows, and no interruption or failure is merged away
    assert len(page.encode("utf-8")) < 1_000_000
    elements = parse(page)
    assert len(elements.with_attr("data-row-status")) == report.MAX_ROWS
    assert len(elements.with_attr("data-outcome", "interrupted")) == interrupted
    assert len(elements.with_attr("data-outcome", "failed")) == failed
    failed_items = ",".join(a["data-failed-items"] or "" for a in elements.with_attr("data-failed-items"))
    assert sorted(map(int, failed_items.split(","))) == list(range(999, 10_000, 1000))
    assert elements.with_attr("data-outcome", "on-demand")
