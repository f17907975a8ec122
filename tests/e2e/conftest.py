"""End-to-end helpers: run `spotmap local run` as a user would, and profile CSVs independently."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spotmap.cli import main as spotmap_main


@dataclass
class LocalRun:
    exit_code: int
    summaries: list[dict[str, Any]]
    out_dir: Path


@pytest.fixture
def local_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Call `spotmap local run ... --json` and return its exit code, summaries and output directory."""

    def run(*files: Path, params: dict[str, Any] | None = None, extra: list[str] | None = None) -> LocalRun:
        out_dir = tmp_path / "out"
        argv = ["local", "run", "--json", "--out", str(out_dir), "--state-dir", str(tmp_path / "state")]
        for name, value in (params or {}).items():
            argv += ["--param", f"{name}={value}"]
        argv += extra or []
        argv += [str(path) for path in files]
        capsys.readouterr()
        code = spotmap_main(argv)
        lines = capsys.readouterr().out.strip().splitlines()
        summaries = json.loads(lines[-1]) if lines else []
        return LocalRun(code, summaries, out_dir)

    return run


def write_csv(path: Path, rows: int, seed: int = 1) -> Path:
    """A CSV with numbers, text, empty cells, quoted commas and quoted newlines."""
    rng = random.Random(seed)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "city", "price", "qty", "comment", "mixed"])
        for row in range(rows):
            comment = rng.choice(["", "plain", "with, comma", "two\nlines", 'a "quote"', "Ünïcödé"])
            price = "" if rng.random() < 0.02 else f"{rng.uniform(-100, 1000):.3f}"
            mixed = rng.choice(["1", "2.5", "", "n/a"]) if row % 997 == 0 else str(row)
            writer.writerow(
                [
                    row,
                    rng.choice(["Paris", "Zürich", "Oslo", "Lima"]),
                    price,
                    rng.randint(0, 50),
                    comment,
                    mixed,
                ]
            )
    return path


def profile_csv(data: bytes) -> dict[str, Any]:
    """The csv-profile contract computed over the whole file at once, independently of the worker."""
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return {"rows": 0, "columns": {}}
    cells: dict[str, list[str]] = {name: [] for name in header}
    rows = 0
    for record in reader:
        rows += 1
        for name, value in zip(header, record, strict=False):
            cells[name].append(value)
    columns: dict[str, Any] = {}
    for name, values in cells.items():
        present = [v for v in values if v != ""]
        nulls = len(values) - len(present)

        def number(v: str) -> float | None:
            try:
                f = float(v)
            except ValueError:
                return None
            return f if math.isfinite(f) else None

        numbers = [number(v) for v in present]
        if all(n is not None for n in numbers):
            nums = [n for n in numbers if n is not None]
            columns[name] = {
                "type": "number",
                "count": len(nums),
                "nulls": nulls,
                "min": min(nums) if nums else None,
                "max": max(nums) if nums else None,
                "sum": math.fsum(nums),
                "mean": math.fsum(nums) / len(nums) if nums else None,
            }
        else:
            columns[name] = {
                "type": "string",
                "count": len(present),
                "nulls": nulls,
                "min": min(present),
                "max": max(present),
            }
    return {"rows": rows, "columns": columns}


def assert_profile_equal(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual["rows"] == expected["rows"]
    assert set(actual["columns"]) == set(expected["columns"])
    for name, want in expected["columns"].items():
        got = actual["columns"][name]
        for field, value in want.items():
            if isinstance(value, float):
                assert got[field] == pytest.approx(value, rel=1e-9, abs=1e-6), (name, field)
            else:
                assert got[field] == value, (name, field)


WAIT_SECONDS = 60


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """condition()'s first truthy value, polled until `timeout`; an AssertionError naming `what` after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout} s for {what}")


def docker_missing() -> str | None:
    """Why Docker cannot run containers here, or None when it can."""
    if shutil.which("docker") is None:
        return "no docker command"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 60 s"
    if info.returncode != 0:
        return f"the Docker daemon is not reachable: {info.stderr.strip()[-300:]}"
    return None


def require_docker() -> None:
    """Skip without Docker, but fail where CI requires it (SPOTMAP_REQUIRE_DOCKER=1, as `make test` sets)."""
    missing = docker_missing()
    if missing:
        if os.environ.get("SPOTMAP_REQUIRE_DOCKER") == "1":
            pytest.fail(f"SPOTMAP_REQUIRE_DOCKER=1 but Docker cannot run: {missing}")
        pytest.skip(f"needs Docker: {missing}")
