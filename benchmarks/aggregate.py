"""P5: Summarize's aggregation over N result records (N = argv[1], default 10,000).

Fills a moto server (separate process) with a job of N items — job.json, N csv-profile-shaped result
records and N outcomes — then times jobcore.summary.build_summary, the code Summarize runs, and prints
the seconds on the last line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from jobcore import layout  # noqa: E402
from jobcore.models import InputObject, ItemOutcome, JobDescriptor, TaskStatus  # noqa: E402
from jobcore.summary import build_summary, execution_info  # noqa: E402
from spotmap.cloud import local_client  # noqa: E402

JOB = "bench-aggregation"


def partial(index: int) -> dict:
    value = float(index)
    return {
        "rows": {"$sum": 100},
        "columns": {
            "amount": {"$if": {"$all": True},
                       "$then": {"type": "number", "count": {"$sum": 100}, "nulls": {"$sum": 0},
                                 "min": {"$min": value}, "max": {"$max": value + 99},
                                 "sum": {"$sum": value * 100}, "mean": {"$mean": [value * 100, 100]}},
                       "$else": {"type": "string", "count": {"$sum": 100}, "nulls": {"$sum": 0},
                                 "min": {"$min": str(value)}, "max": {"$max": str(value)}}},
        },
    }


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        s3 = local_client("s3", f"http://127.0.0.1:{port}", "us-east-1")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                time.sleep(0.1)
        descriptor = JobDescriptor(job_id=JOB, input=InputObject(bucket="bench", key="input/x.csv", size=1),
                                   processor="csv-profile", item_count=count,
                                   created_at=datetime.now(UTC).isoformat())
        s3.put_object(Bucket="bench", Key=layout.descriptor_key(JOB), Body=descriptor.model_dump_json())

        def fill(index: int) -> None:
            record = {"job_id": JOB, "index": index, "attempt": 1, "processor": "csv-profile",
                      "partial": partial(index), "outputs": [], "started_at": "", "finished_at": ""}
            s3.put_object(Bucket="bench", Key=layout.result_key(JOB, index), Body=json.dumps(record))
            outcome = ItemOutcome(index=index, status=TaskStatus.SUCCEEDED, attempts=1)
            s3.put_object(Bucket="bench", Key=layout.outcome_key(JOB, index, "SUCCEEDED"),
                          Body=outcome.model_dump_json())

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(fill, range(count)))
        execution = execution_info(f"arn:aws:states:us-east-1:123456789012:execution:spotmap-job:{JOB}",
                                   "SUCCEEDED", start=datetime.now(UTC), stop=datetime.now(UTC))
        started = time.monotonic()
        summary = build_summary(s3, "bench", JOB, execution)
        seconds = time.monotonic() - started
        assert summary["items"]["succeeded"] == count, summary["items"]
        assert summary["result"]["rows"] == 100 * count
        print(f"{count} records summarised", file=sys.stderr)
        print(f"{seconds:.2f}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
