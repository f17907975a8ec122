"""Summarize imports no processor module (issue 5): partial results merge with the `jobcore.merge`
algebra alone, so the functions that read results never load `worker` code, and the Lambda artifact
(the functions/ tree) holds no `worker` or `spotmap` package."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from spotmap.template import load_stack
from tests.conftest import ROOT

FUNCTIONS = ROOT / "functions"
FORBIDDEN = ("worker", "spotmap")
# The functions that read results and merge them (or decide from them), never with processor code.
RESULT_READERS = ("summarize.app", "reconcile.app", "evaluate_job.app")

PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def _is_forbidden(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in FORBIDDEN or ".processors" in module or top == "processors"


def test_result_readers_import_no_worker_or_processor_module(tmp_path: Path) -> None:
    # GIVEN a fresh interpreter whose path has functions/ (the Lambda code root) and also the project
    # root, so an import of `worker` would succeed and show up instead of merely failing
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": os.pathsep.join([str(FUNCTIONS), str(ROOT)]),
        "POWERTOOLS_SERVICE_NAME": "import-probe",
        "POWERTOOLS_METRICS_NAMESPACE": "spotmap-test",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }

    # WHEN Summarize, Reconcile and EvaluateJob are imported as Lambda imports them
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *RESULT_READERS],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])

    # THEN they and the merge algebra are loaded, and not one worker, processor or spotmap module
    assert set(RESULT_READERS) <= set(modules)
    assert "jobcore.merge" in modules and "jobcore.summary" in modules
    assert [name for name in modules if _is_forbidden(name)] == []


def _python_files() -> list[Path]:
    return sorted(path for path in FUNCTIONS.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_function_source_imports_worker_or_spotmap() -> None:
    # GIVEN every Python file of the functions/ tree
    files = _python_files()
    assert files
    pattern = re.compile(r"^\s*(?:import|from)\s+(?:worker|spotmap)\b", re.MULTILINE)
    for path in files:
        text = path.read_text(encoding="utf-8")
        # THEN no line imports worker or spotmap (text check) ...
        assert not pattern.search(text), f"{path.relative_to(ROOT)} imports worker/spotmap"
        # ... and neither does any import statement, wherever it is (syntax check)
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            bad = [name for name in names if name.split(".", 1)[0] in FORBIDDEN]
            assert not bad, f"{path.relative_to(ROOT)}:{node.lineno} imports {bad}"


def test_the_lambda_artifact_tree_has_no_worker_or_spotmap_package() -> None:
    # GIVEN the code root every function is built from
    code_dirs = {spec.code_dir.resolve() for spec in load_stack(Path(ROOT)).functions.values()}
    assert code_dirs == {FUNCTIONS.resolve()}, code_dirs

    # THEN it holds no worker or spotmap package (nor a stray module of that name) at any depth
    for name in FORBIDDEN:
        found = [
            str(path.relative_to(ROOT))
            for path in FUNCTIONS.rglob(f"{name}*")
            if "__pycache__" not in path.parts and path.name in (name, f"{name}.py")
        ]
        assert not found, found
