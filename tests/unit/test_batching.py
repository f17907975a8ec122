"""Batches (jobcore.batching): items grouped into tasks by count and bytes, refused with a clear reason
when the manifest asks for what cannot be, one outcome per item when a batch ends, and the one-minute
minimum Fargate bills per task (jobcore.billing)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobcore import billing, layout
from jobcore.batching import Batcher, BatchRecord, BatchSpec, write_batch_outcome
from jobcore.cost import cost_block
from jobcore.models import Capacity, ItemBatch, ItemState, ObjectItem, SweepItem, TaskStatus, Usage
from start_job import app
from tests.unit.conftest import BUCKET
from tests.unit.test_start_job import put, read_json, run_manifest


def _item_counts(items: list[dict[str, Any]]) -> list[int]:
    return [len(item["batch"]) if "batch" in item else 1 for item in items]


def _indices(items: list[dict[str, Any]]) -> list[int]:
    return [member["index"] for item in items for member in item.get("batch", [item])]


def test_a_prefix_job_is_grouped_by_items_and_keeps_the_items_indices(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    # GIVEN 10 objects under a prefix and a manifest asking for at most 4 items per task
    for number in range(10):
        put(s3, f"data/logs/{number:02d}.txt", b"x")
    manifest = {"processor": "noop", "source": {"prefix": "data/logs/"}, "batch": {"max_items": 4}}

    # WHEN StartJob builds the job
    _, descriptor, items = run_manifest(s3, manifest, lambda_context)

    # THEN three Map items hold 4, 4 and 2 items, indexed 0-9 as an unbatched job's, each batch taking
    # its first item's index; the descriptor counts items and tasks apart
    assert _item_counts(items) == [4, 4, 2]
    assert _indices(items) == list(range(10)) and [item["index"] for item in items] == [0, 4, 8]
    assert [member["key"] for member in items[1]["batch"]] == [f"data/logs/{n:02d}.txt" for n in range(4, 8)]
    assert all("bucket" not in member for item in items for member in item["batch"])  # the job bucket
    assert items[0]["bucket"] == BUCKET
    assert descriptor["item_count"] == 10 and descriptor["task_count"] == 3
    assert descriptor["batch"] == {"max_items": 4}


def test_max_bytes_closes_a_batch_before_it_outgrows_it_and_a_big_object_goes_alone(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    # GIVEN objects of 40, 40, 40, 500, 10 and 10 bytes, named as keys, at most 100 bytes per task
    sizes = [40, 40, 40, 500, 10, 10]
    keys = [f"data/sized/{n}.bin" for n in range(len(sizes))]
    for key, size in zip(keys, sizes, strict=True):
        put(s3, key, b"x" * size)
    manifest = {"processor": "noop", "source": {"keys": keys}, "batch": {"max_bytes": 100}}

    # WHEN StartJob builds the job
    _, descriptor, items = run_manifest(s3, manifest, lambda_context)

    # THEN 40+40 | 40 | 500 (alone, a plain item) | 10+10
    assert _item_counts(items) == [2, 1, 1, 2]
    assert "batch" not in items[1] and items[2]["key"] == keys[3]
    assert _indices(items) == list(range(6)) and descriptor["task_count"] == 4


def test_the_template_default_batches_a_count_source_and_the_manifest_can_turn_it_off(
    s3: Any, sfn: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN BatchMaxItems=3 for the stack
    monkeypatch.setenv("BATCH_MAX_ITEMS", "3")
    app.settings.cache_clear()

    # WHEN a count job says nothing about batches, and another says "batch": null
    _, defaulted, default_items = run_manifest(s3, {"processor": "noop", "count": 7}, lambda_context)
    _, _, unbatched = run_manifest(
        s3, {"processor": "noop", "count": 7, "seed_start": 1, "batch": None}, lambda_context
    )

    # THEN the first runs 3 + 3 + 1 items per task, the second one item per task
    assert _item_counts(default_items) == [3, 3, 1] and defaulted["task_count"] == 3
    assert _item_counts(unbatched) == [1] * 7


def test_a_rerun_of_a_batched_job_finds_its_failed_items_inside_the_batches_and_batches_them_alike(
    s3: Any, sfn: Any, lambda_context: Any
) -> None:
    from jobcore import rerun

    # GIVEN a job of 7 items in batches of 3 (items 0-2, 3-5, 6), whose items 1, 2, 4 and 6 failed
    earlier, _, batches = run_manifest(
        s3, {"processor": "noop", "count": 7, "batch": {"max_items": 3}}, lambda_context
    )
    assert _item_counts(batches) == [3, 3, 1]
    failures = [{"index": index, "reason": "exited with code 1"} for index in (1, 2, 4, 6)]
    s3.put_object(
        Bucket=BUCKET,
        Key=layout.summary_key(earlier),
        Body=json.dumps({"job_id": earlier, "status": "FAILED", "failures": failures}),
    )

    # WHEN it is rerun
    again, descriptor, items = run_manifest(s3, {"rerun": {"job_id": earlier}}, lambda_context)

    # THEN the rerun runs exactly those 4 items, unchanged, in batches of 3 again: 2 tasks
    assert _indices(items) == [1, 2, 4, 6] and _item_counts(items) == [3, 1]
    assert [member["params"] for member in items[0]["batch"]] == [{"seed": 1}, {"seed": 2}, {"seed": 4}]
    assert (descriptor["item_count"], descriptor["task_count"]) == (4, 2)
    assert descriptor["batch"] == {"max_items": 3}
    assert descriptor["rerun"]["item_count"] == 7
    # AND the summary counts the items it ran itself inside its batches (the others are inherited)
    assert rerun.own_indices(s3, BUCKET, again) == {1, 2, 4, 6}


@pytest.mark.parametrize(
    ("batch", "source", "problem"),
    [
        ({}, {"count": 3}, "batch: give max_items, max_bytes or both"),
        ({"max_items": 0}, {"count": 3}, "batch.max_items: Input should be greater than or equal to 1"),
        ({"max_items": 1001}, {"count": 3}, "batch.max_items: Input should be less than or equal to 1000"),
        ({"max_items": "5"}, {"count": 3}, "batch.max_items: Input should be a valid integer"),
        ({"max_bytes": 100}, {"count": 3}, "batch: max_bytes needs items that name an object"),
        ({"max_items": 2, "size": 3}, {"count": 3}, "batch.size: Extra inputs are not permitted"),
        ({"max_items": 2}, {"shard": {"key": "data/x.csv"}}, "batch: a shard source is not batched"),
        ([2], {"count": 3}, "batch: Input should be a valid dictionary"),
    ],
)
def test_a_batch_that_cannot_be_is_a_rejected_job_naming_the_field(
    s3: Any, sfn: Any, lambda_context: Any, batch: Any, source: dict[str, Any], problem: str
) -> None:
    # GIVEN a manifest whose batch is invalid for its source
    put(s3, "data/x.csv", b"n\n1\n")
    manifest = {"processor": "noop", "source": source, "batch": batch}

    # WHEN StartJob handles it
    _, descriptor, items = run_manifest(s3, manifest, lambda_context)

    # THEN the job is rejected (no stack trace, no items) and the error names the field and the problem
    assert problem in descriptor["error"], descriptor["error"]
    assert items == [] and descriptor["item_count"] == 0


def _batch_of(task: Any) -> list[Any]:
    """A batch's items; none for a task of one item."""
    return list(task.batch) if isinstance(task, ItemBatch) else []


