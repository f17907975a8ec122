"""P6: StartJob's peak memory while sharding a large object through ranged GETs.

Usage: shard_memory.py SIZE_MB SCRATCH_FILE. Writes a CSV of SIZE_MB, serves it from a moto server (its
own process), uploads it, then shards it in a fresh child process exactly as StartJob does (64 MB
shards, the template default) and prints "<peak RSS MB of that child> <shards>". The peak is the
child's VmHWM, so neither the upload nor this parent is counted.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]


def write_csv(path: Path, size_mb: int) -> None:
    line = b'12345,"quoted, field",3.14159,some text that pads the line out a little\n'
    block = line * (1024 * 1024 // len(line))
    with path.open("wb") as handle:
        handle.write(b"id,label,value,note\n")
        for _ in range(size_mb):
            handle.write(block)


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(endpoint: str) -> None:
    """The child: shard the object with jobcore.sharding and report its own peak memory."""
    from jobcore.sharding import S3RangeReader, shard_items
    from spotmap.cloud import local_client

    s3 = local_client("s3", endpoint, "us-east-1")
    size = s3.head_object(Bucket="bench", Key="input/big.csv")["ContentLength"]
    reader = S3RangeReader(s3, "bench", "input/big.csv", size)
    shards = sum(
        1 for _ in shard_items(reader, bucket="bench", key="input/big.csv", version_id=None, shard_size_mb=64)
    )
    print(f"{peak_rss_mb():.1f} {shards}")


def main() -> None:
    if sys.argv[1] == "--measure":
        measure(sys.argv[2])
        return
    size_mb, scratch = int(sys.argv[1]), Path(sys.argv[2])
    write_csv(scratch, size_mb)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from spotmap.cloud import local_client

        s3 = local_client("s3", endpoint, "us-east-1")
        for _ in range(100):
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:
                time.sleep(0.1)
        s3.upload_file(str(scratch), "bench", "input/big.csv")
        scratch.unlink()
        child = subprocess.run(
            [sys.executable, __file__, "--measure", endpoint], capture_output=True, text=True, check=True
        )
        print(child.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
