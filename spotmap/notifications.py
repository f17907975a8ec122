"""What the stack's SNS topic would deliver, recorded by the local cloud.

moto's SNS accepts Publish (and keeps the topic and its e-mail subscription) but sends no e-mail, so
the local cloud writes every message published on it to <state dir>/logs/notifications.log, one JSON
document per line, and shows it on `spotmap local serve`'s output.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs

from spotmap.access import request_body

SNS_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/sns/aws4_request")


@dataclass(frozen=True)
class Published:
    topic_arn: str
    subject: str | None
    message: str
    at: str


def publish_request(environ: dict[str, Any]) -> Published | None:
    """The message of an SNS Publish request (the body is put back for moto); None for anything else."""
    if environ.get("REQUEST_METHOD") != "POST" or not SNS_SCOPE.search(environ.get("HTTP_AUTHORIZATION", "")):
        return None
    form = parse_qs(request_body(environ).decode("utf-8", "replace"), keep_blank_values=True)
    if (form.get("Action") or [""])[0] != "Publish":
        return None
    return Published(
        topic_arn=(form.get("TopicArn") or form.get("TargetArn") or [""])[0],
        subject=form["Subject"][0] if form.get("Subject") else None,
        message=(form.get("Message") or [""])[0],
        at=datetime.now(timezone.utc).isoformat(),
    )


class NotificationLog:
    """Appends published messages to a file and, optionally, shows them on a stream."""

    def __init__(self, path: Path, echo: TextIO | None = None):
        self.path = path
        self.echo = echo
        self._lock = threading.Lock()

    def record(self, published: Published) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as log:
                log.write(json.dumps(asdict(published)) + "\n")
            if self.echo is not None:
                indented = "\n".join(f"    {line}" for line in published.message.splitlines())
                print(
                    f"SNS notification to {published.topic_arn}: {published.subject or ''}\n{indented}",
                    file=self.echo,
                    flush=True,
                )

    def read(self) -> list[Published]:
        if not self.path.exists():
            return []
        return [Published(**json.loads(line)) for line in self.path.read_text(encoding="utf-8").splitlines()]
