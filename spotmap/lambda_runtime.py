"""The inside of one local Lambda instance: a process with its function's own environment that
imports the handler once (cold start) and then serves one event at a time over a pipe."""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from multiprocessing.connection import Connection
from typing import Any


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
