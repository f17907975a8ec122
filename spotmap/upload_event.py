"""An event file of events/ made true: upload a file under the key the event names and give the event as
S3 would deliver it for that very upload.

The event files carry an example version id, size and ETag. The job bucket is versioned, so S3 gives
each upload a version id of its own and StartJob reads the object by the version its event names: an
example version id names no version of any upload, and StartJob starts nothing ("no object ... deleted
since the event?"). `spotmap local upload FILE --event EVENT` therefore uploads FILE and prints EVENT
with the upload's version id, size and ETag - what `sam local invoke StartJobFunction -e -` reads.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus


def uploaded_object(event: dict[str, Any]) -> tuple[str, str]:
    """(bucket, key) of the object an S3 notification or EventBridge "Object Created" event names. S3
    notifications URL-encode the key (space as '+'); StartJob also decodes an EventBridge key that
    names no object verbatim, so the decoded key is the one to upload for either."""
    if "Records" in event:
        s3 = event["Records"][0]["s3"]
        return s3["bucket"]["name"], unquote_plus(s3["object"]["key"])
    detail = event["detail"]
    return detail["bucket"]["name"], unquote_plus(detail["object"]["key"])


def event_for_upload(event: dict[str, Any], version_id: str | None, size: int, etag: str) -> dict[str, Any]:
    """The event with this upload's version id, size and ETag (keys and the rest as they are)."""
    delivered = copy.deepcopy(event)
    if "Records" in delivered:
        target = delivered["Records"][0]["s3"]["object"]
        names = {"versionId": version_id, "size": size, "eTag": etag}
    else:
        target = delivered["detail"]["object"]
        names = {"version-id": version_id, "size": size, "etag": etag}
    for name, value in names.items():
        if value is None:
            target.pop(name, None)  # an unversioned bucket's events carry no version id
        else:
            target[name] = value
    return delivered


def upload_for_event(s3: Any, path: Path, event: dict[str, Any]) -> dict[str, Any]:
    """Put the file under the event's bucket and key; the event as S3 would deliver it for the upload."""
    bucket, key = uploaded_object(event)
    body = path.read_bytes()
    response = s3.put_object(Bucket=bucket, Key=key, Body=body)
    version_id = response.get("VersionId")
    return event_for_upload(
        event,
        version_id if version_id and version_id != "null" else None,
        len(body),
        response["ETag"].strip('"'),
    )
