"""The README's event files and invoke commands exist: a renamed event or function cannot leave the
README pointing at nothing."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from spotmap.template import load_stack
from tests.conftest import ROOT

README = ROOT / "README.md"
EVENT_PATH = re.compile(r"events/[\w.+-]+\.json")
# `sam local invoke ...` or `spotmap invoke ...` up to the end of its code span or line
INVOKE = re.compile(r"(sam local invoke|spotmap invoke)\s+([^`\n]*)")
OPTIONS_WITH_VALUE = {"-e", "--event", "--env-vars", "--endpoint-url", "-t", "--template"}


def invoke_commands(text: str) -> list[tuple[str, list[str]]]:
    """(command, its arguments) for every invoke command in the text, up to `&&`, `;` or `|`."""
    commands = []
    text = re.sub(r"\\\n\s*", " ", text)  # a shell line continued with a backslash is one command
    for match in INVOKE.finditer(text):
        arguments: list[str] = []
        for token in shlex.split(match.group(2)):
            if token in ("&&", ";", "|", "||"):
                break
            arguments.append(token)
        commands.append((match.group(1), arguments))
    return commands


def logical_id_and_files(arguments: list[str]) -> tuple[str | None, list[str]]:
    """The function's logical id (the first positional argument) and the files its options name."""
    logical_id: str | None = None
    files: list[str] = []
    tokens = iter(arguments)
    for token in tokens:
        if token in OPTIONS_WITH_VALUE:
            value = next(tokens, "")
            if token in ("-e", "--event", "--env-vars") and value != "-":  # '-': the event on stdin
                files.append(value)
        elif not token.startswith("-") and logical_id is None:
            logical_id = token
    return logical_id, files


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


def test_every_event_file_the_readme_mentions_exists(readme: str) -> None:
    # GIVEN every events/<file>.json path in the README
    mentioned = sorted(set(EVENT_PATH.findall(readme)))
    assert "events/env.json" in mentioned
    # THEN each one is a file of the repository
    missing = [path for path in mentioned if not (ROOT / path).is_file()]
    assert not missing, f"README.md names event files that do not exist: {missing}"


def test_readme_invoke_lines_name_existing_files_and_template_functions(readme: str) -> None:
    # GIVEN the template's functions and the README's `sam local invoke` / `spotmap invoke` commands
    functions = set(load_stack(Path(ROOT)).functions)
    commands = invoke_commands(readme)
    assert any(command == "sam local invoke" for command, _ in commands), "no `sam local invoke` line"

    for command, arguments in commands:
        # WHEN the command's logical id and files are read
        logical_id, files = logical_id_and_files(arguments)
        # THEN the logical id is a function of the template and every file exists
        assert logical_id in functions, f"`{command} {' '.join(arguments)}`: no function {logical_id!r}"
        assert files, f"`{command} {' '.join(arguments)}` names no event file"
        for name in files:
            assert (ROOT / name).is_file(), f"`{command} {' '.join(arguments)}`: {name} does not exist"


def test_the_sam_local_invoke_line_uses_env_json_and_says_to_start_the_local_cloud(readme: str) -> None:
    # GIVEN the README's `sam local invoke` commands
    sam_lines = [arguments for command, arguments in invoke_commands(readme) if command == "sam local invoke"]
    # THEN each passes events/env.json, and the README says the local cloud must be serving on 4566
    assert all("events/env.json" in logical_id_and_files(arguments)[1] for arguments in sam_lines)
    assert "spotmap local serve --port 4566" in readme


def test_the_parser_reads_a_continued_command_with_the_event_on_stdin() -> None:
    # GIVEN an invoke continued over lines with a backslash, its event piped in (`-e -`)
    text = (
        "upload | sam local invoke PollTaskFunction -e - \\\n"
        "    --env-vars events/env.json \\\n  --skip-pull-image\n"
    )
    # WHEN it is parsed
    ((command, arguments),) = invoke_commands(text)
    # THEN the continuation is part of the command, and stdin is not taken for a file
    assert arguments[-1] == "--skip-pull-image"
    assert logical_id_and_files(arguments) == ("PollTaskFunction", ["events/env.json"])


def test_the_parser_reads_a_chained_command() -> None:
    # GIVEN a typical line: a build chained with an invoke
    text = "`sam build && sam local invoke PollTaskFunction -e events/poll_task.json --env-vars x.json`"
    # WHEN it is parsed
    ((command, arguments),) = invoke_commands(text)
    # THEN the logical id and both files are found
    assert command == "sam local invoke"
    assert logical_id_and_files(arguments) == ("PollTaskFunction", ["events/poll_task.json", "x.json"])