def test_a_batch_closes_before_its_items_outgrow_a_state() -> None:
    # GIVEN 1,000 items with 1,000-byte keys and max_items 1000
    items = [ObjectItem(index=n, bucket=BUCKET, key=f"data/{n:04d}" + "k" * 995) for n in range(1000)]

    # WHEN they are grouped
    batches = list(Batcher(BatchSpec(max_items=1000))(items))

    # THEN every batch's item list fits 64 KiB, and every item is in exactly one batch, in order
    assert len(batches) > 1
    sizes = [len(json.dumps([m.model_dump(exclude_none=True) for m in _batch_of(b)])) for b in batches]
    assert max(sizes) <= 64 * 1024
    assert [m.index for b in batches for m in b.members()] == list(range(1000))


def test_a_batch_that_ended_gives_each_item_its_own_outcome_its_first_item_carrying_the_task(
    s3: Any,
) -> None:
    # GIVEN a succeeded batch task of items 5-7 whose record says item 6 failed on its object (and item 7
    # resumed from its checkpoint)
    job_id = "batch-job"
    members = [ObjectItem(index=n, key=f"data/{n}.csv") for n in (5, 6, 7)]
    batch = ItemBatch(index=5, bucket=BUCKET, batch=members)
    record = BatchRecord(
        job_id=job_id,
        index=5,
        attempt=2,
        processor="csv-profile",
        items=[
            {"index": 5, "status": "succeeded", "attempt": 1, "partial": {"rows": {"$sum": 1}}},
            {"index": 6, "status": "failed", "attempt": 2, "reason": "s3://b/data/6.csv: invalid UTF-8"},
            {
                "index": 7,
                "status": "succeeded",
                "attempt": 2,
                "partial": {"rows": {"$sum": 2}},
                "resumption": {"resumed_attempts": 1, "saved_units": 40, "saved_seconds": 12.5},
            },
        ],
        started_at="2026-01-01T00:00:00Z",
        finished_at="2026-01-01T00:01:00Z",
    )
    s3.put_object(Bucket=BUCKET, Key=layout.batch_record_key(job_id, 5), Body=record.model_dump_json())
    usage = Usage().add_task(Capacity.SPOT, 1.0, 2.0, 120.0)
    state = ItemState(
        job_id=job_id,
        bucket=BUCKET,
        item=batch,
        attempt=2,
        spot_interruptions=1,
        status=TaskStatus.SUCCEEDED,
        usage=usage,
        log="task.log",
    )

    # WHEN its outcomes are written
    outcome = write_batch_outcome(s3, state)

    # THEN items 5 and 7 succeeded with their partials, item 6 failed naming its object; only item 5's
    # outcome carries the task's attempts, interruption and usage (sums over items count it once)
    first = read_json(s3, layout.outcome_key(job_id, 5, "SUCCEEDED"))
    failed = read_json(s3, layout.outcome_key(job_id, 6, "FAILED"))
    last = read_json(s3, layout.outcome_key(job_id, 7, "SUCCEEDED"))
    assert first["partial"] == {"rows": {"$sum": 1}} and last["partial"] == {"rows": {"$sum": 2}}
    assert "s3://b/data/6.csv: invalid UTF-8" in failed["reason"] and "items 5-7" in failed["reason"]
    assert (first["attempts"], first["spot_interruptions"]) == (2, 1)
    assert first["usage"]["spot_vcpu_seconds"] == 120.0
    assert (last["attempts"], last["usage"]["spot_vcpu_seconds"], failed["attempts"]) == (0, 0.0, 0)
    # AND item 7's outcome says what its checkpoint saved, as an unbatched item's does
    assert last["resumption"] == {"resumed_attempts": 1, "saved_units": 40, "saved_seconds": 12.5}
    assert first["resumption"] is None
    assert {entry["index"]: entry["status"] for entry in outcome.items or []} == {
        5: "SUCCEEDED",
        6: "FAILED",
        7: "SUCCEEDED",
    }


