"""Every patch of moto's internals, in one place: the local cloud's seam with moto.

moto is pinned (pyproject.toml) to the range the suite has run against, MOTO_RANGE; importing this
module checks the installed version against it, and each patch looks its target up through
`_target`, so that a moto which moved or renamed one says which attribute, in one line
(MotoSeamError), instead of failing later inside a job. tests/unit/test_moto_patches.py checks each
patched attribute's shape and that the patch is in effect after `configure()`.

The patches, applied once per process by `configure()` (LocalCloud.start):
- Step Functions executes definitions (moto's user config);
- performance, each measured with yappi on a local job: one boto3 client per (region, service) for
  the interpreter's Task states, cached JSONPath parsers and module list, a JSON-aware deepcopy;
- the Distributed Map's ResultWriter writes AWS's result files (spotmap/result_writer.py formats them);
- S3's ListObjectsV2 reads one page from a sorted index of each bucket's key names, kept up to date
  by the key store's writes (moto 5.2 builds, filters and sorts the whole bucket for every page).
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import functools
import importlib
import re
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import moto

from spotmap import result_writer
from spotmap.principals import RoleCredentials
from spotmap.result_writer import SUCCEEDED, ChildExecution, MapRun

# The moto versions the suite has run against: the same bounds as moto[server] in pyproject.toml
# (tests/unit/test_requirements.py checks they agree).
MOTO_MIN = (5, 2, 5)
MOTO_BELOW = (5, 3)
MOTO_RANGE = f">={'.'.join(map(str, MOTO_MIN))},<{'.'.join(map(str, MOTO_BELOW))}"  # >=5.2.5,<5.3

SFN = "moto.stepfunctions.parser.asl"

# moto server port -> the local cloud's in-process Lambda client (each cloud has its own instances)
IN_PROCESS_LAMBDA: dict[str, Any] = {}
# moto server port -> the credentials of the state machine's role (the interpreter's S3 calls)
INTERPRETER_ROLE: dict[str, RoleCredentials] = {}


class MotoSeamError(ImportError):
    """The installed moto is not one the local cloud's patches were written for."""


