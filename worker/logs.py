"""JSON-lines logging for the worker: one JSON object per line on stderr, with the task's context
(`job_id`, `item_index`, `attempt`) on every line, so CloudWatch Logs Insights and the local task log can
be filtered by item. Stdlib only, to keep the image small."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

LOGGER_NAME = "worker"

# attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a key
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, context: Mapping[str, Any]) -> None:
        super().__init__()
        self.context = context

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
        }
        doc.update(self.context)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


def get_logger(name: str | None = None) -> logging.Logger:
    """The worker's logger, or a child of it (processors get `worker.processor.<name>`)."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}" if name else LOGGER_NAME)


def configure(context: Mapping[str, Any], level: str | None = None) -> logging.Handler:
    """Send the worker's logs to stderr as JSON lines; returns the handler so the caller can remove it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(context))
    logger = get_logger()
    logger.addHandler(handler)
    name = (level or "INFO").upper()
    logger.setLevel(name if isinstance(logging.getLevelName(name), int) else "INFO")
    logger.propagate = False
    return handler


def unconfigure(handler: logging.Handler) -> None:
    get_logger().removeHandler(handler)
    handler.close()
