"""Run a processor on local data, without S3 or a job: for unit tests of your own processors.

from worker.testing import run_processor
partial = run_processor("csv-profile", b"a,b\\n1,x\\n")
shards = [run_processor("csv-profile", data, start=s, end=e, header_end=h) for s, e in ranges]
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jobcore.models import InputObject, Item, JobDescriptor, ObjectItem, ShardItem, SweepItem
from worker import processors, storage
from worker.api import Context, ProcessFn, get_processor
from worker.cancel import Cancellation
from worker.checkpoints import CheckpointStore, LocalBackend


def run_processor(
    processor: str | ProcessFn,
    data: bytes | Path | None = None,
    *,
    start: int | None = None,
    end: int | None = None,
    header_end: int = 0,
    index: int = 0,
    params: dict[str, Any] | None = None,
    item_params: dict[str, Any] | None = None,
    attempt: int = 1,
    workdir: Path | None = None,
    env: dict[str, str] | None = None,
    checkpoints: Path | None = None,
) -> Any:
    """Run `processor` (a registered name or the function) on `data` (bytes or a local file; None for an
    item without input) as item `index` with the byte range [start, end) and header [0, header_end).
    Returns its partial result. Outputs stay in `workdir`/output when `workdir` is given. With
    `checkpoints` (a directory), the item's checkpoint is kept there between calls: a call with a higher
    `attempt` resumes from what an earlier one saved. Without data the item is a sweep item with
    `item_params`; with data it is a shard (start or end given) or a whole object, and `item_params` are
    overlaid on `params` (in a job only sweep items have params of their own)."""
    if isinstance(processor, str):
        processors.discover()
        spec = get_processor(processor)
        if spec is None:
            raise KeyError(f"unknown processor {processor!r}")
        name, func = spec.name, spec.func
    else:
        name, func = getattr(processor, "__name__", "local"), processor
    size = (data.stat().st_size if isinstance(data, Path) else len(data)) if data is not None else 0
    key = data.name if isinstance(data, Path) else "input/local"
    item: Item
    job_params = params or {}
    if data is None:
        item = SweepItem(index=index, params=item_params or {})
    else:
        job_params = {**job_params, **(item_params or {})}
        if start is not None or end is not None:
            item = ShardItem(
                index=index, bucket="local", key=key, start=start or 0, end=end, header_end=header_end
            )
        else:
            item = ObjectItem(index=index, bucket="local", key=key)
    job = JobDescriptor(
        job_id="local",
        input=InputObject(bucket="local", key=key, size=size),
        processor=name,
        params=job_params,
        item_count=1,
        created_at=datetime.now(UTC).isoformat(),
    )
    source = storage.BytesSource(data, name=f"local:{key}") if data is not None else None
    with tempfile.TemporaryDirectory(prefix="spotmap-") as tmp:
        cancellation = Cancellation()
        store = (
            CheckpointStore(
                LocalBackend(checkpoints, index),
                attempt=attempt,
                workdir=workdir or Path(tmp),
                cancellation=cancellation,
            )
            if checkpoints is not None
            else None
        )
        ctx = Context(
            job=job,
            item=item,
            attempt=attempt,
            workdir=workdir or Path(tmp),
            source=source,
            cancellation=cancellation,
            env=env or {},
            checkpoints=store,
        )
        return func(ctx)
