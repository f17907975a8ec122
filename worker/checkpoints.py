"""Checkpoints: an item's progress, saved so that the relaunch after a Spot reclaim resumes instead of
starting over.

Each item has one checkpoint object, `jobs/<job_id>/checkpoints/<index>.tar` (`jobcore.layout`): a tar
archive of `checkpoint.json` (what it holds, which attempt saved it, how much work it represents) and
the payload (`data` for bytes or JSON, `dir/...` for a directory). Every save replaces the whole object
with ONE PutObject of the finished archive, built first in the attempt's scratch space: S3 never adds a
partial object ("Amazon S3 never adds partial objects; if you receive a success response, Amazon S3
added the entire object to the bucket", https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html),
so a reader finds the previous checkpoint or the new one, never half of one, whenever the writer is
killed. A stop signal that arrives during a save lets it finish (a deferred section) and is raised after.
One PutObject takes at most 5 GB (no multipart upload, whose parts would need more grants); a larger
checkpoint fails the item naming the limit. The object is deleted once the item's result record is
written; the bucket's versioning keeps replaced and deleted versions until its lifecycle expires them.

What the summary counts (`jobcore.models.Resumption`): an attempt that resumed from a checkpoint saved
the work that checkpoint held: `progress` (the processor's own units, `ctx.checkpoint(..., progress=N)`)
and the seconds of work behind it (the attempts before it, from their start to the moment they saved).
Each checkpoint carries the resumptions of the attempt that saved it, so the successful attempt reports
every resumption along the chain of checkpoints that led to its result.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from jobcore import layout
from jobcore.models import Resumption
from worker.cancel import Cancellation
from worker.errors import ConfigError, ProcessingError
from worker.logs import get_logger

LOG = get_logger("checkpoints")

FORMAT = 1
META = "checkpoint.json"
DATA = "data"
DIRECTORY = "dir"
MAX_CHECKPOINT_BYTES = 5 * 1024**3  # one PutObject (API_PutObject: "up to 5 GB in size")

#: the command processor's checkpoint directory, and the variable that names it
ENV_CHECKPOINT_DIR = "SPOTMAP_CHECKPOINT_DIR"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself (`ctx.resumed`)."""

    kind: str  # "bytes", "json" or "directory"
    attempt: int  # the attempt that saved it
    progress: int | float | None  # the processor's units of work done, when it said
    work_seconds: float  # the work behind it: seconds of the attempts that led to it, until they saved
    saved_at: str
    resumption: Resumption  # the resumptions of the attempt that saved it

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "kind": self.kind,
            "attempt": self.attempt,
            "progress": self.progress,
            "work_seconds": self.work_seconds,
            "saved_at": self.saved_at,
            "resumption": self.resumption.model_dump(),
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CheckpointInfo:
        if document.get("format") != FORMAT or document.get("kind") not in ("bytes", "json", "directory"):
            raise ValueError(f"not a spotmap checkpoint (format {document.get('format')!r})")
        return cls(
            kind=str(document["kind"]),
            attempt=int(document["attempt"]),
            progress=document.get("progress"),
            work_seconds=float(document.get("work_seconds") or 0.0),
            saved_at=str(document.get("saved_at") or ""),
            resumption=Resumption.model_validate(document.get("resumption") or {}),
        )


class Backend(Protocol):
    """Where an item's one checkpoint object lives."""

    name: str

    def put(self, archive: Path) -> None:
        """Replace the checkpoint with the file `archive`, atomically."""

    def get(self, archive: Path) -> bool:
        """Copy the checkpoint into the file `archive`; False when there is none."""

    def delete(self) -> None: ...


class S3Backend:
    """`jobs/<job_id>/checkpoints/<index>.tar` in the job bucket, with the task role's grants: PutObject,
    GetObject, DeleteObject there, and ListBucket on that prefix so that a missing checkpoint is a 404
    and not a 403 (GetObject API reference, "Permissions")."""

    def __init__(self, s3: Any, bucket: str, job_id: str, index: int) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = layout.checkpoint_key(job_id, index)
        self.name = f"s3://{bucket}/{self.key}"

    def put(self, archive: Path) -> None:
        with archive.open("rb") as body:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=body, ContentType="application/x-tar")

    def get(self, archive: Path) -> bool:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return False
            if code in ("AccessDenied", "403"):
                raise ConfigError(
                    f"the task role may not read checkpoints: GetObject {self.name} answered 403 "
                    "AccessDenied (it needs s3:GetObject there and s3:ListBucket on the prefix)"
                ) from error
            raise
        with archive.open("wb") as file:
            shutil.copyfileobj(response["Body"], file, 1 << 20)
        return True

    def delete(self) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.key)


