"""Line-aligned shards: exact reconstruction, record-aligned starts, quoted newlines never split,
bounded memory, and the same answers from S3 ranged GETs."""

from __future__ import annotations

import csv
import io
import random
import tracemalloc
from typing import Any

import pytest

from jobcore.sharding import (
    BYTES_PER_MB,
    S3RangeReader,
    ShardingLimits,
    find_header_end,
    plan_shards,
    shard_items,
    target_shard_bytes,
)

# Limits that force the quote-state inference (no scanning from the last boundary) with tiny windows,
# so small test files exercise window growth and the fallback too.
INFER_SMALL = ShardingLimits(initial_window=4, max_window=4096, known_state_scan=0)
INFER_TINY = ShardingLimits(initial_window=8, max_window=64, known_state_scan=0)
ALL_LIMITS = [ShardingLimits(), INFER_SMALL, INFER_TINY]


class MemoryReader:
    """A RangeReader over bytes that counts what it was asked for."""

    def __init__(self, data: bytes):
        self.data = data
        self.reads = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, start: int, end: int) -> bytes:
        self.reads += 1
        return self.data[start:end]


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def assert_valid_sharding(data: bytes, target: int, limits: ShardingLimits) -> list[tuple[int, int]]:
    header_end, ranges = plan_shards(MemoryReader(data), target, limits)
    shards = list(ranges)
    # concatenating the shards gives the body (the object minus its header), byte for byte
    assert b"".join(data[start:end] for start, end in shards) == data[header_end:]
    # no empty shard, contiguous
    assert all(end > start for start, end in shards)
    # every shard starts at a record start: parsing shard by shard gives the whole file's records
    parsed = records(data[:header_end])
    for start, end in shards:
        parsed += records(data[start:end])
    assert parsed == records(data)
    return shards


def quoted_csv(rows: int, seed: int, line_end: str = "\n", trailing: bool = True) -> bytes:
    """Quoted fields with commas, doubled quotes and newlines (also CRLF inside quotes)."""
    rng = random.Random(seed)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(["id", "comment", "amount"])
    for row in range(rows):
        comment = rng.choice(
            ["plain", "with, comma", "two\nlines", 'say "hi"', "a\r\nb\r\n\r\nc", '",\n,"', "", "\n\n\n"]
        )
        writer.writerow([row, comment, rng.randint(-1000, 1000)])
    text = buffer.getvalue()
    if not trailing:
        text = text[: -len(line_end)]
    return text.encode("utf-8")


@pytest.mark.parametrize("limits", ALL_LIMITS, ids=["default", "infer-small", "infer-tiny"])
@pytest.mark.parametrize("line_end", ["\n", "\r\n"], ids=["lf", "crlf"])
@pytest.mark.parametrize("trailing", [True, False], ids=["trailing-newline", "no-trailing-newline"])
def test_quoted_newlines_are_never_split(limits: ShardingLimits, line_end: str, trailing: bool) -> None:
    # GIVEN CSVs whose quoted fields hold newlines, commas and quotes
    for seed in range(8):
        data = quoted_csv(60, seed, line_end, trailing)
        # WHEN they are sharded at many small sizes (boundaries land inside quoted fields)
        for target in (1, 2, 3, 7, 16, 50, 333):
            # THEN the shards rebuild the body exactly and each starts at a record start
            assert_valid_sharding(data, target, limits)


def test_a_field_spanning_several_shard_targets_stays_in_one_shard() -> None:
    # GIVEN a quoted field with many newlines, much longer than the shard size
    long_field = '"' + "line\n" * 200 + '"'
    data = f"a,b\n1,x\n2,{long_field}\n3,y\n".encode()

    for limits in (ShardingLimits(), INFER_SMALL):
        # WHEN it is sharded in 10-byte targets
        shards = assert_valid_sharding(data, 10, limits)

        # THEN one shard holds the whole long record, which ends it
        record = b"2," + long_field.encode() + b"\n"
        holders = [(start, end) for start, end in shards if record in data[start:end]]
        assert len(holders) == 1
        assert data[holders[0][0] : holders[0][1]].endswith(record)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"a,b,c\n",
        b"a,b,c",
        b"a,b,c\r\n",
        b'"multi\nline header",b\n',
    ],
    ids=["zero-bytes", "header-only", "header-no-newline", "header-crlf", "quoted-header"],
)
def test_no_items_for_an_empty_or_header_only_object(data: bytes) -> None:
    # GIVEN an object with no data record
    # WHEN it is sharded
    header_end, ranges = plan_shards(MemoryReader(data), 1)

    # THEN there is no shard and the header spans the whole object
    assert list(ranges) == []
    assert header_end == len(data)


def test_header_end_skips_a_quoted_newline_in_the_header() -> None:
    data = b'"first\ncolumn",second\n1,2\n'
    assert find_header_end(MemoryReader(data)) == data.index(b"second\n") + len(b"second\n")


def test_last_shard_ends_at_the_object_size_without_a_trailing_newline() -> None:
    # GIVEN a file that does not end with a newline
    data = b"n\n1\n2\n3\n4\n5"
    # WHEN it is sharded
    shards = assert_valid_sharding(data, 2, ShardingLimits())
    # THEN the last shard ends at the size and carries the last record
    assert shards[-1][1] == len(data)
    assert data[shards[-1][0] : shards[-1][1]].endswith(b"5")


def test_shard_size_is_a_float_number_of_mib_of_at_least_one_byte() -> None:
    assert target_shard_bytes(64) == 64 * BYTES_PER_MB
    assert target_shard_bytes(0.5) == BYTES_PER_MB // 2
    assert target_shard_bytes(1e-12) == 1


