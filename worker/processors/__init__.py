"""Processors. Every module in this package is imported by `discover()`, so dropping a module that uses
`@worker.api.processor("name")` into this directory (or `COPY`ing it here in your own image) registers it.
Modules elsewhere on PYTHONPATH are imported when listed in `SPOTMAP_PROCESSOR_MODULES` (comma-separated).
Modules whose name starts with "_" are not imported."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable

from worker.errors import ConfigError

#: modules of this package that failed to import, with the error (reported when a processor is missing)
IMPORT_ERRORS: dict[str, str] = {}


def discover(extra_modules: str | Iterable[str] | None = None) -> None:
    """Import the package's modules (a broken one is remembered, not fatal: other processors still work)
    and then `extra_modules` (a failure there is a ConfigError: the image or the job asked for it)."""
    for module in pkgutil.iter_modules(__path__):
        name = f"{__name__}.{module.name}"
        if module.name.startswith("_") or name in IMPORT_ERRORS:
            continue
        try:
            importlib.import_module(name)
        except Exception as error:  # a user's module dropped into the package
            IMPORT_ERRORS[name] = f"{type(error).__name__}: {error}"
    if isinstance(extra_modules, str):
        extra_modules = extra_modules.split(",")
    for name in (m.strip() for m in extra_modules or ()):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as error:
            raise ConfigError(
                f"cannot import processor module {name!r} (SPOTMAP_PROCESSOR_MODULES): "
                f"{type(error).__name__}: {error}"
            ) from error