def _release(version: str) -> tuple[int, ...]:
    """(5, 2, 5) for "5.2.5", "5.2.5.dev3" or "5.2.5rc1": the numeric release only."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def check_version(version: str | None = None) -> None:
    """Refuse a moto outside MOTO_RANGE (default: the installed moto's version)."""
    installed = moto.__version__ if version is None else version
    if not MOTO_MIN <= _release(installed) < MOTO_BELOW:
        raise MotoSeamError(
            f"moto {installed} is installed; spotmap's local cloud patches moto's internals and is "
            f"tested with moto{MOTO_RANGE} (pyproject.toml): install that range, or re-check "
            "spotmap/moto_patches.py against this moto and widen MOTO_RANGE"
        )


def _missing(name: str) -> MotoSeamError:
    return MotoSeamError(
        f"moto {moto.__version__} has no {name} (spotmap/moto_patches.py patches it; "
        f"tested with moto{MOTO_RANGE})"
    )


def _target(module: str, attribute: str) -> Any:
    """moto's `module.attribute`, or a one-line MotoSeamError naming it and the tested range."""
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as missing:
        raise _missing(f"{module}.{attribute}") from missing


def _name(owner: Any, attribute: str) -> str:
    """moto.x.y.attribute for a module, moto.x.y.Class.attribute for a class."""
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{attribute}"
    return f"{owner.__module__}.{owner.__qualname__}.{attribute}"


# "moto.x.y[.Class].attribute" -> moto's own value, before the patch replaced it (for the tests)
ORIGINALS: dict[str, Any] = {}


def _replace(owner: Any, attribute: str, replacement: Any) -> None:
    """Set `owner.attribute` (a module or class of moto's) to replacement, keeping moto's own."""
    name = _name(owner, attribute)
    if not hasattr(owner, attribute):
        raise _missing(name)
    ORIGINALS.setdefault(name, getattr(owner, attribute))
    setattr(owner, attribute, replacement)


check_version()


# ---------------------------------------------------------------- the patched attributes
# (module, attribute) of every patch, for the error above and the tests.
EXECUTE_CONFIG = ("moto.core.config", "default_user_config")  # ["stepfunctions"]["execute_state_machine"]
CLIENT_FACTORIES = (
    (f"{SFN}.utils.boto_client", "boto_client_for"),
    (f"{SFN}.component.state.exec.state_task.lambda_eval_utils", "boto_client_for"),
    (f"{SFN}.component.state.exec.state_map.item_reader.eval.resource_eval_s3", "boto_client_for"),
)
PARSERS = (
    (f"{SFN}.utils.json_path", "parse"),  # jsonpath_ng.ext.parse
    (f"{SFN}.component.common.path.result_path", "parse"),  # jsonpath_ng.parse
)
MODULE_LIST = ("moto.backends", "list_of_moto_modules")
# the modules that deep-copy JSON values (state inputs, outputs, parameters) with `copy`
JSON_COPIERS = tuple(
    (f"{SFN}.{name}", "copy")
    for name in (
        "eval.states",
        "component.common.string.string_expression",
        "component.common.path.result_path",
        "component.state.exec.state_task.service.state_task_service",
        "component.state.exec.execute_state",
        "component.state.exec.state_map.state_map",
        "eval.event.event_manager",
    )
)
_MAP = f"{SFN}.component.state.exec.state_map"
RESULT_WRITER_DECL = (f"{_MAP}.result_writer.result_writer_decl", "ResultWriter")  # ._eval_body
CHILD_WORKER = (
    f"{_MAP}.iteration.itemprocessor.distributed_item_processor_worker",
    "DistributedItemProcessorWorker",
)  # ._eval_input, ._eval_job
RESULT_WRITER_S3 = (f"{_MAP}.result_writer.resource_eval.resource_eval_s3", "ResourceEvalS3")
# (class, method) of the ResultWriter's patches
METHODS = (
    (RESULT_WRITER_DECL, "_eval_body"),
    (CHILD_WORKER, "_eval_input"),
    (CHILD_WORKER, "_eval_job"),
    (RESULT_WRITER_S3, "_handle_put_object"),
)
S3_BACKEND = ("moto.s3.models", "S3Backend")  # .list_objects_v2
KEY_STORE = ("moto.s3.utils", "_VersionedKeyStore")  # a dict: key name -> the key's versions
# the key store's methods that add or remove key names (moto calls the first three; the dict's own
# others are kept honest too, so that no write can leave the index stale)
KEY_STORE_NAMED_WRITES = ("__setitem__", "setlist", "pop", "__delitem__", "setdefault")
KEY_STORE_OTHER_WRITES = ("update", "clear", "popitem")
# (class, method) of the listing's patches
LISTING_METHODS = (
    (S3_BACKEND, "list_objects_v2"),
    *((KEY_STORE, method) for method in KEY_STORE_NAMED_WRITES + KEY_STORE_OTHER_WRITES),
)


def configure(execute: bool = True) -> bool:
    """Make moto's Step Functions execute definitions (or not) and apply every patch (once per
    process); returns the previous setting, for the caller to restore."""
    config = _target(*EXECUTE_CONFIG)
    if "execute_state_machine" not in config.get("stepfunctions", {}):
        raise _missing(f"{'.'.join(EXECUTE_CONFIG)}['stepfunctions']['execute_state_machine']")
    previous = bool(config["stepfunctions"]["execute_state_machine"])
    config["stepfunctions"]["execute_state_machine"] = execute
    reuse_interpreter_clients()
    cache_moto_lookups()
    copy_interpreter_values_as_json()
    install_result_writer()  # the Map's ResultWriter writes real result files
    install_sorted_key_index()  # a ListObjectsV2 page costs O(log n + page), as in AWS
    from spotmap import moto_callbacks

    moto_callbacks.install()  # task tokens are single-use, as in AWS
    return previous


# ---------------------------------------------------------------- performance (measured: keep as is)
@functools.cache
def cache_moto_lookups() -> None:
    """Two per-request costs of moto that dominate a local job's CPU time, measured with yappi:
    the interpreter builds a new JSONPath parser (a yacc table) for every path it evaluates, and the
    server lists moto's package directory on disk for every request it routes. Both answers never
    change while the process runs, so they are computed once."""
    from jsonpath_ng import parse as plain_parse
    from jsonpath_ng.ext import parse as extended_parse

    parsers: tuple[Callable[[str], Any], ...] = (extended_parse, plain_parse)  # in PARSERS' order
    for (module, attribute), parse in zip(PARSERS, parsers, strict=True):
        _replace(importlib.import_module(module), attribute, functools.lru_cache(maxsize=4096)(parse))
    modules = tuple(_target(*MODULE_LIST)())
    _replace(importlib.import_module(MODULE_LIST[0]), MODULE_LIST[1], lambda: iter(modules))


def _json_deepcopy(value: Any, memo: Any = None) -> Any:
    """copy.deepcopy for the JSON values the interpreter copies (state inputs, outputs, parameters),
    several times a state: plain dicts, lists and scalars are copied directly, anything else by
    copy.deepcopy. JSON values have no cycles, so the memo copy.deepcopy keeps is not needed."""
    kind = type(value)
    if kind is dict:
        return {key: _json_deepcopy(item) for key, item in value.items()}
    if kind is list:
        return [_json_deepcopy(item) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value, memo)


JSON_COPY = types.SimpleNamespace(deepcopy=_json_deepcopy, copy=copy.copy)


@functools.cache
def copy_interpreter_values_as_json() -> None:
    """moto's interpreter deep-copies every state's input and output with copy.deepcopy, the largest
    single cost of a local job's main process (measured with yappi); a JSON-aware copy does the same
    work several times faster. Applied to the modules that copy JSON values only."""
    for module, attribute in JSON_COPIERS:
        if _target(module, attribute) is copy:
            _replace(importlib.import_module(module), attribute, JSON_COPY)


@functools.cache
def reuse_interpreter_clients() -> None:
    """moto's ASL interpreter builds a new boto3 client for every Task state (~10 ms of CPU each);
    one client per (region, service) is enough: boto3 clients are thread-safe."""
    from moto.settings import moto_server_port

    original = _target(*CLIENT_FACTORIES[0])

    @functools.lru_cache(maxsize=64)
    def cached(region: str, service: str, port: str, role: RoleCredentials | None) -> Any:
        # keyed by the port too: each local cloud in this process listens on its own port
        if role is None:
            return original(region, service)
        # moto's client (its Config: no retries, the interpreter's timeouts), with the credentials of the
        # state machine's role, as the service calls AWS with the role it assumed
        client = original(region, service)
        return boto3.client(  # type: ignore[call-overload]
            service,
            region_name=region,
            endpoint_url=client.meta.endpoint_url,
            aws_access_key_id=role.access_key_id,
            aws_secret_access_key=role.secret_access_key,
            aws_session_token=role.session_token,
            config=client.meta.config,
        )

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        port = moto_server_port()
        if service == "lambda" and port in IN_PROCESS_LAMBDA:
            return IN_PROCESS_LAMBDA[port]
        return cached(region, service, port, INTERPRETER_ROLE.get(port))

    for module, attribute in CLIENT_FACTORIES:
        _replace(importlib.import_module(module), attribute, boto_client_for)


# ---------------------------------------------------------------- the Distributed Map's ResultWriter
def _now() -> datetime:
    return datetime.now(timezone.utc)


# What each child of a Map Run did, recorded by the wrapped worker, keyed by moto's map run record.
_children: weakref.WeakKeyDictionary[Any, dict[int, ChildExecution]] = weakref.WeakKeyDictionary()
_children_lock = threading.Lock()


def _children_of(map_run_record: Any) -> dict[int, ChildExecution]:
    with _children_lock:
        return _children.setdefault(map_run_record, {})


def _status_of(program_state: Any) -> tuple[str, str | None, str | None]:
    from moto.stepfunctions.parser.asl.eval.program_state import (
        ProgramEnded,
        ProgramError,
        ProgramStopped,
        ProgramTimedOut,
    )

    if isinstance(program_state, ProgramEnded):
        return SUCCEEDED, None, None
    if isinstance(program_state, ProgramError):
        details = program_state.error or {}
        return result_writer.FAILED, details.get("error"), details.get("cause")
    if isinstance(program_state, ProgramStopped):
        return "ABORTED", program_state.error, program_state.cause
    if isinstance(program_state, ProgramTimedOut):
        return "TIMED_OUT", "States.Timeout", None
    return result_writer.FAILED, "States.Runtime", "the child ended without a final state"


def _ordered_children(children: dict[int, ChildExecution], outputs: list[Any]) -> Iterator[ChildExecution]:
    """The children in the order they finished, each succeeded one with its output (moto keeps the
    outputs in item order, failed children's as None)."""
    for child in sorted(children.values(), key=lambda child: (child.stop, child.index)):
        if child.status == SUCCEEDED and child.index < len(outputs):
            yield dataclasses.replace(child, output=outputs[child.index])
        else:
            yield child


@functools.cache
def install_result_writer() -> None:
    """Patch moto's distributed Map worker and its S3 ResultWriter (once per process): moto 5.x's
    ResultWriter (`ResourceEvalS3._handle_put_object`) writes an empty manifest and drops the child
    outputs; moto runs the children as frames and forgets why one failed, so the worker that runs each
    child is wrapped to record its input, status, error, cause and times; and the ResultWriter's
    Parameters are evaluated against the Map state's input, as AWS does (moto uses the Map's result,
    so `"Bucket.$": "$.bucket"` found nothing). See spotmap/result_writer.py for the files."""
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    writer_class = _target(*RESULT_WRITER_DECL)
    worker_class = _target(*CHILD_WORKER)
    s3_writer_class = _target(*RESULT_WRITER_S3)
    for owner, attribute in METHODS:  # all present before any is replaced
        if not hasattr(_target(*owner), attribute):
            raise _missing(f"{owner[0]}.{owner[1]}.{attribute}")
    eval_input = worker_class._eval_input
    eval_job = worker_class._eval_job

    def _eval_input_recorded(self: Any, env_frame: Any) -> None:
        eval_input(self, env_frame)
        env_frame.spotmap_child_input = env_frame.states.get_input()

    def _eval_job_recorded(self: Any, env: Any, job: Any) -> None:
        start = _now()
        try:
            eval_job(self, env, job)
        finally:
            status, error, cause = _status_of(env.program_state())
            child_input = getattr(env, "spotmap_child_input", job.job_input)
            _children_of(self._map_run_record)[job.job_index] = ChildExecution(
                index=job.job_index,
                status=status,
                input=to_json_str(child_input, separators=(",", ":")),
                start=start,
                stop=_now(),
                error=error,
                cause=cause,
            )

    def _eval_body(self: Any, env: Any) -> None:
        # AWS evaluates the Parameters' paths against the Map state's input; moto against the outputs.
        outputs = env.stack.pop()
        env.stack.append(env.states.get_input())
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()
        env.stack.extend([outputs, parameters])
        self.resource_eval.eval_resource(env=env)

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        outputs = env.stack.pop()
        s3: Any = boto_client.boto_client_for(  # looked up at call time: the local cloud caches clients
            service="s3", region=resource_runtime_part.region, state_credentials=state_credentials
        )
        map_run_record = env.map_run_record_pool_manager.get_all().pop()
        with _children_lock:
            children = _children.pop(map_run_record, {})
        bucket = parameters["Bucket"]
        key = result_writer.write_results(
            lambda key, body: s3.put_object(Bucket=bucket, Key=key, Body=body),
            bucket,
            parameters.get("Prefix", ""),
            MapRun(map_run_record.map_run_arn, map_run_record.map_state_machine_arn),
            _ordered_children(children, outputs),
        )
        env.stack.append(
            {"MapRunArn": map_run_record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}}
        )

    _replace(writer_class, "_eval_body", _eval_body)
    _replace(worker_class, "_eval_input", _eval_input_recorded)
    _replace(worker_class, "_eval_job", _eval_job_recorded)
    _replace(s3_writer_class, "_handle_put_object", staticmethod(_handle_put_object))


