"""csv-profile against an independent whole-file computation: shards merged with jobcore.merge must give
exactly the contract's profile (sums and means up to float rounding)."""

from __future__ import annotations

import csv
import io
import json
import math
import random

import pytest

from jobcore import layout
from jobcore.budget import STRING_BUDGET
from jobcore.merge import finalize, merge_all
from jobcore.models import ResultRecord
from tests.unit.worker_s3 import mocked_s3
from worker import runner
from worker.errors import ProcessingError
from worker.processors.csv_profile import BAD_ROW_SAMPLES, column_names
from worker.testing import run_processor

BUCKET = "spotmap-test-csv"


# ----------------------------------------------------------------------------- independent computation


def is_finite_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def expected_profile(data: bytes) -> dict:
    """The contract, computed the obvious way over the whole file."""
    records = [r for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) if r]
    if not records:
        return {"rows": 0, "bad_rows": 0, "columns": {}}
    header, body = records[0], records[1:]
    good = [r for r in body if len(r) == len(header)]
    columns = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in good if r[i] != ""]
        nulls = sum(1 for r in good if r[i] == "")
        if all(is_finite_number(c) for c in cells):
            numbers = [float(c) for c in cells]
            columns[name] = {
                "type": "number",
                "count": len(numbers),
                "nulls": nulls,
                "min": min(numbers) if numbers else None,
                "max": max(numbers) if numbers else None,
                "sum": math.fsum(numbers),
                "mean": math.fsum(numbers) / len(numbers) if numbers else None,
            }
        else:
            columns[name] = {
                "type": "string",
                "count": len(cells),
                "nulls": nulls,
                "min": min(cells) if cells else None,
                "max": max(cells) if cells else None,
            }
    return {"rows": len(body), "bad_rows": len(body) - len(good), "columns": columns}


def assert_profile_matches(result: dict, expected: dict) -> None:
    assert result["rows"] == expected["rows"]
    assert result["bad_rows"] == expected["bad_rows"]
    assert list(result["columns"]) == list(expected["columns"])
    for name, want in expected["columns"].items():
        got = result["columns"][name]
        assert set(got) == set(want), name
        for key, value in want.items():
            if key in ("sum", "mean") and value is not None:
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-6), (name, key)
            else:
                assert got[key] == value, (name, key)


# ------------------------------------------------------------------------------------------- test data


def make_csv(rows: int, seed: int) -> tuple[bytes, int, list[int], list[int]]:
    """A CSV with a BOM, CRLF and LF records, quoted commas/quotes/newlines, empties, a column that turns
    non-numeric late, non-finite values, and a few ragged records. Returns (data, header_end, record
    boundaries, offsets of the ragged records)."""
    rng = random.Random(seed)
    header = "\ufeffid,price,name,late_text,sci,weird,empty,note\r\n".encode()
    chunks = [header]
    boundaries = [len(header)]
    ragged = []
    offset = len(header)
    words = ["alpha", "beta", "Ωmega", "zeta, with comma", 'say "hi"', "multi\nline", "tab\there", " spaced "]
    for i in range(rows):
        price = "" if rng.random() < 0.1 else f"{rng.uniform(-1000, 1000):.3f}"
        name = rng.choice(words)
        late = str(rng.randint(0, 50)) if i != rows - 7 else "n/a"  # one text cell near the end
        sci = rng.choice(["1e3", "-2.5E-2", "0", "", "7"])
        weird = rng.choice(["1", "2", "inf"]) if i % 97 == 5 else rng.choice(["1", "2", ""])
        note = rng.choice(["", "plain", "quoted\r\nnewline", "ünïcödé"])
        fields = [str(i), price, name, late, sci, weird, "", note]
        if i % 211 == 17:
            fields = fields[:3]  # too few
        elif i % 307 == 29:
            fields = [*fields, "extra"]  # too many
        if len(fields) != 8:
            ragged.append(offset)
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator=rng.choice(["\n", "\r\n"])).writerow(fields)
        record = out.getvalue().encode()
        chunks.append(record)
        offset += len(record)
        boundaries.append(offset)
    return b"".join(chunks), len(header), boundaries, ragged


def shard_ranges(boundaries: list[int], count: int, seed: int) -> list[tuple[int, int]]:
    """`count` consecutive record-aligned ranges covering the data (one of them empty)."""
    rng = random.Random(seed)
    cuts = sorted(rng.sample(boundaries[1:-1], count - 2))
    edges = [boundaries[0], *cuts, cuts[-1], boundaries[-1]]  # the repeated cut makes an empty shard
    return list(zip(edges, edges[1:], strict=False))


# ------------------------------------------------------------------------------------------------ tests


