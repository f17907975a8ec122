"""What `spotmap local run` leaves on disk, bounded: the bucket copy (--out) replaces the previous run's
copy (and says so), the state directory's logs and scratch space start fresh with every local cloud that
has the directory to itself, and a key that cannot be a file of its own name is kept under a hashed
name with the key in an index, never lost and never a crash after the job succeeded."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BUCKET_COPY_MARK = ".spotmap-bucket-copy"  # a directory holding it is ours to replace
UNMAPPED_DIR = "_unmapped-keys"
KEY_INDEX = "unmapped-keys.json"
PATH_MAX = 4096
STATE_SUBDIRS = ("logs", "scratch")


class UserError(Exception):
    """A mistake of the command line or its environment: one line, exit 2."""


class StateDir:
    """The state directory (.spotmap) of one local cloud. Every local cloud using it holds a shared lock
    on it while it runs; one that finds no other (the exclusive lock is free) first removes the logs
    and scratch space of earlier runs, so the directory holds one run's worth, not every run's."""

    def __init__(self, path: Path):
        self.path = path
        self._lock: IO[str] | None = None

    def claim(self) -> bool:
        """Take the directory for this process's lifetime; True if no other local cloud uses it."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = (self.path / ".lock").open("a+", encoding="utf-8")
        except OSError as error:
            raise UserError(f"cannot use {self.path} as the state directory: {error.strerror}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        if alone:
            for name in STATE_SUBDIRS:
                shutil.rmtree(self.path / name, ignore_errors=True)
            for stale in self.path.glob("out-*"):  # copies of runs that shared the directory
                shutil.rmtree(stale, ignore_errors=True)
        fcntl.flock(lock, fcntl.LOCK_SH)  # others may share it now; none may clear it under us
        self._lock = lock
        return alone

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def prepare_out_dir(out_dir: Path, is_default: bool) -> str | None:
    """Make out_dir an empty directory for this run's bucket copy, before anything starts. Returns what
    to tell the user (a replaced copy), or None. UserError: a file, or a directory of other things."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file; name a directory (it is created if missing)")
    note = None
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / BUCKET_COPY_MARK).exists() and not is_default:
            raise UserError(
                f"--out {out_dir} is a directory of other files; name a new or empty directory "
                f"(an earlier bucket copy of spotmap there is replaced)"
            )
        note = f"replacing the previous bucket copy in {out_dir}"
        try:
            shutil.rmtree(out_dir)
        except OSError as error:
            raise UserError(f"cannot replace {out_dir}: {error.strerror}") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / BUCKET_COPY_MARK).write_text(
            "A copy of the local cloud's bucket, written by `spotmap local run`: the next run replaces it.\n",
            encoding="utf-8",
        )
    except OSError as error:
        raise UserError(f"cannot write the bucket copy to {out_dir}: {error.strerror or error}") from None
    return note


def local_path(out_dir: Path, key: str) -> Path | None:
    """Where `key` goes under out_dir, or None if it cannot be a file of its own name: empty, '.' or
    '..' segments (or escaping out_dir), a segment longer than the file system allows, a path too long."""
    parts = key.split("/")
    if "\0" in key or any(part in ("", ".", "..") for part in parts):
        return None
    try:
        name_max = os.pathconf(out_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if any(len(part.encode("utf-8", "surrogateescape")) > name_max for part in parts):
        return None
    target = out_dir.joinpath(*parts)
    if len(str(target).encode("utf-8", "surrogateescape")) >= PATH_MAX - 64:  # room for temp suffixes
        return None
    return target


@dataclass
class BucketCopy:
    files: int = 0
    unmapped: dict[str, str] = field(default_factory=dict)  # file under out_dir -> the key it holds

    def note(self, out_dir: Path) -> str | None:
        if not self.unmapped:
            return None
        return (
            f"{len(self.unmapped)} key(s) cannot be files of their own name here; "
            f"kept under {out_dir / UNMAPPED_DIR}, keys listed in {out_dir / KEY_INDEX}"
        )


def copy_objects(s3: Any, bucket: str, out_dir: Path) -> BucketCopy:
    """Copy every object of the bucket to out_dir (keys become paths: summaries/<job_id>.json ...)."""
    out_dir = out_dir.resolve()
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    copied = BucketCopy()
    lock = threading.Lock()

    def fetch(key: str) -> None:
        if key.endswith("/") and key.strip("/"):
            return  # a folder marker: the folder exists when its objects are copied
        target = local_path(out_dir, key)
        if target is not None:
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, key, str(target))
                with lock:
                    copied.files += 1
                return
            except OSError as error:  # a key that is also another key's "folder", a name refused here
                if error.errno not in (errno.ENAMETOOLONG, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
        name = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
        hashed = out_dir / UNMAPPED_DIR / name
        hashed.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(hashed))
        with lock:
            copied.files += 1
            copied.unmapped[f"{UNMAPPED_DIR}/{name}"] = key

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fetch, keys))
    if copied.unmapped:
        (out_dir / KEY_INDEX).write_text(
            json.dumps(dict(sorted(copied.unmapped.items())), indent=2, ensure_ascii=False) + "\n",
            encoding="utf-8",
        )
    return copied
