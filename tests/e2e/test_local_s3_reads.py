"""The local cloud answers plain GetObjects itself (moto copies a whole object per GET and routes each
request through several layers): its answers must be the ones moto gives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from spotmap.cloud import CloudOptions, LocalCloud

BODY = b"city,population\n" + b"".join(f"town-{i},{i * 7}\n".encode() for i in range(2000))
COMPARED = ("ETag", "ContentLength", "ContentType", "ContentRange", "Metadata", "VersionId", "ChecksumCRC32")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(
        options=CloudOptions(state_dir=tmp_path_factory.mktemp("s3-reads"), run_schedules=False)
    ) as running:
        yield running


def _answers(cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, **request: Any) -> tuple[Any, Any]:
    """(fast path, moto) answers to the same GetObject: the body and the compared fields, or the error."""
    s3 = cloud.client("s3")

    def get() -> Any:
        try:
            response = s3.get_object(Bucket=cloud.stack.bucket, **request)
        except ClientError as error:
            return error.response["Error"]["Code"]
        return response["Body"].read(), {name: response.get(name) for name in COMPARED}

    fast = get()
    with monkeypatch.context() as patch:
        patch.setattr(cloud, "_plain_get", lambda environ: None)
        moto = get()
    return fast, moto


@pytest.mark.parametrize(
    "request_fields",
    [
        {},
        {"Range": "bytes=100-199"},
        {"Range": "bytes=1000-"},
        {"Range": f"bytes=100-{len(BODY) * 2}"},
        {"ChecksumMode": "ENABLED"},
    ],
    ids=["whole", "range", "open-range", "range-past-the-end", "checksum"],
)
def test_plain_gets_answer_as_moto_does(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch, request_fields: dict[str, str]
) -> None:
    # GIVEN an object written with a content type, user metadata and a checksum
    cloud.client("s3").put_object(
        Bucket=cloud.stack.bucket,
        Key="data/towns.csv",
        Body=BODY,
        ContentType="text/csv",
        Metadata={"origin": "census"},
        ChecksumAlgorithm="CRC32",
    )

    # WHEN it is read through the local cloud's own path and through moto's
    fast, moto = _answers(cloud, monkeypatch, Key="data/towns.csv", **request_fields)

    # THEN both give the same bytes and the same headers
    assert fast == moto
    assert fast[0]


def test_versions_missing_keys_and_bad_ranges_answer_as_moto_does(
    cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an object written twice (the bucket is versioned) without a content type
    s3 = cloud.client("s3")
    first = s3.put_object(Bucket=cloud.stack.bucket, Key="data/twice.txt", Body=b"first")["VersionId"]
    s3.put_object(Bucket=cloud.stack.bucket, Key="data/twice.txt", Body=b"second")

    # WHEN the old version, the latest, a missing key and an unsatisfiable range are read both ways
    # THEN every answer (or error) is the same
    for request in (
        {"Key": "data/twice.txt", "VersionId": first},
        {"Key": "data/twice.txt"},
        {"Key": "data/missing.txt"},
        {"Key": "data/twice.txt", "Range": "bytes=50-60"},
    ):
        fast, moto = _answers(cloud, monkeypatch, **request)
        assert fast == moto, request
