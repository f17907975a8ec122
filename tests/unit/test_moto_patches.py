"""The local cloud's seam with moto (spotmap/moto_patches.py): the version check, and per patched
attribute, that moto still has it in the shape the patch relies on and that the patch is in effect."""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Iterator
from typing import Any

import moto
import pytest

from spotmap import moto_callbacks, moto_patches
from spotmap.moto_patches import MotoSeamError


@pytest.fixture(scope="module")
def patched() -> Iterator[None]:
    """Every patch applied, moto's execute setting left as found."""
    previous = moto_patches.configure()
    yield
    moto_patches.configure(previous)


def _current(module: str, attribute: str) -> Any:
    return getattr(importlib.import_module(module), attribute)


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_installed_moto_is_in_the_tested_range() -> None:
    # GIVEN the installed moto WHEN checked THEN it passes (the module imported at all)
    moto_patches.check_version()


@pytest.mark.parametrize("version", ["5.3.0", "5.2.4", "6.0.0", "4.2.14"])
def test_a_moto_outside_the_range_is_refused(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    # GIVEN moto reports a version outside the tested range
    monkeypatch.setattr(moto, "__version__", version)

    # WHEN the seam checks it THEN it refuses, naming the installed version and the range, in one line
    with pytest.raises(MotoSeamError) as refused:
        moto_patches.check_version()
    message = str(refused.value)
    assert f"moto {version} is installed" in message
    assert "moto>=5.2.5,<5.3" in message
    assert "\n" not in message


@pytest.mark.parametrize("version", ["5.2.5", "5.2.9", "5.2.10.dev3"])
def test_a_moto_inside_the_range_is_accepted(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    # GIVEN moto reports a version inside the range WHEN checked THEN nothing is raised
    monkeypatch.setattr(moto, "__version__", version)
    moto_patches.check_version()


def test_a_missing_attribute_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a moto whose distributed Map worker lost the methods the ResultWriter patch wraps
    module, name = moto_patches.CHILD_WORKER
    monkeypatch.setattr(importlib.import_module(module), name, type(name, (), {}))

    # WHEN the patch is applied (not cached: its undecorated function)
    with pytest.raises(MotoSeamError) as refused:
        moto_patches.install_result_writer.__wrapped__()

    # THEN the error names the attribute and the tested range, in one line
    message = str(refused.value)
    assert f"{module}.DistributedItemProcessorWorker._eval_input" in message
    assert "moto>=5.2.5,<5.3" in message
    assert "\n" not in message


def test_a_missing_module_attribute_is_named() -> None:
    # GIVEN an attribute moto does not have WHEN looked up THEN the error names it
    with pytest.raises(MotoSeamError, match=r"moto\.backends\.no_such_function"):
        moto_patches._target("moto.backends", "no_such_function")


def test_execute_state_machine_setting(patched: None) -> None:
    # GIVEN moto's user config WHEN configured THEN it is a bool setting we turn on, and back
    config = moto_patches._target(*moto_patches.EXECUTE_CONFIG)
    assert isinstance(config["stepfunctions"]["execute_state_machine"], bool)
    previous = moto_patches.configure(True)
    assert config["stepfunctions"]["execute_state_machine"] is True
    moto_patches.configure(False)
    assert config["stepfunctions"]["execute_state_machine"] is False
    moto_patches.configure(previous)


@pytest.mark.parametrize("target", moto_patches.CLIENT_FACTORIES, ids=lambda target: target[0])
def test_interpreter_client_factory(patched: None, target: tuple[str, str]) -> None:
    # GIVEN moto's client factory, as each of its callers holds it
    original = moto_patches.ORIGINALS[".".join(target)]

    # THEN moto's own takes (region, service, state_credentials), as our replacement does
    assert _parameters(original)[:3] == ["region", "service", "state_credentials"]
    # AND after configure every caller holds the one caching factory
    current = _current(*target)
    assert current.__module__ == "spotmap.moto_patches"
    assert current is _current(*moto_patches.CLIENT_FACTORIES[0])


@pytest.mark.parametrize("target", moto_patches.PARSERS, ids=lambda target: target[0])
def test_jsonpath_parsers_are_cached(patched: None, target: tuple[str, str]) -> None:
    # GIVEN moto's JSONPath parse function: a callable of a path, returning what has .find
    original = moto_patches.ORIGINALS[".".join(target)]
    assert hasattr(original("$.a"), "find")

    # THEN after configure it is a cached parser: the same path parses once
    current = _current(*target)
    assert current("$.spotmap.cached") is current("$.spotmap.cached")
    assert current.cache_info().maxsize == 4096


def test_module_list_is_computed_once(patched: None) -> None:
    # GIVEN moto's list of its modules: a callable returning module names
    original = moto_patches.ORIGINALS[".".join(moto_patches.MODULE_LIST)]
    names = list(original())
    assert names and all(isinstance(name, str) for name in names)

    # THEN after configure the same names are answered without listing the package again
    current = _current(*moto_patches.MODULE_LIST)
    assert current.__module__ == "spotmap.moto_patches"
    assert list(current()) == names


@pytest.mark.parametrize("target", moto_patches.JSON_COPIERS, ids=lambda target: target[0])
def test_interpreter_modules_copy_as_json(patched: None, target: tuple[str, str]) -> None:
    # GIVEN a module of the interpreter that copied JSON values with the `copy` module
    assert moto_patches.ORIGINALS[".".join(target)] is copy

    # THEN after configure it copies with the JSON-aware deepcopy, which copies as copy.deepcopy does
    current = _current(*target)
    assert current is moto_patches.JSON_COPY
    value = {"a": [1, 2.5, {"b": None, "c": True}], "d": "e"}
    copied = current.deepcopy(value)
    assert copied == copy.deepcopy(value)
    assert copied["a"] is not value["a"]


RESULT_WRITER_SHAPES = {
    "_eval_body": ["self", "env"],
    "_eval_input": ["self", "env_frame"],
    "_eval_job": ["self", "env", "job"],
    "_handle_put_object": ["env", "resource_runtime_part", "state_credentials"],
}


@pytest.mark.parametrize(
    ("owner", "attribute"), moto_patches.METHODS, ids=[attribute for _, attribute in moto_patches.METHODS]
)
def test_result_writer_methods(patched: None, owner: tuple[str, str], attribute: str) -> None:
    # GIVEN the moto method the ResultWriter patch replaces or wraps
    original = moto_patches.ORIGINALS[f"{owner[0]}.{owner[1]}.{attribute}"]

    # THEN moto's own has the parameters the patch calls it with or stands in for
    assert _parameters(original) == RESULT_WRITER_SHAPES[attribute]
    # AND after configure the class holds the patch
    assert getattr(_current(*owner), attribute).__module__ == "spotmap.moto_patches"


def test_every_patched_attribute_is_tested(patched: None) -> None:
    # GIVEN the patches' targets THEN each is one the tests above check (a new patch needs a test)
    tested = {
        moto_patches.EXECUTE_CONFIG,
        moto_patches.MODULE_LIST,
        *moto_patches.CLIENT_FACTORIES,
        *moto_patches.PARSERS,
        *moto_patches.JSON_COPIERS,
        *((owner[0], f"{owner[1]}.{attribute}") for owner, attribute in moto_patches.METHODS),
        *((owner[0], f"{owner[1]}.{attribute}") for owner, attribute in moto_callbacks.METHODS),
        *((owner[0], f"{owner[1]}.{attribute}") for owner, attribute in moto_patches.LISTING_METHODS),
    }
    assert len(tested) == 34
    assert set(moto_patches.ORIGINALS) <= {".".join(target) for target in tested}


def test_a_missing_execute_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a moto whose user config has no Step Functions execute setting
    config = moto_patches._target(*moto_patches.EXECUTE_CONFIG)
    monkeypatch.setitem(config, "stepfunctions", {})

    # WHEN configured THEN the error names the setting, in one line
    with pytest.raises(MotoSeamError) as refused:
        moto_patches.configure()
    assert "default_user_config['stepfunctions']['execute_state_machine']" in str(refused.value)


CALLBACK_SHAPES = {
    "notify": ["self", "callback_id", "outcome"],
    "heartbeat": ["self", "callback_id"],
    "interrupt_all": ["self"],
    "setup_heartbeat_endpoint": ["self", "heartbeat_seconds"],
}


@pytest.mark.parametrize(
    ("owner", "attribute"),
    moto_callbacks.METHODS,
    ids=[f"{owner[1]}.{attribute}" for owner, attribute in moto_callbacks.METHODS],
)
def test_callback_methods(patched: None, owner: tuple[str, str], attribute: str) -> None:
    # GIVEN the moto method the callback patch replaces or wraps
    original = moto_patches.ORIGINALS[f"{owner[0]}.{owner[1]}.{attribute}"]
    # THEN moto's own has the parameters the patch relies on (an error class: it is an AWSError, whose
    # constructor the patch calls), and the class now holds the patch
    if attribute == "__init__":
        from moto.core.exceptions import AWSError

        assert issubclass(_current(*owner), AWSError) and callable(original)
    else:
        assert _parameters(original) == CALLBACK_SHAPES[attribute]
    assert getattr(_current(*owner), attribute).__module__ == "spotmap.moto_callbacks"


def test_a_task_token_is_closed_once_its_outcome_is_in(patched: None) -> None:
    from moto.stepfunctions.parser.api import TaskTimedOut
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeSuccess,
        CallbackPoolManager,
    )

    # GIVEN a waiting task's token
    pool = CallbackPoolManager(activity_store={})
    endpoint = pool.generate()
    token = endpoint.callback_id
    # WHEN a heartbeat comes before the heartbeat clock runs THEN it is accepted (the task is open)
    assert pool.heartbeat(token) is True
    # WHEN the outcome comes THEN it is taken once
    assert pool.notify(token, CallbackOutcomeSuccess(token, '{"n": 1}')) is True
    # AND a second outcome or a heartbeat is TaskTimedOut, as AWS answers for a closed task
    with pytest.raises(TaskTimedOut) as second:
        pool.notify(token, CallbackOutcomeSuccess(token, '{"n": 2}'))
    assert endpoint.get_outcome().output == '{"n": 1}'
    assert second.value.error_type == "TaskTimedOut" and second.value.code == 400
    with pytest.raises(TaskTimedOut):
        pool.heartbeat(token)
    # AND an outcome that came before the heartbeat clock was set up still ends the wait at once
    assert endpoint.setup_heartbeat_endpoint(heartbeat_seconds=60).clear_and_wait() is True


def test_a_token_whose_wait_ended_without_an_outcome_is_closed(patched: None) -> None:
    from moto.stepfunctions.parser.api import TaskTimedOut
    from moto.stepfunctions.parser.asl.eval.callback.callback import (
        CallbackOutcomeSuccess,
        CallbackPoolManager,
    )

    # GIVEN a token whose Task state stopped waiting (a heartbeat timeout: the interpreter interrupts it)
    pool = CallbackPoolManager(activity_store={})
    endpoint = pool.generate()
    endpoint.interrupt_all()
    # WHEN the late event's SendTaskSuccess comes THEN it is refused
    with pytest.raises(TaskTimedOut):
        pool.notify(endpoint.callback_id, CallbackOutcomeSuccess(endpoint.callback_id, "{}"))


# ---------------------------------------------------------------- S3 listing from a sorted key index
LIST_V2 = "moto.s3.models.S3Backend.list_objects_v2"
LISTING_SHAPE = ["self", "bucket", "prefix", "delimiter", "continuation_token", "start_after", "max_keys"]


@pytest.mark.parametrize(
    ("owner", "attribute"),
    moto_patches.LISTING_METHODS,
    ids=[f"{owner[1]}.{attribute}" for owner, attribute in moto_patches.LISTING_METHODS],
)
def test_listing_methods(patched: None, owner: tuple[str, str], attribute: str) -> None:
    # GIVEN the moto method the listing patch replaces or wraps
    original = moto_patches.ORIGINALS[f"{owner[0]}.{owner[1]}.{attribute}"]
    # THEN moto's listing takes the parameters the patch answers for; the key store's writes take the
    # key name first (the index follows it) or are the dict's own
    if attribute == "list_objects_v2":
        assert _parameters(original) == LISTING_SHAPE
    elif attribute in ("__setitem__", "setlist", "pop"):
        assert _parameters(original)[:2] == ["self", "key"]
    else:
        assert original is getattr(dict, attribute)
    # AND after configure the class holds the patch
    assert getattr(_current(*owner), attribute).__module__ == "spotmap.moto_patches"


def _entries(page: Any) -> list[tuple[str, str]]:
    return [("prefix", entry) if isinstance(entry, str) else ("key", entry.name) for entry in page]


def _walk(
    listing: Any,
    backend: Any,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    after: str | None,
    size: int,
) -> list[tuple[list[tuple[str, str]], bool, str | None]]:
    """Every page of a listing, following its continuation tokens (at most 200 pages)."""
    pages = []
    token = None
    for _ in range(200):
        page, truncated, token = listing(backend, bucket, prefix, delimiter, token, after, size)
        pages.append((_entries(page), truncated, token))
        if not truncated:
            break
    return pages


MIXED_KEYS = [
    "a",
    "a-b",
    "a.txt",
    "a/",
    "a/b",
    "a/b/c",
    "a/b/d",
    "a/c",
    "a/c/",
    "a//x",
    "ab/c",
    "b",
    "b/1",
    "b/2/3",
    "data/p8/000001.csv",
    "data/p8/000002.csv",
    "data/p8/sub/000003.csv",
    "jobs/j1/results/0",
    "jobs/j1/results/1",
    "jobs/j2/items.json",
    "z\u00e9/1",
    "z\u00e9\u00e9",
    "\u4e2d/\u6587",
    "~tilde",
]


def test_the_patched_listing_answers_exactly_as_moto_does(patched: None, s3: Any) -> None:
    from moto.s3.models import s3_backends

    from tests.unit.conftest import ACCOUNT

    # GIVEN a versioned bucket of mixed keys: nested folders, empty segments, non-ASCII names, a key
    # overwritten (two versions), deleted keys (their names still hold delete markers) and one deleted
    # for good (a version deleted by id)
    s3.create_bucket(Bucket="mixed")
    s3.put_bucket_versioning(Bucket="mixed", VersioningConfiguration={"Status": "Enabled"})
    for key in MIXED_KEYS:
        s3.put_object(Bucket="mixed", Key=key, Body=key.encode())
    s3.put_object(Bucket="mixed", Key="a/b", Body=b"second version")
    for deleted in ("a/c", "b/1", "jobs/j2/items.json"):
        s3.delete_object(Bucket="mixed", Key=deleted)
    version = s3.put_object(Bucket="mixed", Key="gone/for/good", Body=b"x")["VersionId"]
    s3.delete_object(Bucket="mixed", Key="gone/for/good", VersionId=version)
    backend = s3_backends[ACCOUNT]["aws"]
    bucket = backend.get_bucket("mixed")
    moto_list = moto_patches.ORIGINALS[LIST_V2]

    # WHEN every combination of prefix, delimiter, StartAfter and MaxKeys is listed page by page, by
    # the patch and by moto's own
    for prefix in (None, "", "a", "a/", "a/b", "b/", "data/p8/", "jobs/", "z", "zz", "\u4e2d"):
        for delimiter in (None, "/", "-", "b", "p8/"):
            for after in (None, "a/", "a/b", "a/b/zzz", "b", "data/p8/000001.csv", "~"):
                for size in (0, 1, 2, 3, 1000):
                    # THEN each page, its truncation and its token are moto's
                    ours = _walk(
                        backend.__class__.list_objects_v2, backend, bucket, prefix, delimiter, after, size
                    )
                    theirs = _walk(moto_list, backend, bucket, prefix, delimiter, after, size)
                    assert ours == theirs, (prefix, delimiter, after, size)
    # AND a continuation token moto never gave is answered as moto answers it
    with pytest.raises(TypeError):
        backend.list_objects_v2(bucket, None, None, "no-such-token", None, 5)


def test_the_index_follows_writes_and_deletes(patched: None, s3: Any) -> None:
    # GIVEN a bucket listed once (its index built)
    s3.create_bucket(Bucket="moving")
    for key in ("b", "d"):
        s3.put_object(Bucket="moving", Key=key, Body=b"")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="moving")["Contents"]] == ["b", "d"]

    # WHEN keys are added, overwritten and deleted (one by one and in a batch)
    for key in ("a", "c", "e", "b"):
        s3.put_object(Bucket="moving", Key=key, Body=b"again")
    s3.delete_object(Bucket="moving", Key="d")
    s3.delete_objects(Bucket="moving", Delete={"Objects": [{"Key": "a"}, {"Key": "e"}]})
    s3.copy_object(Bucket="moving", Key="f", CopySource={"Bucket": "moving", "Key": "c"})

    # THEN the next listing shows exactly the keys the bucket holds, in order
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket="moving")["Contents"]]
    assert listed == ["b", "c", "f"]


