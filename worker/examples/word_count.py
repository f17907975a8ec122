"""An example processor (the README tutorial's): counts the lines and words of its item's input.
`worker/Dockerfile.example` copies it into /app/worker/processors/, which registers it."""

from worker.api import Context, processor


@processor("word-count")
def word_count(ctx: Context) -> dict:
    """Counts the lines and words of one object."""
    lines = words = 0
    for line in ctx.lines():  # streamed from S3; invalid UTF-8 is reported with its byte offset
        lines += 1
        words += len(line.split())
    return {
        "files": {"$sum": 1},  # added across items
        "lines": {"$sum": lines},
        "words": {"$sum": words},
        "longest_file_lines": {"$max": lines},  # the largest across items
    }