def test_shards_are_about_the_target_size() -> None:
    # GIVEN 100 KB of short records and a 10 KB target
    data = b"x\n" + b"".join(b"%06d\n" % i for i in range(15000))
    target = 10_000
    # WHEN it is sharded
    shards = assert_valid_sharding(data, target, ShardingLimits())
    # THEN every shard but the last is the target rounded up to the end of its record
    assert all(target <= end - start < target + 7 for start, end in shards[:-1])


def test_a_window_without_any_quote_is_outside_quotes() -> None:
    # GIVEN records without quotes and a window smaller than a record
    data = b"h\n" + b"".join(b"%s\n" % (b"v" * 50) for _ in range(20))
    # WHEN boundaries are inferred from tiny windows (no quote ever seen)
    # THEN they are still record starts
    assert_valid_sharding(data, 30, ShardingLimits(initial_window=4, max_window=16, known_state_scan=0))


def test_documented_limit_a_long_quoted_field_without_quotes_beyond_the_largest_window() -> None:
    # GIVEN a quoted field of newlines longer than the largest window, with no other quote in it
    data = b'a,b\n1,"' + b"\n" * 200 + b'"\n2,y\n'
    limits = ShardingLimits(initial_window=8, max_window=64, known_state_scan=0)

    # WHEN a shard target falls deep inside it
    header_end, ranges = plan_shards(MemoryReader(data), 60, limits)
    shards = list(ranges)

    # THEN the window sees no quote and takes the target for "outside quotes": the field is split.
    # This is the limit sharding.py documents (4 MiB windows in production).
    assert b"".join(data[start:end] for start, end in shards) == data[header_end:]
    assert any(
        start < data.index(b'"\n2,y')
        and data[start - 1 : start] == b"\n"
        and data[start - 2 : start] == b"\n\n"
        for start, _ in shards
    )


def test_ambiguous_windows_fall_back_to_violations_and_field_counts(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a CSV whose every field is quoted and made only of quotes, commas and newlines, so that
    # almost no quote is unambiguously opening or closing
    rng = random.Random(5)
    buffer = io.StringIO()
    buffer.write("a,b,c\n")
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for _ in range(300):
        writer.writerow([rng.choice(["", ",", '"', "\n", ",\n", '",', '\n"']) for _ in range(3)])
    data = buffer.getvalue().encode()
    limits = ShardingLimits(initial_window=8, max_window=512, known_state_scan=0)

    # WHEN it is sharded with inference only
    with caplog.at_level("WARNING", logger="jobcore.sharding"):
        for target in (1, 5, 11, 40, 97):
            # THEN every boundary is still a record start
            assert_valid_sharding(data, target, limits)

    # AND the fallback was what decided
    assert "no unambiguous quote" in caplog.text


def test_items_carry_the_object_version_and_header(s3: Any) -> None:
    # GIVEN a CSV in S3 (a versioned bucket)
    data = quoted_csv(400, seed=3, line_end="\r\n")
    put = s3.put_object(Bucket="spotmap-jobbucket", Key="input/q.csv", Body=data)

    # WHEN it is sharded through ranged GETs of that version
    reader = S3RangeReader(s3, "spotmap-jobbucket", "input/q.csv", len(data), put["VersionId"])
    items = list(
        shard_items(
            reader,
            bucket="spotmap-jobbucket",
            key="input/q.csv",
            version_id=put["VersionId"],
            shard_size_mb=0.002,
        )
    )

    # THEN the items are numbered 0..n-1, share the header and rebuild the body
    assert [item.index for item in items] == list(range(len(items)))
    assert len(items) == 4
    header_end = items[0].header_end
    assert data[:header_end] == b"id,comment,amount\r\n"
    assert all(item.version_id == put["VersionId"] and item.key == "input/q.csv" for item in items)
    assert b"".join(data[item.start : item.end] for item in items) == data[header_end:]


class SyntheticReader:
    """A large object that is never materialised: a header and a repeating block of records."""

    def __init__(self, size: int, header: bytes, block: bytes):
        self._size = size
        self.header = header
        self.block = block

    @property
    def size(self) -> int:
        return self._size

    def read(self, start: int, end: int) -> bytes:
        end = min(end, self._size)
        parts = []
        position = start
        while position < end:
            if position < len(self.header):
                part = self.header[position : min(end, len(self.header))]
            else:
                offset = (position - len(self.header)) % len(self.block)
                part = self.block[offset : offset + (end - position)]
            parts.append(part)
            position += len(part)
        return b"".join(parts)


def test_sharding_a_1_gb_object_stays_in_bounded_memory() -> None:
    # GIVEN a 1 GiB object of records with quoted newlines (never held in memory)
    block = b"".join(b'%d,"multi\nline, ""quoted""",%d\r\n' % (i, i * 7) for i in range(2000))
    reader = SyntheticReader(1 << 30, b"id,text,n\r\n", block)

    # WHEN it is sharded in 64 MiB and in 1 MiB shards
    tracemalloc.start()
    try:
        for shard_mb in (64, 1):
            header_end, ranges = plan_shards(reader, target_shard_bytes(shard_mb))
            previous = header_end
            count = 0
            for start, end in ranges:
                # each shard starts where the last ended, right after a record's CRLF
                assert start == previous and reader.read(start - 2, start) == b"\r\n"
                previous = end
                count += 1
            assert previous == reader.size
            assert count == pytest.approx(1024 // shard_mb, abs=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # THEN the peak allocation is a few windows, far below 256 MB
    assert peak < 32 * 1024 * 1024
