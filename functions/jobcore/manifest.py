"""Job manifests: `input/<name>.job.json` describes a job instead of being its data.

    {"processor": "<name>", "params": {...}, "source": {<exactly one source>}}

Sources:
    {"shard": {"key": "input/big.csv", "shard_size_mb": 16}}   line-aligned shards of one CSV object
    {"keys": ["data/a.csv", "data/b.csv"]}                     one item per object
    {"prefix": "data/day-1/"}                                  one item per object under the prefix
    {"items": [{...params}, ...]}                              one item per entry (item params)
    {"count": N, "seed_start": S}                              N items with params {"seed": S + i}

A rerun manifest names an earlier job instead, and runs its failed items again (jobcore.rerun):
    {"rerun": {"job_id": "<earlier job>"}}
Optional: "batch": {"max_items": N, "max_bytes": B} groups the items into tasks (jobcore.batching; for
keys, prefix, items and count; max_bytes for keys and prefix); "batch": null turns the template's default
(BatchMaxItems / BatchMaxBytes) off for this job.

The source's fields may also be given at the top level of the manifest (not both). Objects must live
under data/ (inputs that start nothing themselves) or input/: the worker may read only those and jobs/.
A manifest that fails validation becomes a rejected job: job.json carries an error naming the field
and the problem, the execution fails at once and the summary says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from jobcore import batching, layout
from jobcore.models import ObjectItem, SweepItem

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
MAX_COUNT = 10_000_000
CSV_PROFILE = "csv-profile"
# The result of a job with no items, for the processors StartJob knows.
EMPTY_RESULTS: dict[str, Any] = {CSV_PROFILE: {"rows": 0, "columns": {}}}

SOURCES = ("shard", "keys", "prefix", "items", "count")


class ManifestError(ValueError):
    """The manifest cannot become a job; the message names the field and the problem."""


READABLE_PREFIXES = (layout.DATA_PREFIX, layout.INPUT_PREFIX)


def _input_key(value: str) -> str:
    if not value.startswith(READABLE_PREFIXES) or value.endswith("/") or value in READABLE_PREFIXES:
        raise ValueError(f"must be an object key under {' or '.join(READABLE_PREFIXES)} (got {value!r})")
    if value.endswith(layout.MANIFEST_SUFFIX):
        raise ValueError(f"must name a data object, not a manifest (got {value!r})")
    return value


class ShardedObject(BaseModel):
    """The CSV object a shard source cuts into line-aligned shards, and how large they are."""

    model_config = ConfigDict(extra="forbid")

    key: str
    shard_size_mb: float | None = Field(default=None, gt=0)

    _key = field_validator("key")(_input_key)


class _SourceKind(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ClassVar[str]  # the source's field in the manifest, and its name in messages


class ShardSource(_SourceKind):
    """{"shard": {"key": ..., "shard_size_mb": ...}}: line-aligned shards of one CSV object."""

    kind: ClassVar[str] = "shard"

    shard: ShardedObject


class KeysSource(_SourceKind):
    """{"keys": [...]}: one item per object."""

    kind: ClassVar[str] = "keys"

    keys: list[str] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _keys_under_input(cls, keys: list[str]) -> list[str]:
        for key in keys:
            _input_key(key)
        return keys


class PrefixSource(_SourceKind):
    """{"prefix": ...}: one item per object under the prefix."""

    kind: ClassVar[str] = "prefix"

    prefix: str

    @field_validator("prefix")
    @classmethod
    def _prefix_readable(cls, prefix: str) -> str:
        if not prefix.startswith(READABLE_PREFIXES):
            raise ValueError(f"must start with {' or '.join(READABLE_PREFIXES)} (got {prefix!r})")
        return prefix


class ItemsSource(_SourceKind):
    """{"items": [{...params}, ...]}: one item per entry, with those params."""

    kind: ClassVar[str] = "items"

    items: list[dict[str, Any]]


class CountSource(_SourceKind):
    """{"count": N, "seed_start": S}: N items with params {"seed": S + i}."""

    kind: ClassVar[str] = "count"

    count: int = Field(ge=0, le=MAX_COUNT)
    seed_start: int = 0


_SOURCE_KINDS: tuple[type[_SourceKind], ...] = (
    ShardSource,
    KeysSource,
    PrefixSource,
    ItemsSource,
    CountSource,
)
# The union's tags are the class names: pydantic puts the tag in an error's location, which
# describe_errors leaves out again (the manifest has no such field: "source.count", not "source.count.count").
_SOURCE_TAGS = {kind.__name__: kind for kind in _SOURCE_KINDS}


def _one_source(data: Any) -> Any:
    """Exactly one of the sources' fields (a null field is not given), and seed_start only with count:
    said as such, rather than as the union's errors for every kind the document is not."""
    if isinstance(data, _SourceKind):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"must be an object with one of {', '.join(SOURCES)} (got {type(data).__name__})")
    given = {name: value for name, value in data.items() if value is not None}
    named = [name for name in SOURCES if name in given]
    if len(named) != 1:
        listed = ", ".join(named) if named else "none"
        raise ValueError(f"exactly one of {', '.join(SOURCES)} is required (got {listed})")
    if "seed_start" in given and "count" not in given:
        raise ValueError("seed_start is only valid with count")
    return given


