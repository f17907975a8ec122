"""Shared fixtures: fake AWS credentials before any client exists, and events loaded from events/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spotmap.principals import ADMIN_CREDENTIALS, ADMIN_SESSION_TOKEN

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


# The suite's one set of fake credentials: the local cloud's admin (spotmap/principals.py), which moto
# accepts too. Never real ones.
FAKE_CREDENTIALS = {**ADMIN_CREDENTIALS, "AWS_SECURITY_TOKEN": ADMIN_SESSION_TOKEN}
FAKE_ENVIRONMENT = {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never reach real AWS: fake credentials and region for every test."""
    for name, value in FAKE_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