def test_a_failed_batch_task_keeps_the_items_it_recorded_and_fails_the_others(s3: Any) -> None:
    # GIVEN a batch task of items 0-2 that crashed after item 0's result record was written
    job_id = "crashed-batch"
    batch = ItemBatch(index=0, bucket=BUCKET, batch=[SweepItem(index=n, params={"n": n}) for n in range(3)])
    s3.put_object(
        Bucket=BUCKET,
        Key=layout.result_key(job_id, 0),
        Body=json.dumps({"attempt": 1, "partial": {"n": {"$sum": 1}}}),
    )
    state = ItemState(
        job_id=job_id,
        bucket=BUCKET,
        item=batch,
        attempt=1,
        status=TaskStatus.FAILED,
        reason="exited with code 137: killed (SIGKILL): out of memory or killed",
    )

    # WHEN its outcomes are written
    write_batch_outcome(s3, state)

    # THEN item 0 succeeded, items 1 and 2 failed with the task's reason
    assert read_json(s3, layout.outcome_key(job_id, 0, "SUCCEEDED"))["partial"] == {"n": {"$sum": 1}}
    for index in (1, 2):
        assert "exited with code 137" in read_json(s3, layout.outcome_key(job_id, index, "FAILED"))["reason"]


# ---------------------------------------------------------------- the one-minute minimum


