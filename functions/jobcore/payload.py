"""Step Functions' payload limit, applied before anything starts.

"Maximum input or output size for a task, state, or execution: 256 KiB of data as a UTF-8 encoded
string" (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html). A job whose item is
too large for that would start and then fail item by item with States.DataLimitExceeded, so StartJob
measures every item as the state machine will carry it and refuses the job instead, naming the item.

An item travels as the Map's ItemSelector output, `{"job_id", "bucket", "item"}`, which is also its
child execution's input. The child then adds to that state what its task produces (attempts, usage, the
reason of a failure, the caught error, and on success the outcome record, itself up to
`OUTCOME_OUTPUT_LIMIT`), and the Lambda task results wrap it in their SDK metadata. An item may
therefore take only what that leaves of the limit.
"""

from __future__ import annotations

import json
from typing import Any

from jobcore.stopped_tasks import OUTCOME_OUTPUT_LIMIT

STATE_PAYLOAD_LIMIT = 256 * 1024  # bytes of UTF-8 JSON
# What an item's child adds to its state: the outcome record (partial included) and 32 KiB for the rest
# (reason ≤ 2,000 characters, the caught error, log location, usage, the Lambda result's metadata).
ITEM_STATE_RESERVE = OUTCOME_OUTPUT_LIMIT + 32 * 1024
MAX_ITEM_STATE_BYTES = STATE_PAYLOAD_LIMIT - ITEM_STATE_RESERVE


class PayloadTooLarge(ValueError):
    """An item or an execution input would not fit Step Functions' payload limit."""


def json_bytes(document: Any) -> int:
    """The size Step Functions counts: compact JSON as UTF-8."""
    return len(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


class ItemStateMeter:
    """Measures items as the Map passes them to their child executions (ItemSelector output)."""

    def __init__(self, job_id: str, bucket: str):
        # {"job_id":"…","bucket":"…","item":<item>}: everything but the item is the same for every item
        self._envelope = json_bytes({"job_id": job_id, "bucket": bucket, "item": None}) - len(b"null")

    def size(self, item_json: bytes) -> int:
        """Bytes of the child execution's input for an item given as its compact JSON."""
        return self._envelope + len(item_json)

    def check(self, index: int, item_json: bytes) -> None:
        size = self.size(item_json)
        if size > MAX_ITEM_STATE_BYTES:
            raise PayloadTooLarge(
                f"item {index} is too large for the state machine: it is {size:,} bytes as the Map passes "
                f"it to its child execution (ItemSelector output), and an item may take at most "
                f"{MAX_ITEM_STATE_BYTES:,} bytes of a state's {STATE_PAYLOAD_LIMIT:,} (256 KiB); the rest "
                f"is kept for what its task adds (outcome, reason, usage). Keep large data in S3 (data/) "
                f"and pass its key instead"
            )


def check_execution_input(document: Any) -> None:
    size = json_bytes(document)
    if size > STATE_PAYLOAD_LIMIT:
        raise PayloadTooLarge(
            f"the execution input is {size:,} bytes; Step Functions accepts at most "
            f"{STATE_PAYLOAD_LIMIT:,} (256 KiB)"
        )