def test_a_page_examines_the_page_not_the_bucket(patched: None, s3: Any) -> None:
    from moto.s3.models import s3_backends

    from tests.unit.conftest import ACCOUNT

    # GIVEN a bucket of 5,000 keys in 50 folders of 100, put straight into moto's backend
    s3.create_bucket(Bucket="big")
    backend = s3_backends[ACCOUNT]["aws"]
    for number in range(5_000):
        backend.put_object("big", f"data/{number // 100:02d}/{number:05d}.csv", b"n\n1\n")
    s3.list_objects_v2(Bucket="big", MaxKeys=1)  # the index is built by a first listing
    # AND the bucket's key store refuses to be walked whole from now on (moto's own listing walks it:
    # `bucket.keys.items()` copies the store with `_self_iterable` for every page)
    store = backend.get_bucket("big").keys

    def walked_whole() -> None:
        raise AssertionError("a listing page walked every key of the bucket")

    store._self_iterable = walked_whole
    try:
        # WHEN a page of 10 is read from the middle of the bucket, then the folders under data/
        before = moto_patches.LISTING.names_examined
        page = s3.list_objects_v2(Bucket="big", Prefix="data/3", StartAfter="data/31/03150.csv", MaxKeys=10)
        middle = moto_patches.LISTING.names_examined - before
        before = moto_patches.LISTING.names_examined
        folders = s3.list_objects_v2(Bucket="big", Prefix="data/", Delimiter="/")
        per_folder = moto_patches.LISTING.names_examined - before
    finally:
        del store._self_iterable  # moto's reset walks every bucket's store

    # THEN the page holds the next ten keys, having looked at no more names than it returns (plus the
    # one that says more follow)
    assert [o["Key"] for o in page["Contents"]] == [f"data/31/{n:05d}.csv" for n in range(3151, 3161)]
    assert page["IsTruncated"] is True
    assert middle <= 11
    # AND the 50 common prefixes cost one name each, not the 100 keys under each
    assert len(folders["CommonPrefixes"]) == 50 and "Contents" not in folders
    assert per_folder <= 50
