"""The merge algebra Summarize relies on: each operator, item order, and a csv-profile-shaped $if."""

from __future__ import annotations

import pytest

from jobcore.merge import MergeError, finalize, merge, merge_all


@pytest.mark.parametrize(
    ("partials", "expected"),
    [
        ([{"$sum": 1}, {"$sum": 2.5}, {"$sum": 3}], 6.5),
        ([{"$count": 2}, {"$count": 5}], 7),
        ([{"$min": 3}, {"$min": None}, {"$min": -1.5}], -1.5),
        ([{"$max": "apple"}, {"$max": "pear"}, {"$max": None}], "pear"),
        ([{"$max": 2}, {"$max": "b"}], "b"),  # mixed kinds compare by text, never raise
        ([{"$first": None}, {"$first": "second"}, {"$first": "third"}], "second"),
        ([{"$all": True}, {"$all": False}, {"$all": True}], False),
        ([{"$any": False}, {"$any": True}], True),
        ([{"$list": [1, 2], "$limit": 3}, {"$list": [3, 4]}], [1, 2, 3]),
        ([{"$mean": [10, 2]}, {"$mean": [20, 3]}], 6.0),
        ([{"$mean": [0, 0]}], None),
        ([7, 8], 7),  # plain scalars: first wins
    ],
)
def test_each_operator(partials: list, expected: object) -> None:
    # GIVEN partial results of items 0..n-1, WHEN merged in item order and finalized
    # THEN each operator gives its documented value
    assert finalize(merge_all(partials)) == expected


def test_objects_merge_key_by_key_and_missing_keys_are_kept() -> None:
    a = {"rows": {"$sum": 2}, "only_a": {"$max": 1}}
    b = {"rows": {"$sum": 3}, "only_b": {"$first": "x"}}
    assert finalize(merge(a, b)) == {"rows": 5, "only_a": 1, "only_b": "x"}


def test_different_operators_for_the_same_value_do_not_merge() -> None:
    with pytest.raises(MergeError):
        merge({"$sum": 1}, {"$max": 1})


def csv_shard(numeric: bool, count: int, total: float, low: str, high: str) -> dict:
    """A csv-profile-shaped partial: both statistics under an $if on 'all cells numeric'."""
    return {
        "rows": {"$sum": count},
        "columns": {
            "price": {
                "$if": {"$all": numeric},
                "$then": {
                    "type": {"$first": "number"},
                    "sum": {"$sum": total},
                    "mean": {"$mean": [total, count]},
                },
                "$else": {"type": {"$first": "string"}, "min": {"$min": low}, "max": {"$max": high}},
            }
        },
    }


def test_csv_profile_if_chooses_the_branch_over_the_whole_file() -> None:
    # GIVEN two numeric shards and one with a non-numeric cell
    shards = [
        csv_shard(True, 2, 3.0, "1", "2"),
        csv_shard(False, 1, 0.0, "n/a", "n/a"),
        csv_shard(True, 1, 4.0, "4", "4"),
    ]

    # WHEN merged: THEN the column is a string column over all shards
    merged = finalize(merge_all(shards))
    assert merged == {"rows": 4, "columns": {"price": {"type": "string", "min": "1", "max": "n/a"}}}

    # AND with only numeric shards it is a number column
    numeric = finalize(merge_all([shards[0], shards[2]]))
    assert numeric["columns"]["price"] == {"type": "number", "sum": 7.0, "mean": 7.0 / 3}


def test_merging_is_associative_in_item_order() -> None:
    parts = [{"$list": [i]} for i in range(5)]
    left = merge(merge(merge(parts[0], parts[1]), parts[2]), merge(parts[3], parts[4]))
    assert finalize(left) == finalize(merge_all(parts)) == [0, 1, 2, 3, 4]