def test_sharded_profile_merges_to_the_whole_file_profile():
    # GIVEN a 3,000-record CSV split into 9 record-aligned shards (one of them header-only)
    data, header_end, boundaries, ragged = make_csv(3000, seed=7)
    ranges = shard_ranges(boundaries, 9, seed=3)

    # WHEN each shard is profiled separately and the partial results are merged and finalized
    partials = [
        run_processor("csv-profile", data, index=i, start=start, end=end, header_end=header_end)
        for i, (start, end) in enumerate(ranges)
    ]
    result = finalize(merge_all(json.loads(json.dumps(p)) for p in partials))

    # THEN it equals the independent whole-file computation
    expected = expected_profile(data)
    assert_profile_matches(result, expected)
    # AND the column types were decided over the whole file, not per shard
    types = {name: column["type"] for name, column in result["columns"].items()}
    assert types == {
        "id": "number",
        "price": "number",
        "name": "string",
        "late_text": "string",
        "sci": "number",
        "weird": "string",
        "empty": "number",
        "note": "string",
    }
    # AND the BOM is not part of the first column's name
    assert "id" in result["columns"]
    # AND the ragged records are counted and sampled by their byte offset in the object
    assert result["bad_rows"] == len(ragged) > BAD_ROW_SAMPLES
    assert [s["byte_offset"] for s in result["bad_row_samples"]] == ragged[:BAD_ROW_SAMPLES]
    assert {s["expected"] for s in result["bad_row_samples"]} == {8}


def test_whole_object_item_profiles_the_whole_file():
    # GIVEN the same kind of file as one whole-object item (no range)
    data, _, _, _ = make_csv(500, seed=11)

    # WHEN it is profiled in one piece
    result = finalize(run_processor("csv-profile", data))

    # THEN it equals the independent computation
    assert_profile_matches(result, expected_profile(data))


def test_quoted_newlines_count_as_one_record_each():
    # GIVEN records whose quoted fields contain LF and CRLF
    data = b'k,v\r\n1,"a\nb"\r\n2,"c\r\nd\r\ne"\r\n3,plain\r\n'

    # WHEN profiled
    result = finalize(run_processor("csv-profile", data))

    # THEN each record counts once and the newlines are part of the values
    assert result["rows"] == 3
    assert result["columns"]["v"] == {"type": "string", "count": 3, "nulls": 0, "min": "a\nb", "max": "plain"}


def test_header_only_shard_and_empty_input():
    # GIVEN a shard with no data bytes and a zero-byte object
    data = b"a,b\n1,2\n"

    # WHEN each is profiled
    header_only = finalize(run_processor("csv-profile", data, start=4, end=4, header_end=4))
    empty = finalize(run_processor("csv-profile", b""))

    # THEN both have rows 0; the header-only one still names its columns
    assert header_only["rows"] == 0
    assert header_only["columns"]["a"] == {
        "type": "number",
        "count": 0,
        "nulls": 0,
        "min": None,
        "max": None,
        "sum": 0.0,
        "mean": None,
    }
    assert empty == {"rows": 0, "bad_rows": 0, "bad_row_samples": [], "columns": {}}


def test_blank_lines_are_not_records_and_repeated_headers_get_suffixes():
    # GIVEN blank lines and a repeated header name
    data = b"x,x,x.1\n1,2,3\n\n\r\n4,5,6\n"

    # WHEN profiled
    result = finalize(run_processor("csv-profile", data))

    # THEN blank lines do not count and every column keeps its own statistics
    assert result["rows"] == 2
    assert list(result["columns"]) == ["x", "x.2", "x.1"]
    assert result["columns"]["x.2"]["sum"] == 7.0
    assert column_names(["a", "a", "a"]) == ["a", "a.1", "a.2"]


def test_invalid_utf8_in_a_shard_names_the_byte_offset_in_the_object():
    # GIVEN a shard whose third data line has an invalid byte
    data = b"a,b\n1,x\n2,y\n3,z\n4,\xff\n5,w\n"
    bad = data.index(b"\xff")

    # WHEN the shard [8, end) is profiled
    with pytest.raises(ProcessingError) as error:
        run_processor("csv-profile", data, start=8, end=len(data), header_end=4)

    # THEN the error names the object offset of the byte
    assert f"invalid UTF-8 in local:input/local at byte offset {bad}" in str(error.value)
    assert f"line 4 of this item's bytes [0, 4) + [8, {len(data)})" in str(error.value)