class LocalBackend:
    """A file in a local directory (`worker.testing.run_processor`): os.replace makes the swap atomic."""

    def __init__(self, directory: Path, index: int = 0) -> None:
        self.path = directory / f"{index}.tar"
        self.name = str(self.path)

    def put(self, archive: Path) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staged = self.path.with_name(self.path.name + ".part")
        shutil.copyfile(archive, staged)
        os.replace(staged, self.path)

    def get(self, archive: Path) -> bool:
        if not self.path.exists():
            return False
        shutil.copyfile(self.path, archive)
        return True

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _tree_state(directory: Path) -> tuple[tuple[str, int, int], ...]:
    """What a directory holds (paths, sizes, modification times): tells whether it changed."""
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink():
            stat = path.stat()
            found.append((path.relative_to(directory).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class CheckpointStore:
    """One attempt's view of its item's checkpoint: resume from it, save it, delete it."""

    def __init__(
        self,
        backend: Backend,
        *,
        attempt: int,
        workdir: Path,
        cancellation: Cancellation | None = None,
        may_exist: bool = True,
    ) -> None:
        self.backend = backend
        self.attempt = attempt
        self.workdir = workdir
        self.cancellation = cancellation or Cancellation()
        # attempt 1 of an item: no earlier attempt can have saved a checkpoint, so none is looked up
        self.may_exist = may_exist
        self.started_wall = time.time()
        self._started = time.monotonic()
        self._loaded = False
        self._resumed: CheckpointInfo | None = None
        self._value: Any = None
        self._saved = False
        self._directory: Path | None = None
        self._directory_state: tuple[tuple[str, int, int], ...] = ()

    # ------------------------------------------------------------------------------------ resuming
    @property
    def resumed(self) -> CheckpointInfo | None:
        """The checkpoint this attempt resumed from (once `resume_from()` found one)."""
        return self._resumed

    @property
    def resumption(self) -> Resumption | None:
        """The resumptions that led to this attempt's work, for its result record; None if it did not
        resume."""
        info = self._resumed
        if info is None:
            return None
        before = info.resumption
        return Resumption(
            resumed_attempts=before.resumed_attempts + 1,
            saved_units=before.saved_units + (info.progress or 0),
            saved_seconds=round(before.saved_seconds + info.work_seconds, 3),
        )

    def resume_from(self) -> Any:
        """The last checkpoint's value (bytes, a JSON value, or the Path of its restored directory), or
        None when the item has none. Read once per attempt."""
        if not self._loaded:
            self._loaded = True
            self._load()
        return self._value

    def _load(self) -> None:
        if not self.may_exist:
            return
        staging = self._staging()
        archive = staging / "resume.tar"
        if not self.backend.get(archive):
            return
        try:
            with tarfile.open(archive, "r") as tar:
                meta = tar.extractfile(META)
                if meta is None:
                    raise ValueError(f"{META} missing")
                info = CheckpointInfo.from_json(json.load(meta))
                if info.kind == "directory":
                    restored = staging / "restored"
                    members = [m for m in tar.getmembers() if m.name.split("/", 1)[0] == DIRECTORY]
                    tar.extractall(restored, members=members, filter="data")
                    value: Any = restored / DIRECTORY
                    value.mkdir(exist_ok=True)
                else:
                    data = tar.extractfile(DATA)
                    if data is None:
                        raise ValueError(f"{DATA} missing")
                    raw = data.read()
                    value = raw if info.kind == "bytes" else json.loads(raw)
        except (tarfile.TarError, KeyError, ValueError, OSError) as error:
            raise ProcessingError(f"checkpoint {self.backend.name} is damaged: {error}") from error
        finally:
            archive.unlink(missing_ok=True)
        self._resumed, self._value = info, value
        LOG.info(
            "resuming from a checkpoint",
            extra={
                "checkpoint": self.backend.name,
                "saved_by_attempt": info.attempt,
                "progress": info.progress,
                "work_seconds": info.work_seconds,
            },
        )

    # -------------------------------------------------------------------------------------- saving
    def save(self, state: Any, progress: int | float | None = None) -> None:
        """Replace the item's checkpoint with `state`: bytes, a directory (a Path), or any JSON value."""
        if state is None:
            raise ValueError("a checkpoint needs a value (None is what resume_from() returns for none)")
        if progress is not None and (isinstance(progress, bool) or not isinstance(progress, (int, float))):
            raise TypeError(f"progress must be a number, not {type(progress).__name__}")
        if isinstance(state, Path):
            if not state.is_dir():
                raise ValueError(f"a checkpoint Path must be a directory: {state}")
            self._save("directory", state, progress, self._work_seconds())
        elif isinstance(state, (bytes, bytearray, memoryview)):
            self._save("bytes", bytes(state), progress, self._work_seconds())
        else:
            try:
                text = json.dumps(state, allow_nan=False)
            except (TypeError, ValueError) as error:
                raise TypeError(f"a checkpoint must be bytes, a directory or JSON: {error}") from error
            self._save("json", text.encode(), progress, self._work_seconds())

    def directory(self) -> Path:
        """The attempt's checkpoint directory: the last directory checkpoint restored into it, or empty.
        `save_directory()` saves it if it changed since."""
        if self._directory is None:
            restored = self.resume_from()
            target = self.workdir / "checkpoint"
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(restored, Path):
                restored.rename(target)
                self._value = target
            else:
                target.mkdir(parents=True)
            self._directory, self._directory_state = target, _tree_state(target)
        return self._directory

    def save_directory(self) -> bool:
        """Save the checkpoint directory if anything in it changed since it was restored (or saved):
        what the command processor does when its command stops. The work it holds is counted until the
        newest modification in it. Returns whether it saved."""
        directory = self._directory
        if directory is None or not directory.is_dir():
            return False
        state = _tree_state(directory)
        if not state or state == self._directory_state:
            return False
        newest = max(mtime for _, _, mtime in state) / 1e9
        # the command has stopped (a stop is being handled, or it failed): never raise a pending stop here
        self._save("directory", directory, None, self._work_seconds(until_wall=newest), check_after=False)
        self._directory_state = state
        return True

    def _work_seconds(self, until_wall: float | None = None) -> float:
        elapsed = time.monotonic() - self._started if until_wall is None else until_wall - self.started_wall
        base = self._resumed.work_seconds if self._resumed else 0.0
        return round(base + max(0.0, elapsed), 3)

    def _save(
        self,
        kind: str,
        payload: bytes | Path,
        progress: int | float | None,
        seconds: float,
        check_after: bool = True,
    ) -> None:
        info = CheckpointInfo(
            kind=kind,
            attempt=self.attempt,
            progress=progress,
            work_seconds=seconds,
            saved_at=_now(),
            resumption=self.resumption or Resumption(),
        )
        # a stop during the save lets it finish, then raises Terminated (the processor stops there)
        with self.cancellation.deferred(check_after):
            staging = self._staging()
            archive = staging / "save.tar"
            with tarfile.open(archive, "w") as tar:
                meta = json.dumps(info.to_json()).encode()
                member = tarfile.TarInfo(META)
                member.size, member.mtime = len(meta), int(time.time())
                tar.addfile(member, io.BytesIO(meta))
                if isinstance(payload, Path):
                    tar.add(payload, arcname=DIRECTORY)
                else:
                    member = tarfile.TarInfo(DATA)
                    member.size, member.mtime = len(payload), int(time.time())
                    tar.addfile(member, io.BytesIO(payload))
            size = archive.stat().st_size
            if size > MAX_CHECKPOINT_BYTES:
                archive.unlink()
                raise ProcessingError(
                    f"checkpoint of {size:,} bytes is larger than the 5 GB one PutObject takes: save less "
                    "(write large results to the output directory instead)"
                )
            try:
                self.backend.put(archive)
            finally:
                archive.unlink(missing_ok=True)
            self._saved = True
            LOG.info(
                "checkpoint saved",
                extra={"checkpoint": self.backend.name, "kind": kind, "bytes": size, "progress": progress},
            )

    def _staging(self) -> Path:
        staging = self.workdir / "checkpoint-staging"
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    # ------------------------------------------------------------------------------------ deleting
    def discard(self) -> None:
        """The item succeeded: delete its checkpoint. Only when one can exist (an earlier attempt, or this
        one, may have saved it); best effort, since the result is already recorded."""
        if not (self.may_exist or self._saved):
            return
        try:
            self.backend.delete()
        except Exception as error:  # the item succeeded; a leftover checkpoint only costs storage
            why = f"{type(error).__name__}: {error}"
            LOG.warning(f"could not delete the checkpoint {self.backend.name}: {why}")


def for_task(
    s3: Any, bucket: str, job_id: str, index: int, attempt: int, workdir: Path, cancellation: Cancellation
) -> CheckpointStore:
    """The checkpoint store of one worker task (an attempt of an item)."""
    return CheckpointStore(
        S3Backend(s3, bucket, job_id, index),
        attempt=attempt,
        workdir=workdir,
        cancellation=cancellation,
        may_exist=attempt > 1,
    )
