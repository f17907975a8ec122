"""An item's outcome: its final record, written once it ended (by the classification of its stopped
task, or by RecordFailure); a batch writes one per item (jobcore.batching)."""

from __future__ import annotations

from typing import Any

from jobcore import batching
from jobcore.job_store import JobStore
from jobcore.models import ItemBatch, ItemOutcome, ItemState


def write_outcome(
    store: JobStore, state: ItemState, partial: Any = None, resumption: Any = None
) -> ItemOutcome:
    """The item's final record, its outcome (one per item of a batch)."""
    if isinstance(state.item, ItemBatch):
        return batching.write_batch_outcome_to(store, state)
    outcome = ItemOutcome.of(state, partial, resumption)
    store.write_outcome(outcome)
    return outcome