# ---------------------------------------------------------------- S3 listing at scale
# The sorted key names of a bucket's key store, kept in the store's own attributes (a dict subclass
# is unhashable, so no weak map can hold it); built at the first listing, then kept up to date by
# every write that adds or removes a name, under one lock that a page's walk also holds.
_SORTED_NAMES = "_spotmap_sorted_names"
_key_index_lock = threading.RLock()


@dataclasses.dataclass
class ListingCounters:
    """What the patched ListObjectsV2 did, for the tests (a page must not examine the whole bucket)."""

    pages: int = 0
    names_examined: int = 0


LISTING = ListingCounters()


def _sorted_names(store: Any) -> list[str]:
    """The store's key names in order, built once (callers hold _key_index_lock)."""
    names: list[str] | None = store.__dict__.get(_SORTED_NAMES)
    if names is None:
        names = sorted(dict.keys(store))
        store.__dict__[_SORTED_NAMES] = names
    return names


def _keep_name(store: Any, name: Any) -> None:
    """After a write of `name`: the index holds it exactly when the store does."""
    names: list[str] | None = store.__dict__.get(_SORTED_NAMES)
    if names is None or not isinstance(name, str):
        store.__dict__.pop(_SORTED_NAMES, None)  # rebuilt at the next listing
        return
    at = bisect.bisect_left(names, name)
    indexed = at < len(names) and names[at] == name
    if dict.__contains__(store, name) and not indexed:
        names.insert(at, name)
    elif indexed and not dict.__contains__(store, name):
        del names[at]


