"""Settings read from the environment, for the Lambda functions (jobcore/config.py) and the worker
(worker/runner.py's WorkerConfig) alike: pydantic-settings reads the variables into one typed, validated
object, and every problem surfaces at once as the one ConfigError, naming the variables.

Variable names are the fields' names in upper case (or a field's explicit alias). An empty (or blank)
variable means "not set": an optional setting takes its default, a required one fails.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

T = TypeVar("T", bound="Settings")

# The variables `from_env` reads (None: os.environ), for the source that settings_customise_sources
# gives pydantic-settings while that call builds the object.
_VARIABLES: ContextVar[Mapping[str, str] | None] = ContextVar("spotmap_settings_variables", default=None)


class ConfigError(RuntimeError):
    """A missing or malformed setting: a function's environment, the worker's task environment, or a
    job's configuration as the worker reads it. A Lambda invocation fails with it; the worker exits with
    `exit_code` (worker/README.md)."""

    exit_code = 2


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over the variables `from_env` was given, blank ones left
    out (the template sets optional variables to "" when a parameter is empty)."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]) -> None:
        super().__init__(settings_cls, case_sensitive=True)
        self.env_vars = {name: value for name, value in variables.items() if value.strip() != ""}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        alias_generator=str.upper,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        case_sensitive=True,
    )
    # How a ConfigError of this class begins.
    config_error_heading: ClassVar[str] = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment alone: no .env file, no secrets directory.
        variables = _VARIABLES.get()
        return (init_settings, _Variables(settings_cls, os.environ if variables is None else variables))

    @classmethod
    def from_env(cls: type[T], environ: Mapping[str, str] | None = None) -> T:
        """The settings from `environ` (default os.environ); ConfigError names every problem."""
        heading = cls.config_error_heading or f"{cls.__name__}: invalid environment"
        try:
            with _reading(environ):
                return cls()
        except ValidationError as error:
            problems = "; ".join(_describe(problem) for problem in error.errors())
            raise ConfigError(f"{heading}: {problems}") from None
        except SettingsError as error:
            raise ConfigError(f"{heading}: {error}") from None


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    token = _VARIABLES.set(environ)
    try:
        yield
    finally:
        _VARIABLES.reset(token)


def _describe(problem: Any) -> str:
    name = ".".join(str(part) for part in problem.get("loc", ())) or "environment"
    if problem.get("type") == "missing":
        return f"{name} is not set"
    got = problem.get("input")
    shown = f" (got {got!r})" if isinstance(got, str) else ""
    message = str(problem.get("msg", "")).removeprefix("Value error, ")
    if name == "environment":
        return message
    if message.startswith("must "):  # the validators' own phrasing reads on from the name
        return f"{name} {message}{shown}"
    return f"{name}: {message}{shown}"


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _non_negative_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < 0:
            raise ValueError("must be a non-negative integer")
        return number
    return value


# A comma-separated variable ("subnet-1,subnet-2"; empty: []), not JSON as pydantic-settings would read
# a list by default.
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_list)]
# A count or an index given as a variable: "0", "7"; never negative.
NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_non_negative_int)]
