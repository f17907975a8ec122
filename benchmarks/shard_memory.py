"""P6: StartJob's peak memory while sharding a large object through ranged GETs.

Usage: shard_memory.py SIZE_MB SCRATCH_FILE — writes a CSV of SIZE_MB, serves it from a moto server in a
separate process (so the server's memory is not counted), shards it with jobcore.sharding exactly as
StartJob does (64 MB shards, the template default), and prints "<peak RSS MB of this process> <shards>".
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_csv(path: Path, size_mb: int) -> None:
    line = b'12345,"quoted, field",3.14159,some text that pads the line out a little\n'
    block = line * (1024 * 1024 // len(line))
    with path.open("wb") as handle:
        handle.write(b"id,label,value,note\n")
        for _ in range(size_mb):
            handle.write(block)


def main() -> None:
    size_mb, scratch = int(sys.argv[1]), Path(sys.argv[2])
    write_csv(scratch, size_mb)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from spotmap.cloud import local_client

        s3 = local_client("s3", f"http://127.0.0.1:{port}", "us-east-1")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                time.sleep(0.1)
        s3.upload_file(str(scratch), "bench", "input/big.csv")
        scratch.unlink()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        from jobcore.sharding import S3RangeReader, shard_items

        size = s3.head_object(Bucket="bench", Key="input/big.csv")["ContentLength"]
        reader = S3RangeReader(s3, "bench", "input/big.csv", size)
        shards = sum(
            1
            for _ in shard_items(
                reader, bucket="bench", key="input/big.csv", version_id=None, shard_size_mb=64
            )
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"(RSS before sharding {before / 1024:.0f} MB)", file=sys.stderr)
        print(f"{peak / 1024:.1f} {shards}")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
