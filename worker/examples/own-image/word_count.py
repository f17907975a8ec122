"""An example processor: counts lines and words of its item's input (any UTF-8 text)."""

from __future__ import annotations

from typing import Any

from worker.api import Context, processor


@processor("word-count")
def word_count(ctx: Context) -> dict[str, Any]:
    """Lines and words of the input; the longest line's length."""
    lines = words = longest = 0
    for line in ctx.lines():  # streamed from S3, invalid UTF-8 reported with its byte offset
        lines += 1
        words += len(line.split())
        longest = max(longest, len(line.rstrip("\r\n")))
    return {
        "lines": {"$sum": lines},  # added across items
        "words": {"$sum": words},
        "longest_line": {"$max": longest},  # the largest across items
    }
