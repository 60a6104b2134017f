"""Fixtures for the offline Kubernetes checks: the installed toolchain and the chart rendered
once per scenario (helm runs are the slow part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .toolchain import CHART, ONLINE_STORE, Toolchain, ToolchainMissingError, load_all, scenarios


@pytest.fixture(scope="session")
def chain() -> Toolchain:
    try:
        return Toolchain.installed()
    except ToolchainMissingError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def renders(chain: Toolchain) -> dict[str, str]:
    """The chart rendered for every values scenario: scenario name -> multi-document YAML."""
    return {name: chain.render(CHART, files) for name, files in scenarios().items()}


@pytest.fixture(scope="session")
def rendered_objects(renders: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {name: load_all(text) for name, text in renders.items()}


@pytest.fixture(scope="session")
def store_renders(chain: Toolchain) -> dict[str, str]:
    """The online-store chart rendered for every values scenario, as its release is named."""
    return {
        name: chain.render(ONLINE_STORE, files, release="online-store")
        for name, files in scenarios(ONLINE_STORE).items()
    }


@pytest.fixture(scope="session")
def store_objects(store_renders: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    return {name: load_all(text) for name, text in store_renders.items()}


@pytest.fixture
def scenario_files() -> dict[str, list[Path]]:
    return scenarios()
