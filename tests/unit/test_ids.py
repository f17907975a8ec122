"""Job ids are valid execution names, readable, and deterministic per upload."""

from __future__ import annotations

import pytest

from jobcore.ids import is_valid_execution_name, job_id_for


def test_same_upload_gives_the_same_id() -> None:
    # GIVEN the same bucket, key and version twice
    # WHEN ids are derived
    first = job_id_for("bucket", "input/sales 2024 Q1.csv", version_id="v1")
    second = job_id_for("bucket", "input/sales 2024 Q1.csv", version_id="v1")

    # THEN they are equal and start with the readable file stem
    assert first == second
    assert first.startswith("sales-2024-Q1-")


@pytest.mark.parametrize(
    "other",
    [
        {"version_id": "v2"},
        {"key": "input/sales 2024 Q2.csv"},
        {"bucket": "another-bucket"},
    ],
)
def test_a_different_upload_gives_a_different_id(other: dict[str, str]) -> None:
    # GIVEN an upload and another one differing in version, key or bucket
    base = {"bucket": "bucket", "key": "input/sales 2024 Q1.csv", "version_id": "v1"}

    # WHEN / THEN their ids differ
    assert job_id_for(**base) != job_id_for(**{**base, **other})


def test_without_a_version_the_sequencer_then_the_etag_tells_uploads_apart() -> None:
    # GIVEN an unversioned key uploaded twice
    key = "input/a.csv"

    # WHEN ids use the event sequencer, or only the ETag (quoted or not)
    by_sequencer = {job_id_for("b", key, sequencer=s) for s in ("0A1", "0A2")}
    by_etag = job_id_for("b", key, etag='"abc"')

    # THEN different uploads differ and the ETag's quotes do not matter
    assert len(by_sequencer) == 2
    assert by_etag == job_id_for("b", key, etag="abc")
    assert job_id_for("b", key, version_id="null", etag="abc") == by_etag  # "null" is no version


@pytest.mark.parametrize(
    "key",
    [
        "input/sales 2024 Q1.csv",
        "input/a+b=c.csv",
        "input/100% done.csv",
        "input/Île-de-France é.csv",
        "input/sweep.job.json",
        "input/" + "very-long-name-" * 20 + ".csv",
        "input/???.csv",
        "input/.hidden",
        "input/deep/er/path/[draft] #1 ~ $x & y; z: w.csv",
    ],
)
def test_every_key_gives_a_valid_execution_name(key: str) -> None:
    # GIVEN an awkward key
    # WHEN its id is derived
    job_id = job_id_for("spotmap-jobbucket", key, version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")

    # THEN it is 1-80 characters of [A-Za-z0-9_-] ending in 16 hex digits
    assert is_valid_execution_name(job_id), job_id
    assert len(job_id.rsplit("-", 1)[1]) == 16


def test_manifest_stem_drops_the_double_extension() -> None:
    assert job_id_for("b", "input/sweep.job.json").startswith("sweep-")
