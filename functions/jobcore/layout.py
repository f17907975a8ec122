"""The job's S3 layout: the one place that knows where a job's objects live.

input/<name>                      uploads; the only prefix that starts jobs
data/<...>                        inputs that job manifests refer to; uploads here start nothing
jobs/<job_id>/job.json            the job descriptor (source, processor, item count)
jobs/<job_id>/items.json          the item list the Distributed Map reads
jobs/<job_id>/results/<index>.json        an item's result record, written last by the worker
jobs/<job_id>/results/batch-<index>.json  a batch task's record (its items' results), written last
jobs/<job_id>/outcomes/<status>/<index>.json  an item's final outcome (attempts, usage, reason)
jobs/<job_id>/errors/<index>/attempt-<n>.json why a worker attempt failed (its last error line)
jobs/<job_id>/attempts/<index>/attempt-<n>.json a task LaunchTask started (capacity, size, launch time)
jobs/<job_id>/checkpoints/<index>.tar     an item's last checkpoint (worker/checkpoints.py), one archive
                                  overwritten by each PutObject; deleted when the item succeeds
jobs/<job_id>/launched/<index>/attempt-<n>.json the item's state as LaunchTask left it (completion by
                                  events: TaskStopped and PollTask resume the item from it)
jobs/<job_id>/launch-retries/<index>/attempt-<n>.json what RunTask refused while that launch waited
jobs/<job_id>/map-results/<map-run-id>/   the Distributed Map's ResultWriter: manifest.json and
                                  SUCCEEDED_<n>.json / FAILED_<n>.json (child execution records)
output/<job_id>/<index>/attempt-<n>/...   what a worker attempt writes
summaries/<job_id>.json           the job summary
summaries/<job_id>.html           its report page (jobcore.report), written with it
"""

from __future__ import annotations

INPUT_PREFIX = "input/"
DATA_PREFIX = "data/"
JOBS_PREFIX = "jobs/"
OUTPUT_PREFIX = "output/"
SUMMARIES_PREFIX = "summaries/"

MANIFEST_SUFFIX = ".job.json"


def is_job_trigger(key: str) -> bool:
    """True for keys that start a job: objects under input/, never folder markers."""
    return key.startswith(INPUT_PREFIX) and not key.endswith("/") and len(key) > len(INPUT_PREFIX)


def job_prefix(job_id: str) -> str:
    return f"{JOBS_PREFIX}{job_id}/"


def descriptor_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}job.json"


def items_key(job_id: str) -> str:
    return f"{job_prefix(job_id)}items.json"


def results_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}results/"


def result_key(job_id: str, index: int) -> str:
    return f"{results_prefix(job_id)}{index}.json"


def batch_record_key(job_id: str, index: int) -> str:
    """A batch task's record (jobcore.batching), keyed by the batch's first item; under results/ (the
    worker may write there) with a name `<index>.json` listings never take for an item's."""
    return f"{results_prefix(job_id)}batch-{index}.json"


def outcomes_prefix(job_id: str, status: str | None = None) -> str:
    base = f"{job_prefix(job_id)}outcomes/"
    return f"{base}{status.lower()}/" if status else base


def outcome_key(job_id: str, index: int, status: str) -> str:
    return f"{outcomes_prefix(job_id, status)}{index}.json"


def map_results_prefix(job_id: str) -> str:
    """Where the Distributed Map writes its result files (the ASL's ResultWriter Prefix, plus "/"):
    one folder per Map Run, each with a manifest.json."""
    return f"{job_prefix(job_id)}map-results/"


def error_key(job_id: str, index: int, attempt: int) -> str:
    return f"{job_prefix(job_id)}errors/{index}/attempt-{attempt}.json"


def attempts_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}attempts/"


def attempt_key(job_id: str, index: int, attempt: int) -> str:
    return f"{attempts_prefix(job_id)}{index}/attempt-{attempt}.json"


def checkpoints_prefix(job_id: str) -> str:
    return f"{job_prefix(job_id)}checkpoints/"


def checkpoint_key(job_id: str, index: int) -> str:
    """The item's one checkpoint object: every checkpoint of every attempt replaces it whole."""
    return f"{checkpoints_prefix(job_id)}{index}.tar"


def launched_key(job_id: str, index: int, attempt: int) -> str:
    """The item state LaunchTask persists when the Launch step waits for a task token (its return
    value is then discarded): what the task-stopped event and the backstop poll resume from."""
    return f"{job_prefix(job_id)}launched/{index}/attempt-{attempt}.json"


def event_claim_key(job_id: str, index: int, attempt: int) -> str:
    """Written once (a conditional write) by the first delivery of the task's stop event that resumes
    the item: a duplicate delivered at the same moment finds it and changes nothing."""
    return f"{job_prefix(job_id)}launched/{index}/attempt-{attempt}.event.json"


def launch_retries_key(job_id: str, index: int, attempt: int) -> str:
    """The tally of throttled RunTask calls and capacity shortages of one launch (jobcore.launch_retries)."""
    return f"{job_prefix(job_id)}launch-retries/{index}/attempt-{attempt}.json"


def job_output_prefix(job_id: str) -> str:
    return f"{OUTPUT_PREFIX}{job_id}/"


def output_prefix(job_id: str, index: int, attempt: int) -> str:
    return f"{job_output_prefix(job_id)}{index}/attempt-{attempt}/"


def summary_key(job_id: str) -> str:
    return f"{SUMMARIES_PREFIX}{job_id}.json"


def report_key(job_id: str) -> str:
    return f"{SUMMARIES_PREFIX}{job_id}.html"