def _source_tag(data: Any) -> str | None:
    """The kind of source a document is (after _one_source: the one source field it gives)."""
    if isinstance(data, _SourceKind):
        return type(data).__name__
    if isinstance(data, dict):
        return next((kind.__name__ for kind in _SOURCE_KINDS if kind.kind in data), None)
    return None


# Where a job's items come from: one of the kinds, told apart by the field it gives (no "kind" field).
Source = Annotated[
    Annotated[ShardSource, Tag("ShardSource")]
    | Annotated[KeysSource, Tag("KeysSource")]
    | Annotated[PrefixSource, Tag("PrefixSource")]
    | Annotated[ItemsSource, Tag("ItemsSource")]
    | Annotated[CountSource, Tag("CountSource")],
    Discriminator(_source_tag),
    BeforeValidator(_one_source),
]


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    processor: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    params: dict[str, Any] = Field(default_factory=dict)
    source: Source
    batch: batching.BatchSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _top_level_source(cls, data: Any) -> Any:
        """Accept the source's fields at the top level too: {"processor": "x", "count": 3}."""
        if not isinstance(data, dict):
            return data
        top_level = {name: data[name] for name in (*SOURCES, "seed_start") if name in data}
        if not top_level:
            return data
        if "source" in data:
            raise ValueError(
                f"give the source either in 'source' or at the top level, not both ({top_level})"
            )
        rest = {name: value for name, value in data.items() if name not in top_level}
        return {**rest, "source": top_level}

    @property
    def empty_result(self) -> Any:
        return EMPTY_RESULTS.get(self.processor)

    @property
    def batch_given(self) -> bool:
        """The manifest says how to batch (`"batch": null` included): the template's default is off."""
        return "batch" in self.model_fields_set


class RerunTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # a job id is its execution's name (jobcore.ids): 1-80 of [A-Za-z0-9_-]
    job_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")


class RerunManifest(BaseModel):
    """`{"rerun": {"job_id": ...}}`: the earlier job's processor, params and failed items, nothing else."""

    model_config = ConfigDict(extra="forbid")

    rerun: RerunTarget


def _document(body: bytes, key: str) -> dict[str, Any]:
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest {key} is {len(body)} bytes; the limit is {MAX_MANIFEST_BYTES}")
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"manifest {key} is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise ManifestError(f"manifest {key} must be a JSON object, not {type(document).__name__}")
    return document


def parse_job_manifest(
    body: bytes, key: str, processors: list[str] | None = None
) -> Manifest | RerunManifest:
    """A manifest of either kind: a rerun manifest when it has a `rerun` field, else a job manifest."""
    document = _document(body, key)
    if "rerun" not in document:
        return parse_manifest(body, key, processors)
    try:
        return RerunManifest.model_validate(document)
    except ValidationError as error:
        raise ManifestError(
            f'invalid manifest {key}: {describe_errors(error)} (a rerun manifest is {{"rerun": '
            '{"job_id": "<earlier job>"}} and nothing else)'
        ) from None


