"""The command processor: any executable, arguments substituted, params in the environment, the exit code
decides, stdout's last JSON object line is the partial result."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from jobcore import layout
from jobcore.models import ResultRecord
from tests.unit.worker_s3 import mocked_s3
from worker import runner
from worker.errors import ConfigError, ProcessingError
from worker.processors.command import substitute
from worker.testing import run_processor

PY = sys.executable
BUCKET = "spotmap-test-command"

# a stand-in for a user's program: echoes what it got, writes an output file, prints JSON lines
TOOL = textwrap.dedent(
    """
    import json, os, sys
    src, out_dir = sys.argv[1], sys.argv[2]
    with open(src, "rb") as f:
        data = f.read()
    with open(os.path.join(out_dir, "seen.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "input": data.decode(), "env": {
            k: v for k, v in os.environ.items() if k.startswith(("SPOTMAP_", "MY_", "TMPDIR"))}}, f)
    print("progress: starting")
    print(json.dumps({"ignored": {"$sum": 1}}))
    print(json.dumps({"bytes": {"$sum": len(data)}, "lines": {"$sum": data.count(b"\\n")}}))
    print("bye")
    """
)


def test_arguments_environment_input_and_last_json_line(tmp_path):
    # GIVEN a shard (header + byte range), job params, item params and an env template
    data = b"h1,h2\na,1\nb,2\nc,3\n"
    params = {
        "command": [
            PY,
            "-c",
            TOOL,
            "{input}",
            "{output_dir}",
            "--index={index}",
            "{seed}",
            "{literal}",
            "; echo not-a-shell",
        ],
        "env": {"MY_LABEL": "item-{index}-{label}"},
        "label": "run7",
    }

    # WHEN the command processor runs item 4 of [10, 18) with header [0, 6)
    partial = run_processor(
        "command",
        data,
        index=4,
        start=10,
        end=18,
        header_end=6,
        params=params,
        item_params={"seed": 42},
        workdir=tmp_path,
    )

    # THEN the tool got the substituted argv (no shell), the header + range as a file, and the params
    seen = json.loads((tmp_path / "output" / "seen.json").read_text())
    assert seen["argv"][2:] == ["--index=4", "42", "{literal}", "; echo not-a-shell"]
    assert seen["argv"][0].endswith("/input/local") and seen["argv"][1] == str(tmp_path / "output")
    assert seen["input"] == "h1,h2\nb,2\nc,3\n"
    env = seen["env"]
    assert env["SPOTMAP_PARAM_SEED"] == "42"
    assert env["SPOTMAP_PARAM_LABEL"] == "run7"
    assert "SPOTMAP_PARAM_COMMAND" not in env
    assert env["MY_LABEL"] == "item-4-run7"
    assert env["SPOTMAP_ITEM_INDEX"] == "4" and env["SPOTMAP_JOB_ID"] == "local"
    assert json.loads(env["SPOTMAP_ITEM"])["start"] == 10
    assert env["TMPDIR"] == str(tmp_path / "tmp")
    # AND the last JSON object line of stdout is the partial result
    assert partial == {"bytes": {"$sum": 14}, "lines": {"$sum": 3}}


def test_no_json_line_gives_no_partial_result():
    # GIVEN a sweep item (no input) and a command that prints only text
    params = {"command": [PY, "-c", "import os; print('seed', os.environ['SPOTMAP_PARAM_SEED'])"]}

    # WHEN it runs
    partial = run_processor("command", None, params=params, item_params={"seed": 3})

    # THEN it succeeds with a null partial result
    assert partial is None


def test_non_zero_exit_fails_naming_the_code_and_the_last_stderr_lines():
    # GIVEN a command that writes to stderr and exits 3
    script = "import sys\nfor i in range(30): print(f'err line {i}', file=sys.stderr)\nsys.exit(3)"

    # WHEN it runs
    with pytest.raises(ProcessingError) as error:
        run_processor("command", None, params={"command": [PY, "-c", script]})

    # THEN the error names the exit code and ends with the last stderr lines
    message = str(error.value)
    assert "exited with code 3" in message
    assert message.endswith("err line 29") and "err line 10" in message and "err line 9\n" not in message


def test_an_item_too_large_for_exec_fails_naming_e2big_and_the_largest_variable():
    # GIVEN an item whose param (200 KB) becomes an environment variable longer than Linux's 128 KiB
    big = "b" * 200_000

    # WHEN the command runs
    with pytest.raises(ProcessingError) as error:
        run_processor("command", None, params={"command": [PY, "-c", "pass"]}, item_params={"x": big})

    # THEN the reason names E2BIG, the OS limit and the variable, not only "unexpected error"
    message = str(error.value)
    assert "E2BIG (Argument list too long)" in message and "128 KiB per argument or variable" in message
    assert "$SPOTMAP_PARAM_X 200,017 bytes" in message and "$SPOTMAP_ITEM 200,125 bytes" in message


def test_a_command_killed_by_a_signal_is_named():
    # GIVEN a command that kills itself
    script = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"

    # WHEN it runs THEN the error names the signal
    with pytest.raises(ProcessingError, match="was killed by SIGKILL"):
        run_processor("command", None, params={"command": [PY, "-c", script]})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "params.command must be a non-empty list"),
        ({"command": "echo hi"}, "params.command must be a non-empty list"),
        ({"command": ["no-such-tool-xyz"]}, "'no-such-tool-xyz' is not an executable"),
        ({"command": [PY, "{input}"]}, "{input} is not available for this item"),
        ({"command": [PY], "input": "file"}, "names no object"),
        ({"command": [PY], "input": "stream"}, 'must be "file" or "none"'),
        ({"command": [PY], "env": ["A=1"]}, "params.env must be an object"),
    ],
)
def test_bad_params_are_configuration_errors(params, message):
    # GIVEN an item without input and bad params WHEN it runs THEN a ConfigError says what is wrong
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        run_processor("command", None, params=params)


def test_substitution_keeps_braces_that_are_not_placeholders():
    # GIVEN arguments with braces that are not placeholders
    values = {"n": 3, "flag": True, "list": [1, 2]}
    unknown: set[str] = set()

    # WHEN substituted THEN only placeholders change; non-strings become JSON; the rest stays
    assert substitute("awk '{print $1}'", values, unknown) == "awk '{print $1}'"
    assert substitute("{n}-{flag}-{list}", values, unknown) == "3-true-[1, 2]"
    assert substitute('{"a": {n}, "b": {{"c": {x}}}}', values, unknown) == '{"a": 3, "b": {{"c": {x}}}}'
    assert unknown == {"x"}


@pytest.fixture
def s3(monkeypatch):
    with mocked_s3(monkeypatch, BUCKET) as client:
        yield client


def put_job(s3, job_id: str, params: dict) -> None:
    s3.put_object(Bucket=BUCKET, Key="input/in.txt", Body=b"one\ntwo\n")
    descriptor = {
        "job_id": job_id,
        "input": {"bucket": BUCKET, "key": "input/in.txt", "size": 8},
        "processor": "command",
        "params": params,
        "item_count": 1,
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    s3.put_object(Bucket=BUCKET, Key=layout.descriptor_key(job_id), Body=json.dumps(descriptor))


def run_task(job_id: str, tmp_path: Path, item: dict) -> int:
    env = {
        "JOB_BUCKET": BUCKET,
        "JOB_ID": job_id,
        "ITEM_INDEX": str(item["index"]),
        "ATTEMPT": "1",
        "SCRATCH_DIR": str(tmp_path),
        "ITEM": json.dumps(item),
    }
    return runner.main(env)


def test_worker_uploads_the_commands_outputs_and_records_its_partial(s3, tmp_path):
    # GIVEN a command job over a whole object
    put_job(s3, "cmd", {"command": [PY, "-c", TOOL, "{input}", "{output_dir}"]})

    # WHEN the worker runs it
    code = run_task("cmd", tmp_path, {"index": 0, "bucket": BUCKET, "key": "input/in.txt"})

    # THEN the output file is uploaded under the attempt prefix and the partial is in the record
    assert code == 0
    record = ResultRecord.model_validate_json(
        s3.get_object(Bucket=BUCKET, Key=layout.result_key("cmd", 0))["Body"].read()
    )
    assert record.partial == {"bytes": {"$sum": 8}, "lines": {"$sum": 2}}
    assert record.outputs == [layout.output_prefix("cmd", 0, 1) + "seen.json"]


@pytest.mark.parametrize(
    ("command", "exit_code", "message"),
    [
        ([PY, "-c", "import sys; sys.exit(5)"], 1, "exited with code 5"),
        (["no-such-tool-xyz"], 2, "is not an executable"),
    ],
)
def test_worker_exit_codes_for_failing_commands(s3, tmp_path, capsys, command, exit_code, message):
    # GIVEN a command that fails or does not exist
    put_job(s3, "cmdfail", {"command": command})

    # WHEN the worker runs it
    code = run_task("cmdfail", tmp_path, {"index": 0, "params": {"x": 1}})

    # THEN the exit code says which, and no result record is written
    assert code == exit_code
    assert message in capsys.readouterr().err
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="jobs/cmdfail/results/")
