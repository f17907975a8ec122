"""The README's "Run your own program" tutorial, executed step by step exactly as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from spotmap.cli import main as spotmap_main

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PARTS = ("template.yaml", "samconfig.toml", "statemachine", "functions", "worker")


def tutorial_steps() -> list[tuple[str, str, str]]:
    """(kind, argument, body) for each fenced block between the tutorial markers, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("<!-- tutorial:begin -->", 1)[1].split("<!-- tutorial:end -->", 1)[0]
    steps = []
    for match in re.finditer(r"```(\w+) (file=(\S+)|run)\n(.*?)```\n(.*?)(?=```|\Z)", section, re.S):
        if match.group(3):
            steps.append(("file", match.group(3), match.group(4)))
        else:
            expected = re.search(r"result[`]? is `(\{.*?\})`", match.group(5))
            assert expected, "every run step says what its result is"
            steps.append(("run", match.group(4).strip(), expected.group(1)))
    return steps


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the project, so the tutorial's new processor does not land in the repository."""
    for part in PROJECT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / part)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPOTMAP_ROOT", str(tmp_path))
    return tmp_path


def test_the_tutorial_runs_as_written(project: Path) -> None:
    steps = tutorial_steps()
    assert [kind for kind, _, _ in steps].count("run") == 3
    for kind, argument, body in steps:
        if kind == "file":
            # GIVEN the file the tutorial asks for
            path = project / argument
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body, encoding="utf-8")
            continue
        # WHEN the command is run exactly as written
        words = shlex.split(argument)
        assert words[0] == ".venv/bin/spotmap"
        assert spotmap_main(words[1:]) == 0, argument
        # THEN the job's summary has the result the tutorial promises
        manifest = next(word for word in words if word.endswith(".job.json"))
        summaries = [json.loads(p.read_text()) for p in (project / ".spotmap/out/summaries").glob("*.json")]
        (summary,) = [s for s in summaries if s["input"]["key"] == f"input/{manifest}"]
        assert summary["status"] == "SUCCEEDED"
        assert summary["result"] == json.loads(body)
