"""The moto S3 the worker tests run against: fake credentials, no endpoint override, one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from moto import mock_aws


@contextmanager
def mocked_s3(monkeypatch: pytest.MonkeyPatch, bucket: str) -> Iterator[Any]:
    # the suite's fake credentials and region are set (tests/conftest.py); no endpoint: moto's mock
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.session.Session().client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=bucket)
        yield client
