"""The processor API: what a processor module imports.

    from worker.api import Context, ProcessingError, processor

    @processor("word-count")
    def word_count(ctx: Context) -> dict:
        words = sum(len(line.split()) for line in ctx.lines())
        return {"words": {"$sum": words}}

A processor is a function registered by name; the job descriptor names it. It receives a `Context` and
returns its partial result: JSON whose values declare how they combine (`jobcore.merge`), so Summarize
merges the partial results of every item without importing the processor. Files it writes to
`ctx.output_dir` are uploaded to `output/<job_id>/<index>/attempt-<n>/`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from logging import Logger
from pathlib import Path
from typing import Any, TypeVar

from jobcore.models import Item, JobDescriptor, ObjectItem, SweepItem
from worker import storage
from worker.cancel import Cancellation
from worker.checkpoints import CheckpointInfo, CheckpointStore, LocalBackend
from worker.errors import ConfigError, ProcessingError, Terminated
from worker.logs import get_logger

__all__ = [
    "ConfigError",
    "Context",
    "ProcessingError",
    "ProcessorSpec",
    "Terminated",
    "get_processor",
    "processor",
    "registered",
]

ProcessFn = Callable[["Context"], Any]
F = TypeVar("F", bound=ProcessFn)


class Context:
    """Everything a processor gets for one item (one attempt)."""

    def __init__(
        self,
        *,
        job: JobDescriptor,
        item: Item,
        attempt: int,
        workdir: Path,
        source: storage.Source | None,
        cancellation: Cancellation | None = None,
        env: Mapping[str, str] | None = None,
        logger: Logger | None = None,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self.job = job
        self.job_id = job.job_id
        self.item = item
        self.index = item.index
        self.attempt = attempt
        #: job params overlaid with the item's params (a sweep item's; the item wins)
        self.params: dict[str, Any] = {**job.params, **(item.params if isinstance(item, SweepItem) else {})}
        self.workdir = workdir
        #: files written here are uploaded when the processor returns successfully
        self.output_dir = workdir / "output"
        #: private scratch space for this attempt (also TMPDIR of the command processor's child)
        self.scratch_dir = workdir / "tmp"
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        #: the worker's environment (the task's, or the one given to `worker.runner.main`)
        self.env: Mapping[str, str] = env if env is not None else {}
        self.log: Logger = logger or get_logger("processor")
        self._source = source
        self._segments = storage.segments_for(item)
        self._cancellation = cancellation or Cancellation()
        self._input_path: Path | None = None
        #: where this item's checkpoints go (the job bucket in a task; a local file otherwise)
        self.checkpoints = checkpoints or CheckpointStore(
            LocalBackend(workdir / "checkpoints-local", item.index),
            attempt=attempt,
            workdir=workdir,
            cancellation=self._cancellation,
        )

    # ------------------------------------------------------------------------------------------ input
    @property
    def has_input(self) -> bool:
        """True when the item names an object (a shard or a whole object); sweep items have none."""
        return self._source is not None

    @property
    def input_name(self) -> str | None:
        """`s3://bucket/key` of the input object, or None."""
        return self._source.name if self._source is not None else None

    def _require_source(self) -> storage.Source:
        if self._source is None:
            raise ProcessingError(f"item {self.index} names no input object (no key)")
        return self._source

    def open_input(self) -> io.BufferedReader:
        """The item's input as a binary stream: for a shard the header bytes [0, header_end) followed by
        [start, end); otherwise the whole object. Streamed from S3 in chunks."""
        return storage.open_binary(self._require_source(), self._segments)

    def open_text(self, encoding: str = "utf-8-sig", errors: str = "strict") -> io.TextIOWrapper:
        """The input as text with newline='' (what the csv module wants). For exact positions of invalid
        UTF-8 use `lines()`."""
        return io.TextIOWrapper(self.open_input(), encoding=encoding, errors=errors, newline="")

    def lines(self) -> storage.DecodedLines:
        """The input's lines as str, line endings kept, decoded as strict UTF-8 (a leading BOM dropped).
        Invalid UTF-8 raises ProcessingError naming the byte offset in the object and the line.
        `.file_offset()` gives the object offset of the next line (e.g. to report a bad record)."""
        source = self._require_source()
        raw = storage.SegmentStream(source, self._segments)
        return storage.DecodedLines(io.BufferedReader(raw, storage.CHUNK_SIZE), raw, source.name)

    def input_path(self) -> Path:
        """Download the input (header + range for a shard) into the scratch directory once and return its
        path, for tools that need a file. The file name ends like the object's key."""
        if self._input_path is None:
            source = self._require_source()
            key = self.item.key if isinstance(self.item, ObjectItem) else ""
            name = re.sub(r"[^A-Za-z0-9._-]", "_", (key or "input").rsplit("/", 1)[-1]) or "input"
            self._input_path = storage.download(source, self._segments, self.workdir / "input" / name)
        return self._input_path

    # ------------------------------------------------------------------------------------ checkpoints
    def checkpoint(self, state: Any, *, progress: int | float | None = None) -> None:
        """Save the item's progress, replacing its previous checkpoint atomically: `state` is bytes, a
        directory (a Path: its whole tree), or any JSON value. `progress`: how much of the item's work
        it holds, in your own units (e.g. records done), which the summary adds up as work saved.
        A stop signal during the save lets it finish; if a stop was requested, it then raises
        `Terminated` (the attempt ends there and its relaunch resumes from this checkpoint)."""
        self.checkpoints.save(state, progress)

    def resume_from(self) -> Any:
        """The item's last checkpoint, saved by an earlier attempt: bytes, the JSON value, or the Path of
        its directory restored into the scratch space; None when there is none (attempt 1, or no
        attempt saved one). Deleted once the item succeeds."""
        return self.checkpoints.resume_from()

    @property
    def resumed(self) -> CheckpointInfo | None:
        """What the checkpoint `resume_from()` found says about itself: the attempt that saved it, its
        `progress`, `work_seconds`; None if this attempt did not resume."""
        return self.checkpoints.resumed

    def checkpoint_directory(self) -> Path:
        """A directory restored from the item's last directory checkpoint (empty without one); save it
        with `ctx.checkpoint(ctx.checkpoint_directory())`. The command processor hands it to the command
        as SPOTMAP_CHECKPOINT_DIR."""
        return self.checkpoints.directory()

    # ----------------------------------------------------------------------------------- cancellation
    @property
    def cancelled(self) -> bool:
        """True once a stop (SIGTERM: a Spot reclaim, StopTask, an abort) was requested: what a
        cooperative processor polls to save a checkpoint before the stop timeout (120 s) ends."""
        return self._cancellation.requested

    def should_stop(self) -> bool:
        """True once a stop (SIGTERM) was requested. Processors registered with cooperative=True poll this
        and return (or raise) promptly; their result is then discarded."""
        return self._cancellation.requested

    def check_stop(self) -> None:
        """Raise `Terminated` if a stop was requested."""
        self._cancellation.check()

    def deferred_stop(self, check_after: bool = True) -> AbstractContextManager[None]:
        """A section a stop signal does not interrupt; a pending stop is raised when it ends."""
        return self._cancellation.deferred(check_after)


