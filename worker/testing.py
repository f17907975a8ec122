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

from jobcore.models import InputObject, Item, JobDescriptor
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
    `attempt` resumes from what an earlier one saved."""
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
    item = Item(
        index=index,
        bucket="local" if data is not None else None,
        key=key if data is not None else None,
        start=start,
        end=end,
        header_end=header_end,
        params=item_params or {},
    )
    job = JobDescriptor(
        job_id="local",
        input=InputObject(bucket="local", key=key, size=size),
        processor=name,
        params=params or {},
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
