"""Processor registration and discovery: built-ins, SPOTMAP_PROCESSOR_MODULES, the image example."""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

from jobcore import layout
from jobcore.merge import finalize, merge_all
from tests.unit.worker_s3 import mocked_s3
from worker import runner, storage
from worker.api import processor, registered
from worker.testing import run_processor

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "spotmap-test-processors"


def test_built_in_processors_are_registered():
    # GIVEN the worker is imported WHEN the registry is listed THEN the built-ins are there
    names = set(registered())
    assert {"csv-profile", "command", "noop"} <= names
    assert registered()["csv-profile"].module == "worker.processors.csv_profile"


def test_a_name_cannot_be_registered_twice_by_different_code():
    # GIVEN a processor name that is taken WHEN another function claims it THEN registration fails
    with pytest.raises(ValueError, match="already registered by worker.processors.noop"):

        @processor("noop")
        def impostor(ctx):
            return None


def test_own_image_example_processor_counts_words_across_shards():
    # GIVEN the example processor that worker/Dockerfile.example adds, loaded as the image would load it
    path = ROOT / "worker" / "examples" / "word_count.py"
    spec = importlib.util.spec_from_file_location("worker.processors.word_count", path)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    data = b"one two\nthree\n\nfour five six seven\n"

    # WHEN it runs on two byte ranges of a text file (no header)
    partials = [
        run_processor("word-count", data, start=0, end=14),
        run_processor("word-count", data, start=14),
    ]

    # THEN the merged result covers the whole file
    assert finalize(merge_all(partials)) == {"files": 2, "lines": 4, "words": 7, "longest_file_lines": 2}


@pytest.fixture
def s3(monkeypatch):
    with mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def test_a_module_named_in_SPOTMAP_PROCESSOR_MODULES_is_imported_and_used(s3, tmp_path, monkeypatch):
    # GIVEN a user's processor module on PYTHONPATH, outside the worker package
    (tmp_path / "team_processors.py").write_text(
        textwrap.dedent(
            """
            from worker.api import processor

            @processor("team-square")
            def square(ctx):
                n = ctx.params["n"]
                return {"squares": {"$list": [n * n]}, "total": {"$sum": n * n}}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    descriptor = {
        "job_id": "sweep",
        "input": {"bucket": BUCKET, "key": "input/sweep.job.json", "size": 1},
        "processor": "team-square",
        "item_count": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key("sweep"), Body=json.dumps(descriptor))

    # WHEN the worker runs a sweep item with SPOTMAP_PROCESSOR_MODULES naming the module
    code = runner.main(
        {
            "JOB_BUCKET": BUCKET,
            "JOB_ID": "sweep",
            "ITEM_INDEX": "0",
            "ATTEMPT": "1",
            "ITEM": json.dumps({"index": 0, "params": {"n": 7}}),
            "SCRATCH_DIR": str(tmp_path / "scratch"),
            "SPOTMAP_PROCESSOR_MODULES": "team_processors",
        }
    )

    # THEN the processor was found and its partial result recorded
    assert code == 0
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=layout.result_key("sweep", 0))["Body"].read())
    assert record["partial"] == {"squares": {"$list": [49]}, "total": {"$sum": 49}}


def test_preload_prepares_a_process_for_forking_without_credentials(monkeypatch):
    # GIVEN no AWS credentials at all in the environment
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)

    # WHEN a fork server preloads the worker
    runner.preload()

    # THEN the processors are registered and the shared boto3 session holds the S3 model
    assert {"csv-profile", "command", "noop"} <= set(registered())
    assert storage._session is not None
