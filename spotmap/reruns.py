"""`spotmap rerun JOB_ID`: upload `{"rerun": {"job_id": JOB_ID}}` under input/, as any job is started.

StartJob does the rest (jobcore.rerun): a new job over exactly the earlier job's failed items, whose
summary carries the whole job's result. The manifest's key is `input/rerun-<JOB_ID>.job.json`; every
upload is a new version, hence a new job id, so running the command again reruns what is still failed
(name the latest rerun to rerun its failures)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spotmap.product import jobcore_ids, jobcore_layout


@dataclass(frozen=True)
class SubmittedRerun:
    key: str
    job_id: str
    summary_key: str


def rerun_manifest(job_id: str) -> bytes:
    return json.dumps({"rerun": {"job_id": job_id}}).encode("utf-8")


def submit_rerun(s3: Any, bucket: str, job_id: str) -> SubmittedRerun:
    """Upload the rerun manifest of `job_id` and return the new job's id (derived as StartJob does)."""
    layout = jobcore_layout()
    key = f"{layout.INPUT_PREFIX}rerun-{job_id}{layout.MANIFEST_SUFFIX}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=rerun_manifest(job_id), ContentType="application/json")
    head = s3.head_object(
        Bucket=bucket, Key=key, **({"VersionId": put["VersionId"]} if put.get("VersionId") else {})
    )
    new_id = jobcore_ids().job_id_for(
        bucket, key, version_id=head.get("VersionId"), etag=str(head.get("ETag", "")).strip('"')
    )
    return SubmittedRerun(key, new_id, layout.summary_key(new_id))
