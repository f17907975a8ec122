"""events/env.json (`sam local invoke --env-vars events/env.json`): one entry per function of the
template, with exactly the variables the template gives it, resolved to the local cloud's values, plus
what points the function at `spotmap local serve --port 4566` from inside SAM's Docker container."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from spotmap.principals import ADMIN_ACCESS_KEY_ID, SECRET_ACCESS_KEY, credentials_for
from spotmap.template import Stack, load_stack
from tests.conftest import EVENTS, ROOT

# Not template variables: where the local cloud is, seen from the Lambda container, and its fake keys.
LOCAL_CONNECTION = {
    "AWS_ENDPOINT_URL": "http://host.docker.internal:4566",
    "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
}


@pytest.fixture(scope="module")
def stack() -> Stack:
    return load_stack(Path(ROOT))


@pytest.fixture(scope="module")
def env_json() -> dict[str, dict[str, Any]]:
    return json.loads((EVENTS / "env.json").read_text(encoding="utf-8"))


def test_env_json_has_one_entry_per_function_of_the_template(
    stack: Stack, env_json: dict[str, dict[str, Any]]
) -> None:
    # GIVEN the functions of template.yaml and the entries of events/env.json
    # THEN they are the same logical ids: no function is missing, none is left over from a rename
    assert set(env_json) == set(stack.functions)


def test_each_function_gets_exactly_the_template_variables_and_the_local_connection(
    stack: Stack, env_json: dict[str, dict[str, Any]]
) -> None:
    for logical_id, spec in stack.functions.items():
        # GIVEN a function's variables in the template and in env.json
        given = env_json[logical_id]
        # THEN env.json names every template variable and nothing else but the local connection
        assert set(given) - set(LOCAL_CONNECTION) == set(spec.environment) - set(LOCAL_CONNECTION), logical_id
        assert {name: given.get(name) for name in LOCAL_CONNECTION} == LOCAL_CONNECTION, logical_id
        # AND every value is a string (SAM passes them to the container as they are)
        assert all(isinstance(value, str) for value in given.values()), logical_id


def test_values_are_the_local_clouds(stack: Stack, env_json: dict[str, dict[str, Any]]) -> None:
    # GIVEN the local cloud's resolution of the template (defaults, then samconfig.toml's `local`)
    expected = {
        logical_id: {**spec.environment, **LOCAL_CONNECTION} for logical_id, spec in stack.functions.items()
    }
    # THEN env.json holds the same bucket, ARNs, names and parameters (regenerate it if this fails)
    assert env_json == expected, "events/env.json should be:\n" + json.dumps(expected, indent=2)


def test_sam_local_invoke_would_give_each_function_the_local_endpoint(
    stack: Stack, env_json: dict[str, dict[str, Any]]
) -> None:
    env_vars = pytest.importorskip("samcli.local.lambdafn.env_vars")
    for logical_id, spec in stack.functions.items():
        # GIVEN the environment SAM CLI builds for the function from the template and env.json
        resolved = env_vars.EnvironmentVariables(
            function_name=logical_id,
            function_memory=spec.memory,
            function_timeout=spec.timeout,
            function_handler=spec.handler,
            variables=dict(spec.environment),
            shell_env_values={},
            override_values=env_json[logical_id],
        ).resolve()
        # THEN the function would call the local cloud, not AWS
        assert resolved.get("AWS_ENDPOINT_URL") == LOCAL_CONNECTION["AWS_ENDPOINT_URL"], logical_id


def test_sam_local_invoke_gives_the_container_the_shells_credentials_not_env_jsons(
    stack: Stack, env_json: dict[str, dict[str, Any]]
) -> None:
    env_vars = pytest.importorskip("samcli.local.lambdafn.env_vars")
    spec = stack.functions["StartJobFunction"]
    # GIVEN StartJob's role's local credentials in the shell (what SAM reads with boto3's session)
    role = credentials_for("StartJobFunctionRole")
    # WHEN SAM builds the function's environment with env.json's entry as overrides
    resolved = env_vars.EnvironmentVariables(
        function_name="StartJobFunction",
        function_memory=spec.memory,
        function_timeout=spec.timeout,
        function_handler=spec.handler,
        variables=dict(spec.environment),
        shell_env_values={},
        override_values=env_json["StartJobFunction"],
        aws_creds={
            "key": role.access_key_id,
            "secret": role.secret_access_key,
            "sessiontoken": role.session_token,
        },
    ).resolve()
    # THEN the container calls as the role: env.json's credentials are not template variables, and SAM
    # overrides only those (the README's sam local invoke commands export the role's credentials)
    assert resolved["AWS_ACCESS_KEY_ID"] == role.access_key_id
    assert resolved["AWS_SESSION_TOKEN"] == role.session_token
