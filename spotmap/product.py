"""Access to the product's own contract code (jobcore) from the local tooling.

The CLI derives job ids and S3 keys with the very code the Lambda functions use, so the two can
never disagree. jobcore ships inside the functions' CodeUri, which is put on sys.path here."""

from __future__ import annotations

import importlib
import sys
from functools import cache
from types import ModuleType
from typing import Any

from spotmap.cloud import project_root
from spotmap.template import load_yaml


@cache
def _code_dir() -> str:
    root = project_root()
    template = load_yaml(root / "template.yaml")
    code_uri = template.get("Globals", {}).get("Function", {}).get("CodeUri", "functions/")
    path = str((root / code_uri).resolve())
    if path not in sys.path:
        sys.path.append(path)
    return path


def _jobcore(module: str) -> ModuleType:
    _code_dir()
    return importlib.import_module(f"jobcore.{module}")


def jobcore_ids() -> ModuleType:
    return _jobcore("ids")


def jobcore_layout() -> ModuleType:
    return _jobcore("layout")


def read_json(s3: Any, bucket: str, key: str) -> Any | None:
    """The object's JSON, or None when it does not exist: jobcore's own reader (jobcore.store)."""
    return _jobcore("store").read_json(s3, bucket, key)