def _past(prefix: str) -> str | None:
    """The least string greater than every string starting with `prefix` (None: there is none)."""
    last = ord(prefix[-1])
    if last == 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)


def _first_page(
    store: Any,
    prefix: str,
    delimiter: str,
    after: str | None,
    wanted: int,
    delete_marker: type,
) -> list[Any]:
    """Up to `wanted` entries of moto's merged listing (keys and common prefixes in name order, past
    `after`), walking the sorted names from the first that can match: the keys of a common prefix are
    adjacent in name order, so each common prefix is skipped with one bisection."""
    names = _sorted_names(store)
    at = bisect.bisect_left(names, prefix) if prefix else 0
    if after is not None:
        at = max(at, bisect.bisect_right(names, after))
    entries: list[Any] = []
    while at < len(names) and len(entries) < wanted:
        name = names[at]
        LISTING.names_examined += 1
        if not name.startswith(prefix):
            break  # past the prefix's names
        rest = name[len(prefix) :]
        if delimiter and delimiter in rest:
            common = f"{prefix}{rest.split(delimiter)[0]}{delimiter}"
            end = _past(common)
            if end is None:  # no bisection bound: step over the common prefix's names one by one
                at += 1
                while at < len(names) and names[at].startswith(common):
                    at += 1
            else:
                at = bisect.bisect_left(names, end, at)
            # moto compares a common prefix with StartAfter/the token as a name (it may precede it)
            if after is None or common > after:
                entries.append(common)
            continue
        at += 1
        key = store[name]
        if not isinstance(key, delete_marker):  # a deleted key's name still makes a common prefix
            entries.append(key)
    return entries


