"""Reading the Map Run's result files: the manifest, and JSON arrays parsed as they stream in."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from jobcore import map_results
from jobcore.map_results import iter_json_array, stream_records, succeeded_outcome
from tests.unit.conftest import BUCKET

RECORDS: list[Any] = [
    {"Status": "SUCCEEDED", "Output": json.dumps({"index": i, "note": "ünïcödé " * i}), "Name": f"n{i}"}
    for i in range(40)
] + [12345, -0.25, 1.5e10, True, None, "text", [1, [2, {}]], {}]


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096, 1 << 20])
def test_an_array_is_decoded_whatever_its_chunks(size: int) -> None:
    # GIVEN a JSON array, pretty-printed, with multi-byte characters, split into chunks of `size` bytes
    data = json.dumps(RECORDS, ensure_ascii=False, indent=2).encode("utf-8")
    # WHEN it is decoded as the chunks arrive
    # THEN every element comes out, in order (a number split across chunks is read whole)
    assert list(iter_json_array(chunked(data, size))) == RECORDS


def test_an_empty_array_has_no_elements() -> None:
    assert list(iter_json_array([b" [", b" ] \n"])) == []


@pytest.mark.parametrize("data", [b"", b"{}", b"[1,]", b"[1 2]", b"[1,", b'[{"a": 1}'])
def test_a_damaged_array_is_an_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        list(iter_json_array(chunked(data, 1)))


def test_records_stream_from_s3_in_small_chunks(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a result file in S3, read 100 bytes at a time
    monkeypatch.setattr(map_results, "CHUNK_BYTES", 100)
    s3.put_object(Bucket=BUCKET, Key="jobs/j/map-results/r/SUCCEEDED_0.json", Body=json.dumps(RECORDS[:40]))
    # WHEN its records are streamed
    records = list(stream_records(s3, BUCKET, "jobs/j/map-results/r/SUCCEEDED_0.json"))
    # THEN they are the file's records, and each succeeded one gives its outcome
    assert records == RECORDS[:40]
    assert [succeeded_outcome(record)["index"] for record in records] == list(range(40))  # type: ignore[index]
    # and a file that is not there gives none
    assert list(stream_records(s3, BUCKET, "jobs/j/map-results/r/SUCCEEDED_1.json")) == []


@pytest.mark.parametrize(
    "record",
    [
        {"Status": "FAILED", "Error": "ItemFailed"},
        {"Status": "SUCCEEDED"},
        {"Status": "SUCCEEDED", "Output": "not json"},
        {"Status": "SUCCEEDED", "Output": '"SUCCEEDED"'},  # what ItemSucceeded output before
        {"Status": "SUCCEEDED", "Output": '{"status": "SUCCEEDED"}'},
    ],
)
def test_only_a_succeeded_childs_outcome_is_taken(record: dict[str, Any]) -> None:
    assert succeeded_outcome(record) is None


def test_no_manifest_means_no_result_files(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="jobs/j/map-results/r/SUCCEEDED_0.json", Body=b"[]")
    assert map_results.newest_manifest_key(s3, BUCKET, "j") is None
    assert map_results.result_file_keys(
        {"ResultFiles": {"SUCCEEDED": [{"Key": "k", "Size": 2}]}}, "SUCCEEDED"
    ) == ["k"]
    assert map_results.result_file_keys({}, "SUCCEEDED") == []


def test_a_long_array_is_decoded_in_the_memory_of_a_short_one() -> None:
    # GIVEN result files of 2,000 and 16,000 records, arriving in chunks of 256 KiB
    record = json.dumps({"Status": "SUCCEEDED", "Output": json.dumps({"index": 1, "note": "y" * 200})})

    def chunks(count: int) -> Iterator[bytes]:
        yield b"["
        pending = b""
        for index in range(count):
            pending += (b"," if index else b"") + record.encode()
            if len(pending) > map_results.CHUNK_BYTES:
                yield pending
                pending = b""
        yield pending + b"]"

    # WHEN each is decoded
    peaks = []
    for count in (2000, 16000):
        tracemalloc.start()
        try:
            assert sum(1 for _ in iter_json_array(chunks(count))) == count
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()

    # THEN eight times the records took no more memory: nothing but a chunk and its records is held
    assert peaks[1] < peaks[0] + 256 * 1024
