"""JobStore: one job's objects, read and written where jobcore.layout says they live (over moto)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jobcore import layout
from jobcore.attempts import LaunchRecord
from jobcore.job_store import JobStore
from jobcore.launch_retries import LaunchRetries
from jobcore.models import Capacity, ItemOutcome, ItemState, JobDescriptor, TaskStatus
from tests.conftest import load_event
from tests.unit.conftest import BUCKET

DESCRIPTOR = {
    "job_id": "job-store",
    "input": {"bucket": BUCKET, "key": "input/x.csv", "size": 1},
    "processor": "csv-profile",
    "item_count": 3,
    "created_at": "2026-11-23T10:00:00.000Z",
}


def keys(s3: Any) -> set[str]:
    return {entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_a_job_written_through_the_store_lives_at_the_layouts_keys_and_reads_back(s3: Any) -> None:
    # GIVEN a job's store and an item of it that ran one attempt
    store = JobStore(s3, BUCKET, "job-store")
    state = ItemState.model_validate(load_event("poll_task.json")).model_copy(
        update={"job_id": "job-store", "attempt": 1, "status": TaskStatus.SUCCEEDED}
    )
    index = state.item.index
    outcome = ItemOutcome.of(state, {"rows": 3}, None)
    record = LaunchRecord(
        index=index,
        attempt=1,
        capacity=Capacity.SPOT,
        vcpu=0.25,
        gb=0.5,
        task_arn="arn:aws:ecs:eu-west-1:123456789012:task/c/t",
        launched_at=datetime(2026, 11, 23, 10, tzinfo=timezone.utc),
    )
    tally = LaunchRetries(index=index, attempt=2, throttled_run_task_calls=4)

    # WHEN every kind of object is written through it
    store.write_descriptor(JobDescriptor.model_validate(DESCRIPTOR))
    store.write_outcome(outcome)
    store.write_launched(state)
    store.write_launch_record(record)
    store.write_launch_retries(tally)
    store.write_summary({"job_id": "job-store"})
    store.write_report("<html></html>")

    # THEN each object is at the key jobcore.layout builds for it, and nothing else was written
    assert keys(s3) == {
        layout.descriptor_key("job-store"),
        layout.outcome_key("job-store", index, "succeeded"),
        layout.launched_key("job-store", index, 1),
        layout.attempt_key("job-store", index, 1),
        layout.launch_retries_key("job-store", index, 2),
        layout.summary_key("job-store"),
        layout.report_key("job-store"),
    }
    # AND reads give back what was written, typed where the layout's object has a model
    descriptor = store.read_descriptor()
    assert descriptor is not None and descriptor.item_count == 3
    assert store.outcome(index, "succeeded")["partial"] == {"rows": 3}
    assert store.outcome_indices("succeeded") == {index}
    assert store.count_outcomes("failed") == 0
    assert store.launched(index, 1) == state.model_copy(update={"outcome": None})
    assert LaunchRetries.model_validate(store.launch_retries_document(index, 2)) == tally
    assert [LaunchRecord.model_validate(doc) for _, doc in store.launch_record_documents({index})] == [record]
    assert store.summary_exists() and store.read_summary() == {"job_id": "job-store"}


def test_missing_objects_read_as_none_and_empty_listings(s3: Any) -> None:
    # GIVEN the store of a job that wrote nothing
    store = JobStore(s3, BUCKET, "job-nothing")

    # WHEN / THEN every read says "not there" rather than failing
    assert store.read_descriptor() is None
    assert store.result(0) is None
    assert store.outcome(0, "failed") is None
    assert store.launched(0, 1) is None
    assert store.worker_error(0, 1) is None
    assert store.result_indices() == set()
    assert store.newest_map_manifest() is None
    assert not store.summary_exists()
    assert not store.has_checkpoint(0)


def test_only_the_first_claim_of_a_stop_event_wins(s3: Any) -> None:
    # GIVEN the store of a job whose item 2 attempt 1 stopped
    store = JobStore(s3, BUCKET, "job-claims")

    # WHEN two deliveries of the stop event claim it
    first = store.claim_stop_event(2, 1, "arn:task/a")
    second = store.claim_stop_event(2, 1, "arn:task/a")

    # THEN only the first may resume the item (a conditional write the second loses)
    assert (first, second) == (True, False)
    assert keys(s3) == {layout.event_claim_key("job-claims", 2, 1)}