@pytest.fixture
def s3(monkeypatch):
    with mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def put_job(s3, job_id: str, data: bytes, items: list[dict]) -> None:
    s3.put_object(Bucket=BUCKET, Key="input/data.csv", Body=data)
    descriptor = {
        "job_id": job_id,
        "input": {"bucket": BUCKET, "key": "input/data.csv", "size": len(data)},
        "processor": "csv-profile",
        "item_count": len(items),
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id), Body=json.dumps(descriptor))
    s3.put_object(Bucket=BUCKET, Key=layout.items_key(job_id), Body=json.dumps(items))


def test_worker_tasks_on_s3_shards_merge_to_the_whole_file_profile(s3, tmp_path):
    # GIVEN a CSV in S3 and a job of 4 shards (header prepended by a separate ranged GET)
    data, header_end, boundaries, _ = make_csv(800, seed=5)
    ranges = shard_ranges(boundaries, 4, seed=1)
    items = [
        {
            "index": i,
            "bucket": BUCKET,
            "key": "input/data.csv",
            "start": s,
            "end": e,
            "header_end": header_end,
        }
        for i, (s, e) in enumerate(ranges)
    ]
    put_job(s3, "csvjob", data, items)

    # WHEN a worker task runs each item
    codes = [
        runner.main(
            {
                "JOB_BUCKET": BUCKET,
                "JOB_ID": "csvjob",
                "ITEM_INDEX": str(i),
                "ATTEMPT": "1",
                "SCRATCH_DIR": str(tmp_path),
            }
        )
        for i in range(len(items))
    ]

    # THEN all succeed and their result records merge to the whole-file profile
    assert codes == [0] * len(items)
    records = [
        ResultRecord.model_validate_json(
            s3.get_object(Bucket=BUCKET, Key=layout.result_key("csvjob", i))["Body"].read()
        )
        for i in range(len(items))
    ]
    assert_profile_matches(finalize(merge_all(r.partial for r in records)), expected_profile(data))


def test_invalid_utf8_fails_the_task_with_exit_1_naming_offset_and_line(s3, tmp_path, capsys):
    # GIVEN a whole-object item whose line 3 holds an invalid UTF-8 sequence
    data = "name,city\nÅse,Oslo\nBo,Bergen\xff\nEve,Tromsø\n".encode().replace(b"\xc3\xbf", b"\xff")
    put_job(s3, "badutf8", data, [{"index": 0, "bucket": BUCKET, "key": "input/data.csv"}])

    # WHEN the worker runs it
    code = runner.main(
        {
            "JOB_BUCKET": BUCKET,
            "JOB_ID": "badutf8",
            "ITEM_INDEX": "0",
            "ATTEMPT": "1",
            "SCRATCH_DIR": str(tmp_path),
        }
    )

    # THEN it exits 1 with a message naming the byte offset and the line, and writes no record
    assert code == 1
    err = capsys.readouterr().err
    bad = data.index(b"\xff")
    assert f"at byte offset {bad} (line 3)" in err
    assert "invalid UTF-8 in s3://spotmap-test-csv/input/data.csv" in err
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/badutf8/results/")


@pytest.mark.parametrize(
    ("data", "start", "header_end", "says"),
    [
        (b'a,b\n1,"x\n2,y\n3,z\n', 0, 0, "byte offset 4 (line 2)"),
        (b'a,"b\n1,2\n', 0, 0, "byte offset 0 (line 1)"),
        (b'a,b\n1,x\n2,"y\n3,z\n4,w\n', 8, 4, "byte offset 8 (line 2 of this item's bytes [0, 4) + [8, 21))"),
    ],
    ids=["in-a-record", "in-the-header", "in-a-shard"],
)
def test_an_unclosed_quote_fails_the_item_naming_the_line_its_record_starts_on(
    data: bytes, start: int, header_end: int, says: str
):
    # GIVEN a CSV (or a shard of one) whose quoted field is never closed: the csv reader would fold
    # the rest of the input into that field and report no bad row
    # WHEN it is profiled
    with pytest.raises(ProcessingError) as error:
        run_processor("csv-profile", data, start=start, end=len(data), header_end=header_end)

    # THEN the item fails with the unclosed quote and where its record starts
    assert "unclosed quote" in str(error.value) and says in str(error.value)


def test_a_huge_cell_is_cut_to_the_string_budget_with_its_true_length():
    # GIVEN a string column with one 5,000,000-character cell
    data = b"a\nshort\n" + b"x" * 5_000_000 + b"\n"

    # WHEN profiled
    result = finalize(run_processor("csv-profile", data))

    # THEN its max is the cell's beginning and a marker with its true length, within the budget
    column = result["columns"]["a"]
    assert column["min"] == "short"
    assert column["max"].startswith("xxxx") and column["max"].endswith("…[truncated: 5000000 characters]")
    assert len(column["max"]) == STRING_BUDGET