@dataclass(frozen=True)
class ProcessorSpec:
    name: str
    func: ProcessFn
    cooperative: bool
    module: str
    description: str


_REGISTRY: dict[str, ProcessorSpec] = {}


def processor(name: str, *, cooperative: bool = False) -> Callable[[F], F]:
    """Register `func(ctx) -> partial` as the processor `name` (what a job's `processor` field names).

    cooperative=False (default): a stop signal raises `Terminated` inside the processor wherever it is.
    cooperative=True: a stop signal only makes `ctx.should_stop()` true; the processor must then return or
    raise within the stop timeout (else it is killed), and its result is discarded."""
    if not name or not isinstance(name, str):
        raise ValueError("a processor needs a non-empty name")

    def register(func: F) -> F:
        existing = _REGISTRY.get(name)
        if existing is not None and (existing.module, existing.func.__qualname__) != (
            func.__module__,
            func.__qualname__,
        ):
            raise ValueError(f"processor {name!r} is already registered by {existing.module}")
        doc = (func.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ProcessorSpec(name, func, cooperative, func.__module__, doc[0] if doc else "")
        return func

    return register


def registered() -> dict[str, ProcessorSpec]:
    """The processors registered so far, by name."""
    return dict(_REGISTRY)


def get_processor(name: str) -> ProcessorSpec | None:
    return _REGISTRY.get(name)


def iter_specs() -> Iterator[ProcessorSpec]:
    return iter(sorted(_REGISTRY.values(), key=lambda spec: spec.name))
