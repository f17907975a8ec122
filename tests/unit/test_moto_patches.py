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
    }
    assert len(tested) == 25
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
