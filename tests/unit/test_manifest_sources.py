"""A manifest's source is one of five kinds, told apart by the one source field it gives (a manifest has no
"kind" field); its errors name the manifest's own fields, never the union's kinds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobcore.manifest import (
    CountSource,
    ItemsSource,
    KeysSource,
    ManifestError,
    PrefixSource,
    ShardSource,
    parse_manifest,
)

KEY = "input/x.job.json"


def parse(document: dict[str, Any]) -> Any:
    return parse_manifest(json.dumps(document).encode(), KEY)


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ({"shard": {"key": "data/big.csv", "shard_size_mb": 16}}, ShardSource),
        ({"keys": ["data/a.csv", "input/b.csv"]}, KeysSource),
        ({"prefix": "data/day-1/"}, PrefixSource),
        ({"items": [{"n": 1}, {}]}, ItemsSource),
        ({"count": 3, "seed_start": 7}, CountSource),
        ({"count": 3, "keys": None, "seed_start": None}, CountSource),  # a null field is not given
    ],
)
def test_each_source_is_read_as_its_kind(source: dict[str, Any], kind: type) -> None:
    # GIVEN a manifest with one source, in `source` or at the top level
    # WHEN it is parsed
    # THEN the source is of its kind, in both places alike
    nested, top_level = parse({"processor": "noop", "source": source}), parse({"processor": "noop", **source})
    assert type(nested.source) is kind and nested.source == top_level.source
    assert nested.source.kind == next(name for name, value in source.items() if value is not None)


def test_a_count_source_starts_its_seeds_at_zero_unless_told() -> None:
    # GIVEN a count source without seed_start
    # WHEN it is parsed
    # THEN its seeds start at 0
    source = parse({"processor": "noop", "count": 2}).source
    assert isinstance(source, CountSource) and (source.count, source.seed_start) == (2, 0)


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"count": -1}, "source.count: Input should be greater than or equal to 0"),
        ({"count": 1, "foo": 2}, "source.foo: Extra inputs are not permitted"),
        ({"shard": {"key": "data/x.csv", "size": 3}}, "source.shard.size: Extra inputs are not permitted"),
        ({"keys": []}, "source.keys: List should have at least 1 item after validation, not 0"),
        ({"prefix": "x/"}, "source.prefix: must start with data/ or input/ (got 'x/')"),
        ({"keys": ["data/a"], "seed_start": 3}, "source: seed_start is only valid with count"),
        (
            {"seed_start": 3},
            "source: exactly one of shard, keys, prefix, items, count is required (got none)",
        ),
        (
            {"count": 1, "items": []},
            "source: exactly one of shard, keys, prefix, items, count is required (got items, count)",
        ),
        ("data/a.csv", "source: must be an object with one of shard, keys, prefix, items, count (got str)"),
    ],
)
def test_a_bad_source_is_refused_naming_the_manifest_field(source: Any, problem: str) -> None:
    # GIVEN a manifest whose source is invalid
    # WHEN it is parsed
    # THEN the error names the field as the manifest spells it (no kind of the union in the path)
    with pytest.raises(ManifestError) as refused:
        parse({"processor": "noop", "source": source})
    assert str(refused.value) == f"invalid manifest {KEY}: {problem}"
