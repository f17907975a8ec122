"""One set of version bounds: what the Lambda artifacts (functions/requirements.txt) and the worker
image (worker/requirements.txt) install is what pyproject.toml installs for the tests, and moto's pin
is the range spotmap/moto_patches.py checks."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from spotmap import moto_patches
from tests.conftest import ROOT


def _pyproject_dependencies() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {requirement.name: requirement for requirement in map(Requirement, project["dependencies"])}


def _requirements(path: Path) -> list[Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [Requirement(line) for line in lines if line]


@pytest.mark.parametrize("path", ["functions/requirements.txt", "worker/requirements.txt"])
def test_requirements_files_have_pyprojects_bounds(path: str) -> None:
    # GIVEN the packages a deployed part installs, and those pyproject.toml installs
    deployed = _requirements(ROOT / path)
    tested = _pyproject_dependencies()

    # THEN each is in pyproject.toml with the same bounds and extras
    assert deployed
    for requirement in deployed:
        assert requirement.name in tested, f"{path}: {requirement.name} is not in pyproject.toml"
        assert requirement.specifier == tested[requirement.name].specifier, f"{path}: {requirement}"
        assert requirement.extras == tested[requirement.name].extras, f"{path}: {requirement}"
        # AND bounded above: a new major version is a decision, not an accident of a build
        assert any(spec.operator == "<" for spec in requirement.specifier), f"{path}: {requirement}"


def test_moto_pin_is_the_range_the_seam_checks() -> None:
    # GIVEN moto's pin in pyproject.toml
    pin = _pyproject_dependencies()["moto"].specifier

    # THEN it is MOTO_RANGE, and the seam's check accepts and refuses as the pin does
    assert pin == SpecifierSet(moto_patches.MOTO_RANGE)
    lowest = ".".join(map(str, moto_patches.MOTO_MIN))
    below = ".".join(map(str, moto_patches.MOTO_BELOW))
    assert lowest in pin
    moto_patches.check_version(lowest)
    assert below not in pin
    with pytest.raises(moto_patches.MotoSeamError):
        moto_patches.check_version(below)