def parse_manifest(body: bytes, key: str, processors: list[str] | None = None) -> Manifest:
    """The manifest in `body`, or ManifestError with a readable reason. `processors`, when given,
    are the only processor names the worker image provides."""
    document = _document(body, key)
    try:
        spec = Manifest.model_validate(document)
    except ValidationError as error:
        raise ManifestError(f"invalid manifest {key}: {describe_errors(error)}") from None
    if processors and spec.processor not in processors:
        raise ManifestError(
            f"invalid manifest {key}: processor: {spec.processor!r} is not provided by the worker image "
            f"(Processors: {', '.join(processors)})"
        )
    batch_problem = batching.manifest_problem(spec.batch, spec.source.kind)
    if batch_problem is not None:
        raise ManifestError(f"invalid manifest {key}: batch: {batch_problem}")
    check_processor_params(spec, key)
    return spec


def _command_param_problem(name: str, value: Any, has_input: bool) -> str | None:
    """What is wrong with one of the command processor's own params (worker/processors/command.py
    refuses the same values, but only once a task runs: every task would fail alike)."""
    if name == "command" and (
        not isinstance(value, list) or not value or not all(isinstance(arg, str) and arg for arg in value)
    ):
        return (
            'must be a non-empty list of strings (an argv, never run through a shell), e.g. ["my-tool", '
            f'"{{input}}"]; got {json.dumps(value)[:200]}'
        )
    if name == "env" and not isinstance(value, dict):
        return f"must be an object of NAME: value; got {json.dumps(value)[:200]}"
    if name == "input":
        if value not in ("file", "none"):
            return f'must be "file" or "none"; got {json.dumps(value)[:200]}'
        if value == "file" and not has_input:
            return '"file" needs items that name an object (source shard, keys or prefix)'
    if name == "stop_grace_seconds" and (
        isinstance(value, bool) or not isinstance(value, int | float) or value < 0
    ):
        return f"must be a number of seconds, 0 or more; got {json.dumps(value)[:200]}"
    return None


def check_processor_params(spec: Manifest, key: str) -> None:
    """The params a processor StartJob knows must be valid for every item (job params, then each item's
    own params on top, as the worker merges them) before any task starts. ManifestError names the field."""
    if spec.processor != "command":
        return
    has_input = isinstance(spec.source, ShardSource | KeysSource | PrefixSource)
    own_params = isinstance(spec.source, ItemsSource)
    entries = (spec.source.items if isinstance(spec.source, ItemsSource) else None) or [{}]
    for index, item_params in enumerate(entries):
        merged = {**spec.params, **item_params}
        if "command" not in merged:
            where = f"source.items.{index}.command" if own_params else "params.command"
            raise ManifestError(f"invalid manifest {key}: {where}: required by the command processor")
        for name in ("command", "env", "input", "stop_grace_seconds"):
            if name not in merged:
                continue
            problem = _command_param_problem(name, merged[name], has_input)
            if problem is not None:
                where = f"source.items.{index}.{name}" if name in item_params else f"params.{name}"
                raise ManifestError(f"invalid manifest {key}: {where}: {problem}")


def describe_errors(error: ValidationError) -> str:
    problems = []
    for problem in error.errors():
        location = [part for part in problem.get("loc", ()) if part not in _SOURCE_TAGS]
        field = ".".join(str(part) for part in location) or "manifest"
        message = str(problem.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{field}: {message}")
    return "; ".join(problems)


def object_items(bucket: str, keys: Iterator[str]) -> Iterator[ObjectItem]:
    for index, key in enumerate(keys):
        yield ObjectItem(index=index, bucket=bucket, key=key)


def param_items(entries: list[dict[str, Any]]) -> Iterator[SweepItem]:
    for index, params in enumerate(entries):
        yield SweepItem(index=index, params=params)


def seed_items(count: int, seed_start: int) -> Iterator[SweepItem]:
    for index in range(count):
        yield SweepItem(index=index, params={"seed": seed_start + index})
