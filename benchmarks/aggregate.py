"""P5: Summarize's aggregation over N result records (N = argv[1], default 10,000).

A moto server in a child process is filled (directly through moto's backend, which is quick) with a
job of N items as the pipeline leaves it — job.json, N csv-profile-shaped result records, N outcomes,
and the Map Run's result files (laid out by spotmap/result_writer.py, the local cloud's ResultWriter,
children in a roughly completed-first order as 200 concurrent items finish) — then this process times
jobcore.summary.build_summary, the code Summarize runs, over HTTP, and prints the seconds."""

from __future__ import annotations

import json
import random
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from jobcore import layout  # noqa: E402
from jobcore.models import InputObject, ItemOutcome, JobDescriptor, TaskStatus  # noqa: E402
from spotmap.result_writer import ChildExecution, MapRun, write_results  # noqa: E402

JOB = "bench-aggregation"
BUCKET = "bench"
CONCURRENCY = 200  # how far out of item order children finish (the P4 job's MaxConcurrency)
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:spotmap-job"


def partial(index: int) -> dict:
    value = float(index)
    number = {
        "type": "number",
        "count": {"$sum": 100},
        "nulls": {"$sum": 0},
        "min": {"$min": value},
        "max": {"$max": value + 99},
        "sum": {"$sum": value * 100},
        "mean": {"$mean": [value * 100, 100]},
    }
    text = {
        "type": "string",
        "count": {"$sum": 100},
        "nulls": {"$sum": 0},
        "min": {"$min": str(value)},
        "max": {"$max": str(value)},
    }
    return {
        "rows": {"$sum": 100},
        "columns": {"amount": {"$if": {"$all": True}, "$then": number, "$else": text}},
    }


def serve_filled(port: int, count: int) -> None:
    """Child process: a moto server whose bucket already holds the job."""
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(port=port, verbose=False)
    server.start()
    backend = s3_backends["123456789012"]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    descriptor = JobDescriptor(
        job_id=JOB,
        input=InputObject(bucket=BUCKET, key="input/x.csv", size=1),
        processor="csv-profile",
        item_count=count,
        created_at=datetime.now(UTC).isoformat(),
    )
    backend.put_object(BUCKET, layout.descriptor_key(JOB), descriptor.model_dump_json().encode())
    children = []
    started = datetime.now(UTC)
    rng = random.Random(1)
    for index in range(count):
        record = {
            "job_id": JOB,
            "index": index,
            "attempt": 1,
            "processor": "csv-profile",
            "partial": partial(index),
            "outputs": [],
            "started_at": "",
            "finished_at": "",
        }
        backend.put_object(BUCKET, layout.result_key(JOB, index), json.dumps(record).encode())
        outcome = ItemOutcome(index=index, status=TaskStatus.SUCCEEDED, attempts=1, partial=partial(index))
        backend.put_object(
            BUCKET, layout.outcome_key(JOB, index, "SUCCEEDED"), outcome.model_dump_json().encode()
        )
        item = {"index": index, "bucket": BUCKET, "key": "input/x.csv", "start": index, "end": index + 1}
        children.append(
            ChildExecution(
                index=index,
                status="SUCCEEDED",
                input=json.dumps({"job_id": JOB, "bucket": BUCKET, "item": item}),
                start=started,
                stop=started + timedelta(seconds=index + rng.uniform(0, CONCURRENCY)),
                output=outcome.model_dump(mode="json"),
            )
        )
    children.sort(key=lambda child: child.stop)  # as the local cloud writes them: completed first
    run = MapRun(
        arn=f"{STATE_MACHINE.replace(':stateMachine:', ':mapRun:')}/bench:{JOB}",
        state_machine_arn=f"{STATE_MACHINE}/bench",
    )
    write_results(
        lambda key, body: backend.put_object(BUCKET, key, body),
        BUCKET,
        layout.map_results_prefix(JOB),
        run,
        children,
    )
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def main() -> None:
    if sys.argv[1] == "--serve":
        serve_filled(int(sys.argv[2]), int(sys.argv[3]))
        return
    count = int(sys.argv[1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        from jobcore.summary import Reads, build_summary, execution_info
        from spotmap.cloud import local_client

        s3 = local_client("s3", f"http://127.0.0.1:{port}", "us-east-1")
        arn = f"arn:aws:states:us-east-1:123456789012:execution:spotmap-job:{JOB}"
        execution = execution_info(arn, "SUCCEEDED", start=datetime.now(UTC), stop=datetime.now(UTC))
        reads = Reads()
        started = time.monotonic()
        summary = build_summary(s3, BUCKET, JOB, execution, reads=reads)
        seconds = time.monotonic() - started
        assert summary["items"]["succeeded"] == count, summary["items"]
        assert summary["result"]["rows"] == 100 * count
        assert reads.items_from_result_files == count, reads
        print(f"{count} records summarised ({reads})", file=sys.stderr)
        print(f"{seconds:.2f}")
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
