"""The item contract: an item is one of four kinds (shard, object, sweep, batch), told apart by the fields
it gives, and every kind keeps the one JSON shape the Map item, ITEM, SPOTMAP_ITEM and items.json had
before the kinds existed (the expected strings below are what the single Item model wrote)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from jobcore.models import (
    ItemBatch,
    ItemState,
    ObjectItem,
    ShardItem,
    SweepItem,
    parse_item,
    parse_item_json,
)

SHARD = ShardItem(index=3, bucket="b", key="data/x.csv", version_id="v1", start=10, end=20, header_end=5)
OBJECT = ObjectItem(index=1, bucket="b", key="data/a.csv")
SWEEP = SweepItem(index=2, params={"seed": 2})
OBJECTS = ItemBatch(
    index=5,
    bucket="b",
    batch=[
        ObjectItem(index=5, key="data/5.csv"),
        ObjectItem(index=6, bucket="other", key="data/6.csv", version_id="v"),
    ],
)
SWEEPS = ItemBatch(index=7, batch=[SweepItem(index=7, params={"seed": 7}), SweepItem(index=8)])

WIRE = [
    (
        SHARD,
        '{"index":3,"bucket":"b","key":"data/x.csv","version_id":"v1","start":10,"end":20,"header_end":5,'
        '"params":{}}',
        '{"index":3,"bucket":"b","key":"data/x.csv","version_id":"v1","start":10,"end":20,"header_end":5,'
        '"params":{}}',
    ),
    (
        OBJECT,
        '{"index":1,"bucket":"b","key":"data/a.csv","version_id":null,"start":null,"end":null,"header_end":0,'
        '"params":{}}',
        '{"index":1,"bucket":"b","key":"data/a.csv","header_end":0,"params":{}}',
    ),
    (
        SWEEP,
        '{"index":2,"bucket":null,"key":null,"version_id":null,"start":null,"end":null,"header_end":0,'
        '"params":{"seed":2}}',
        '{"index":2,"header_end":0,"params":{"seed":2}}',
    ),
    (
        OBJECTS,
        '{"index":5,"bucket":"b","key":null,"version_id":null,"start":null,"end":null,"header_end":0,'
        '"params":{},"batch":[{"index":5,"key":"data/5.csv"},{"index":6,"bucket":"other","key":"data/6.csv",'
        '"version_id":"v"}]}',
        '{"index":5,"bucket":"b","header_end":0,"params":{},"batch":[{"index":5,"key":"data/5.csv"},'
        '{"index":6,"bucket":"other","key":"data/6.csv","version_id":"v"}]}',
    ),
    (
        SWEEPS,
        '{"index":7,"bucket":null,"key":null,"version_id":null,"start":null,"end":null,"header_end":0,'
        '"params":{},"batch":[{"index":7,"params":{"seed":7}},{"index":8}]}',
        '{"index":7,"header_end":0,"params":{},"batch":[{"index":7,"params":{"seed":7}},{"index":8}]}',
    ),
]


@pytest.mark.parametrize(
    ("item", "full", "compact"), WIRE, ids=["shard", "object", "sweep", "objects", "sweeps"]
)
def test_every_kind_of_item_keeps_the_json_of_the_one_item_model(item: Any, full: str, compact: str) -> None:
    # GIVEN an item of each kind
    # WHEN it is written as the state machine carries it (all fields) and as items.json and ITEM have it
    # THEN the JSON is byte for byte what the single Item model wrote, and both read back as the same item
    assert item.model_dump_json() == full
    assert item.model_dump_json(exclude_none=True) == compact
    assert parse_item_json(full) == item and parse_item_json(compact) == item
    # AND inside an ItemState (a Lambda's output) the item is the same JSON, and reads back as its kind
    state = ItemState(job_id="j", bucket="b", item=item).model_dump(mode="json")
    assert state["item"] == json.loads(full)
    assert type(ItemState.model_validate(state).item) is type(item)


def test_the_kind_is_told_by_the_fields_an_item_gives() -> None:
    # GIVEN items as the wire gives them, without any kind field
    # WHEN they are read
    # THEN a byte range makes a shard, a key an object item, a batch a batch, and anything else a sweep item
    assert type(parse_item({"index": 0, "key": "data/a", "start": 0, "end": 5})) is ShardItem
    assert type(parse_item({"index": 0, "key": "data/a", "start": None, "header_end": 0})) is ObjectItem
    assert type(parse_item({"index": 0, "params": {"seed": 1}, "key": None})) is SweepItem
    assert type(parse_item({"index": 0})) is SweepItem
    batch = parse_item({"index": 4, "batch": [{"index": 4, "key": "data/a"}, {"index": 5}]})
    assert isinstance(batch, ItemBatch)
    assert [type(member) for member in batch.members()] == [ObjectItem, SweepItem]
    assert SHARD.members() == [SHARD]


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ({"index": 0, "key": "data/a", "params": {"seed": 1}}, "params"),  # an object item has no params
        ({"index": 0, "start": 0, "end": 5}, "key"),  # a shard names its object
        ({"index": 0, "bucket": "b"}, "key"),
        ({"index": 0, "batch": [{"index": 0, "key": "data/a", "start": 0, "end": 1}]}, "batch.0"),
        ({"index": -1}, "index"),
    ],
)
def test_an_item_that_mixes_kinds_is_refused_naming_the_field(given: dict[str, Any], problem: str) -> None:
    # GIVEN an item whose fields belong to no one kind (or are out of range)
    # WHEN it is read
    # THEN validation fails and names the field
    with pytest.raises(ValidationError) as refused:
        parse_item(given)
    assert problem in str(refused.value)
