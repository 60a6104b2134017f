"""The installed package (the scorer and trainer images install it, not a checkout) holds every
module and data file the source tree has."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def test_every_source_directory_is_an_installed_package() -> None:
    found = set(find_packages(str(SRC)))
    with_modules = {
        ".".join(path.parent.relative_to(SRC).parts)
        for path in (SRC / "fraudstream").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    missing = sorted(with_modules - found)
    assert not missing, f"no __init__.py, so not installed: {missing}"


def test_every_non_python_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["fraudstream"]
    package = SRC / "fraudstream"
    covered = {p for pattern in patterns for p in package.glob(pattern)}
    data = {
        p
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert not sorted(data - covered), f"not shipped: {sorted(data - covered)}"
