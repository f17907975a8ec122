"""The merge algebra Summarize relies on: each operator, item order, a csv-profile-shaped $if, and
OrderedMerge, which merges items arriving in any order."""

from __future__ import annotations

import random

import pytest

from jobcore.merge import (
    InvalidPartial,
    MergeError,
    OrderedMerge,
    check,
    finalize,
    merge,
    merge_all,
    problems,
)
from tests.unit.partial_shapes import CLASHING_PARTIALS, INVALID_PARTIALS


@pytest.mark.parametrize(
    ("partials", "expected"),
    [
        ([{"$sum": 1}, {"$sum": 2.5}, {"$sum": 3}], 6.5),
        ([{"$count": 2}, {"$count": 5}], 7),
        ([{"$min": 3}, {"$min": None}, {"$min": -1.5}], -1.5),
        ([{"$max": "apple"}, {"$max": "pear"}, {"$max": None}], "pear"),
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


# ------------------------------------------------------------------------------------- OrderedMerge


def merged_in(order: list[int], partials: dict[int, object], size: int) -> OrderedMerge:
    ordered = OrderedMerge(size)
    for index in order:
        ordered.add(index, partials.get(index))
    return ordered


def test_ordered_merge_gives_the_same_bits_whatever_the_order_of_arrival() -> None:
    # GIVEN 1,000 items (some without a partial) whose float sums round differently by grouping
    rng = random.Random(7)
    partials = {
        i: {"x": {"$sum": rng.uniform(-1e6, 1e6) / 3}, "seen": {"$list": [i], "$limit": 5000}}
        for i in range(1000)
        if i % 13
    }
    in_order = merged_in(list(range(1000)), partials, 1000).result()

    # WHEN they arrive shuffled, backwards, or in interleaved runs
    orders = [
        rng.sample(range(1000), 1000),
        list(range(999, -1, -1)),
        list(range(0, 1000, 2)) + list(range(1, 1000, 2)),
    ]

    # THEN the merged value is identical to the last bit, lists in item order
    for order in orders:
        assert merged_in(order, partials, 1000).result() == in_order
    merged, failure = in_order
    assert failure == [] and finalize(merged)["seen"] == sorted(partials)
    assert finalize(merged)["x"] == pytest.approx(finalize(merge_all(partials.values()))["x"])


def test_ordered_merge_holds_few_segments_when_items_arrive_nearly_in_order() -> None:
    # GIVEN 10,000 items arriving in order, then arriving up to 50 places out of order
    rng = random.Random(3)
    nearly = sorted(range(10_000), key=lambda i: i + rng.uniform(0, 50))
    for order, bound in ((list(range(10_000)), 14), (nearly, 120)):
        ordered = OrderedMerge(10_000)
        most = 0
        for index in order:
            ordered.add(index, {"n": {"$sum": 1}})
            most = max(most, ordered.waiting)
        # THEN only a few segments wait for a neighbour at any time (log2 n in order)
        assert most <= bound, most
        assert finalize(ordered.result()[0]) == {"n": 10_000}


def test_ordered_merge_reports_the_first_item_that_does_not_merge() -> None:
    partials = {
        0: {"x": {"$sum": 1}},
        1: {"x": {"$sum": 2}},
        2: None,
        3: {"x": {"$max": 1}},
        5: {"x": {"$min": 0}},
    }
    for order in ([0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]):
        merged, failure = merged_in(order, partials, 6).result()
        assert merged is None
        assert failure and str(failure[0]) == (
            "items 0–1 and item 3 do not merge: key `x`: $sum in one item and $max in another"
        )


# ------------------------------------------------------------------------------------- typed algebra


@pytest.mark.parametrize(
    ("partial", "says"), [case[1:] for case in INVALID_PARTIALS], ids=[c[0] for c in INVALID_PARTIALS]
)
def test_every_invalid_partial_is_named_by_its_key_and_problem(partial: object, says: str) -> None:
    # GIVEN one item's partial result that breaks the algebra
    # WHEN it is checked, THEN the problem names the key and what is wrong
    found = problems(partial)
    assert found and any(says in problem for problem in found), found
    with pytest.raises(InvalidPartial):
        check(partial)


@pytest.mark.parametrize(
    ("first", "second", "says"),
    [case[1:] for case in CLASHING_PARTIALS],
    ids=[c[0] for c in CLASHING_PARTIALS],
)
def test_valid_partials_that_clash_between_items_raise_merge_error_naming_the_key(
    first: object, second: object, says: str
) -> None:
    # GIVEN two items' partial results, each valid alone
    assert problems(first) == [] and problems(second) == []

    # WHEN they are merged, THEN a MergeError (nothing else) names the key and both shapes
    with pytest.raises(MergeError) as raised:
        merge(first, second)
    assert says in str(raised.value)


def test_the_csv_profile_shapes_and_data_with_dollar_keys_inside_first_or_list_are_valid() -> None:
    # GIVEN partials whose data (not declarations) holds $ keys, and a csv-profile shard
    assert problems({"row": {"$first": {"$sum": "data"}}, "rows": {"$list": [{"$ref": 1}]}}) == []
    assert problems(csv_shard(False, 1, 0.0, "a", "b")) == []
    assert problems(None) == [] and problems([1, 2]) == [] and problems(3) == []


def test_ordered_merge_turns_invalid_partials_into_failures_naming_the_item() -> None:
    # GIVEN three items, the second of which sums a string (as no worker would now let through)
    partials = {0: {"x": {"$sum": 1}}, 1: {"x": {"$sum": "two"}}, 2: {"x": {"$sum": 3}}}

    # WHEN merged in any order
    for order in ([0, 1, 2], [2, 1, 0]):
        merged, failures = merged_in(order, partials, 3).result()

        # THEN nothing raises, no result, and the failure names item 1 and the key
        assert merged is None
        assert [str(f) for f in failures] == [
            "item 1 has an invalid partial result: key `x`: $sum takes a number, not a string"
        ]


def test_ordered_merge_of_nothing_and_of_one() -> None:
    assert OrderedMerge(0).result() == (None, [])
    assert merged_in([0], {0: {"$sum": 2}}, 1).result() == ({"$sum": 2}, [])
    assert merged_in([0, 1], {}, 2).result() == (None, [])
    with pytest.raises(ValueError, match="1 of 2 items added"):
        merged_in([1], {1: {"$sum": 2}}, 2).result()
