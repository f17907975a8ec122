"""Rerun manifests (`{"rerun": {"job_id": ...}}`): validation with errors that name the field."""

from __future__ import annotations

import json

import pytest

from jobcore.manifest import Manifest, ManifestError, RerunManifest, parse_job_manifest

KEY = "input/rerun-x.job.json"


def test_a_rerun_manifest_names_the_earlier_job() -> None:
    parsed = parse_job_manifest(json.dumps({"rerun": {"job_id": "data-2d0046bae4c9ebb1"}}).encode(), KEY)
    assert isinstance(parsed, RerunManifest)
    assert parsed.rerun.job_id == "data-2d0046bae4c9ebb1"


def test_a_job_manifest_is_still_a_job_manifest() -> None:
    parsed = parse_job_manifest(b'{"processor": "noop", "count": 2}', KEY)
    assert isinstance(parsed, Manifest) and parsed.source.count == 2


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ({"rerun": {"job_id": "not a job id!"}}, "rerun.job_id: String should match pattern"),
        ({"rerun": {}}, "rerun.job_id: Field required"),
        ({"rerun": "data-1"}, "rerun: Input should be a valid dictionary"),
        ({"rerun": {"job_id": "a"}, "processor": "noop"}, "processor: Extra inputs are not permitted"),
        ({"rerun": {"job_id": "a", "items": [1]}}, "rerun.items: Extra inputs are not permitted"),
    ],
)
def test_an_invalid_rerun_manifest_is_refused_naming_the_field(document: dict, problem: str) -> None:
    # GIVEN a rerun manifest with one mistake
    # WHEN it is parsed
    with pytest.raises(ManifestError) as refused:
        parse_job_manifest(json.dumps(document).encode(), KEY)
    # THEN the error names the manifest, the field and the problem, and shows the right shape
    assert f"invalid manifest {KEY}: {problem}" in str(refused.value)
    assert '{"rerun": {"job_id": "<earlier job>"}} and nothing else' in str(refused.value)
