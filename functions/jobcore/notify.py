"""The message a job's end publishes to the stack's SNS topic (optional: NotificationEmail or
NotificationTopicArn in the template).

Short and plain (an e-mail subscription shows it as is): job, status, counts, cost, and where the
summary and its report page are. SNS's Publish rules: the subject is ASCII, without line breaks, under
100 characters (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html); the message is far below
the 256 KiB limit.
"""

from __future__ import annotations

from typing import Any

from jobcore import layout

MAX_SUBJECT = 99


def subject(summary: dict[str, Any]) -> str:
    text = f"spotmap job {summary.get('status')}: {summary.get('job_id')}"
    text = "".join(char if 32 <= ord(char) < 127 else "?" for char in text)
    return text[:MAX_SUBJECT]


def message(summary: dict[str, Any], bucket: str) -> str:
    job_id = str(summary.get("job_id"))
    items, attempts, cost = summary.get("items", {}), summary.get("attempts", {}), summary.get("cost") or {}
    seconds = (summary.get("timing") or {}).get("seconds")
    source = summary.get("input") or {}
    lines = [
        f"Job {job_id} {summary.get('status')}"
        + (f" (input s3://{source.get('bucket')}/{source.get('key')})" if source else ""),
        f"Items: {items.get('succeeded', 0)}/{items.get('total', 0)} succeeded, "
        f"{items.get('failed', 0)} failed",
        f"Tasks: {attempts.get('launched', 0)} launched, {attempts.get('spot_interruptions', 0)} Spot "
        f"interruptions, {attempts.get('on_demand_fallbacks', 0)} on-demand fallbacks",
    ]
    if seconds is not None:
        lines.append(f"Duration: {seconds:.1f} s")
    if "total_usd" in cost:
        lines.append(
            f"Estimated cost: ${cost['total_usd']:.6f} (on-demand only: "
            f"${cost.get('on_demand_equivalent_usd', 0):.6f})"
        )
    if summary.get("error"):
        lines.append(f"Error: {str(summary['error'])[:500]}")
    lines += [
        f"Summary: s3://{bucket}/{layout.summary_key(job_id)}",
        f"Report:  s3://{bucket}/{layout.report_key(job_id)}",
    ]
    return "\n".join(lines)


def publish(sns: Any, topic_arn: str, summary: dict[str, Any], bucket: str) -> str:
    """Publish the job's end to the topic; the MessageId."""
    response = sns.publish(TopicArn=topic_arn, Subject=subject(summary), Message=message(summary, bucket))
    return str(response["MessageId"])