@functools.cache
def install_sorted_key_index() -> None:
    """moto 5.2's `S3Backend.list_objects_v2` lists, filters and sorts every key of the bucket for each
    page it answers, so reading 100,000 keys in pages of 1,000 examines 10^7 names (StartJob timed out
    listing P8's prefix; docs/benchmarks.md). The patch answers exactly what moto answers (keys and
    CommonPrefixes merged in name order, delete markers left out, StartAfter or the continuation
    token's name excluded, MaxKeys, moto's own tokens) from a sorted index of each bucket's key names,
    so a page costs O(log n + page), as a page costs in AWS whatever the bucket's size. Cases the patch
    does not model (a table bucket, an unknown token, a negative MaxKeys) go to moto's own."""
    from moto.s3.models import FakeDeleteMarker, FakeTableStorageBucket

    backend_class = _target(*S3_BACKEND)
    store_class = _target(*KEY_STORE)
    for owner, attribute in LISTING_METHODS:  # all present before any is replaced
        if not hasattr(_target(*owner), attribute):
            raise _missing(f"{owner[0]}.{owner[1]}.{attribute}")
    moto_list = backend_class.list_objects_v2

    def list_objects_v2(
        self: Any,
        bucket: Any,
        prefix: str | None,
        delimiter: str | None,
        continuation_token: str | None,
        start_after: str | None,
        max_keys: int,
    ) -> Any:
        tokens = self._pagination_tokens
        if (
            isinstance(bucket, FakeTableStorageBucket)
            or (continuation_token and continuation_token not in tokens)
            or max_keys < 0
        ):
            return moto_list(self, bucket, prefix, delimiter, continuation_token, start_after, max_keys)
        if max_keys == 0:
            return [], False, None  # moto's answer to MaxKeys 0, whatever the bucket holds
        after = tokens[continuation_token] if continuation_token else (start_after or None)
        with _key_index_lock:
            LISTING.pages += 1
            entries = _first_page(
                bucket.keys, prefix or "", delimiter or "", after, max_keys + 1, FakeDeleteMarker
            )
        # moto's own truncation: the page, whether more follow, and the token it remembers
        return self._truncate_result(entries, max_keys)

    def named_write(moto_write: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(moto_write)
        def write(self: Any, key: Any, *args: Any, **kwargs: Any) -> Any:
            with _key_index_lock:
                try:
                    return moto_write(self, key, *args, **kwargs)
                finally:
                    _keep_name(self, key)

        write.__module__ = __name__
        return write

    def other_write(moto_write: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(moto_write)
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _key_index_lock:
                try:
                    return moto_write(self, *args, **kwargs)
                finally:
                    self.__dict__.pop(_SORTED_NAMES, None)  # rebuilt at the next listing

        write.__module__ = __name__
        return write

    _replace(backend_class, "list_objects_v2", list_objects_v2)
    for method in KEY_STORE_NAMED_WRITES:
        _replace(store_class, method, named_write(getattr(store_class, method)))
    for method in KEY_STORE_OTHER_WRITES:
        _replace(store_class, method, other_write(getattr(store_class, method)))
