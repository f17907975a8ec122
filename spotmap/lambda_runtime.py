"""The inside of one local Lambda instance: a process with its function's own environment that
imports the handler once (cold start) and then serves one event at a time over a pipe."""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import sys
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from spotmap.forkserver import Entry


class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    def __init__(self, env: dict[str, str], timeout_s: int):
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = env["SPOTMAP_FUNCTION_ARN"]
        self.memory_limit_in_mb = int(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = env["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def instance_program() -> Entry:
    """The Lambda instances' fork server program (spotmap/forkserver.py): preload the libraries every
    handler uses and what the handlers import, then serve, in each forked instance, its function's
    events over the connection passed to it (args: code_dir, handler)."""
    import boto3  # noqa: F401 - preloaded for the instances
    import pydantic  # noqa: F401
    from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: F401
    from aws_lambda_powertools.utilities import data_classes, parser  # noqa: F401

    _preload(json.loads(os.environ.pop("SPOTMAP_PRELOAD", "[]")))
    return _instance


PRELOADED_SERVICES = ("s3", "ecs", "stepfunctions")
# Modules whose import is part of an instance's init phase: jobcore.observability makes the handlers'
# Logger, Tracer and Metrics from the function's own environment (POWERTOOLS_SERVICE_NAME, the metrics
# namespace), so each instance imports it itself, as in Lambda; the zygote never keeps it.
INIT_PHASE_MODULES = ("jobcore.observability",)


def _preload(handlers: list[list[str]]) -> None:
    """Import what the handlers import and load the AWS service models, once, before any fork.

    Measured here, a cold start spent ~0.3 s of CPU on these (pydantic models, Powertools modules,
    botocore's JSON models) although every instance loads the same ones. The handler modules themselves
    are not imported, nor INIT_PHASE_MODULES (only what these import): their module-level code (Logger,
    Metrics, settings) is the init phase each instance runs with its own function's environment, as in
    Lambda. Clients are created with placeholder credentials and region, so the zygote never resolves a
    credential chain."""
    import ast

    import boto3

    def imports_of(code_dir: str, module: str) -> set[str]:
        source = Path(code_dir, *module.split(".")).with_suffix(".py")
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"))
        except (OSError, SyntaxError):
            return set()  # the instance reports it, as Lambda reports an init error
        names = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        names |= {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and not node.level
        }
        for name in names.intersection(INIT_PHASE_MODULES):  # what they import is preloaded instead
            names |= imports_of(code_dir, name)
        return names

    for code_dir, handler in handlers:
        names = imports_of(code_dir, handler.rsplit(".", 1)[0])
        sys.path.insert(0, code_dir)
        try:
            for name in sorted(names.difference(INIT_PHASE_MODULES)):
                with contextlib.suppress(Exception):  # the instance's own import says what is wrong
                    importlib.import_module(name)
        finally:
            sys.path.remove(code_dir)
    for name in INIT_PHASE_MODULES:  # in case a preloaded module imported one after all
        sys.modules.pop(name, None)
    with contextlib.suppress(ImportError):
        import aws_xray_sdk.core  # noqa: F401 - Powertools' Tracer() imports it (~0.23 s) even when disabled
    # fills the default session's model and endpoint caches, which the instances inherit
    for service in PRELOADED_SERVICES:
        boto3.client(  # type: ignore[call-overload]
            service,
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="preload",
            aws_secret_access_key="preload",  # noqa: S106 - a placeholder, never sent anywhere
        )
    gc.freeze()  # the preloaded objects stay shared with every instance instead of copied by the collector


def _instance(request: dict[str, Any], fd: int | None) -> int:
    """One instance, in its forked process (its environment and log set by the fork server)."""
    if fd is None:
        raise RuntimeError("a Lambda instance needs its connection")
    code_dir, handler = request["args"]["code_dir"], request["args"]["handler"]
    os.chdir(code_dir)
    serve(Connection(fd), dict(request["env"]), code_dir, handler)
    return 0


def main(argv: list[str]) -> None:
    """Entry point of the instance process: `<fd> <code dir> <handler>`; stdout/stderr are its log."""
    fd, code_dir, handler = argv
    serve(Connection(int(fd)), dict(os.environ), code_dir, handler)


def serve(conn: Connection, env: dict[str, str], code_dir: str, handler: str) -> None:
    sys.path.insert(0, code_dir)
    module_name, function_name = handler.rsplit(".", 1)
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as error:  # an init error is reported on every invocation, as Lambda does
        init_error: dict[str, Any] | None = _error_body(error, "Runtime.ImportModuleError")
    else:
        init_error = None
    timeout_s = int(env.get("SPOTMAP_FUNCTION_TIMEOUT", "60"))
    while True:
        try:
            payload = conn.recv_bytes()
        except EOFError:
            return
        if init_error is not None:
            conn.send_bytes(b"E" + json.dumps(init_error).encode())
            continue
        context = LambdaContext(env, timeout_s)
        try:
            event = json.loads(payload) if payload else {}
            result = function(event, context)
            body = json.dumps(result).encode()
        except Exception as error:
            traceback.print_exc()
            conn.send_bytes(b"E" + json.dumps(_error_body(error)).encode())
        else:
            conn.send_bytes(b"O" + body)


def _error_body(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    """The body Lambda returns for an unhandled error: Step Functions matches on errorType."""
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_exception(error),
    }