def _stopped_task(run_seconds: float, pull_seconds: float = 0.0) -> tuple[dict[str, Any], datetime]:
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    task = {
        "createdAt": started - timedelta(seconds=pull_seconds + 1),
        "pullStartedAt": started - timedelta(seconds=pull_seconds),
        "startedAt": started,
    }
    return task, started + timedelta(seconds=run_seconds)


def test_seventeen_one_second_tasks_cost_seventeen_task_minutes() -> None:
    # GIVEN 17 tasks of 1 vCPU / 2 GB that each ran one second with no pull to speak of
    usage = Usage()
    for _ in range(17):
        task, stopped_at = _stopped_task(1.0)
        usage = usage.add_task(Capacity.SPOT, 1.0, 2.0, billing.billed_seconds(task, stopped_at))

    # WHEN the cost block prices them
    block = cost_block(usage, "us-east-1", prices={})

    # THEN Fargate bills 17 minutes of 1 vCPU and 2 GB, not 17 seconds
    assert block["fargate"]["spot"]["vcpu_seconds"] == 17 * 60
    assert block["fargate"]["spot"]["gb_seconds"] == 17 * 60 * 2


@pytest.mark.parametrize(
    ("run", "pull", "billed"),
    [(1.0, 0.0, 60.0), (30.0, 25.0, 60.0), (30.0, 40.0, 70.0), (59.2, 0.5, 60.0), (90.25, 0.0, 91.0)],
)
def test_a_task_is_billed_from_its_pull_rounded_up_to_the_second_and_at_least_a_minute(
    run: float, pull: float, billed: float
) -> None:
    # GIVEN a task that pulled its image for `pull` seconds and ran `run` seconds
    task, stopped_at = _stopped_task(run, pull)

    # WHEN its billed time is computed
    # THEN it is the pull plus the run, rounded up, at least 60 s
    assert billing.billed_seconds(task, stopped_at) == billed


def test_a_task_that_never_pulled_nor_started_is_not_billed() -> None:
    # GIVEN a task that failed before its image pull began
    task = {"createdAt": datetime(2026, 1, 1, tzinfo=timezone.utc)}
    # WHEN / THEN it costs nothing
    assert billing.billed_seconds(task, datetime(2026, 1, 1, 0, 5, tzinfo=timezone.utc)) == 0.0


def _job_usage(items: int, per_task: int, polls_per_task: int) -> Usage:
    """The usage of 2-second items on 1 vCPU / 2 GB Spot tasks that pull their image for 30 s."""
    usage = Usage()
    for _ in range(items // per_task):
        usage = usage.add_task(Capacity.SPOT, 1.0, 2.0, billing.billed_duration(30 + 2 * per_task))
        usage = usage.add_lambda(256, 0.1, 1)  # Launch
        for _ in range(polls_per_task):
            usage = usage.add_lambda(256, 0.1, 3)  # Wait → Poll → CheckTask
        usage = usage.model_copy(update={"state_transitions": usage.state_transitions + 1})
    return usage


def test_the_cost_of_one_task_per_item_shown_for_a_batched_job_is_a_lower_bound() -> None:
    # GIVEN 10,000 items of 2 s run one per task (polled 3 times each), and in batches of 100 (6 polls)
    alone = cost_block(_job_usage(10_000, 1, 3), "us-east-1", prices={})
    batched = cost_block(_job_usage(10_000, 100, 6), "us-east-1", prices={}, items=10_000, tasks=100)

    # WHEN the batched job's cost block estimates one task per item
    estimate = batched["one_task_per_item"]

    # THEN the estimate lies between the batched cost and what one task per item really costs, and the
    # README's worked figure holds: $5.24 against $0.15, with a minute billed per task
    assert estimate["tasks"] == 10_000
    assert batched["total_usd"] < estimate["usd"] <= alone["total_usd"]
    assert (round(alone["total_usd"], 2), round(batched["total_usd"], 2)) == (5.24, 0.15)
    assert alone["fargate"]["spot"]["vcpu_seconds"] == 10_000 * 60
    assert "one_task_per_item" not in alone
