"""The chart's workloads against the package they run: every FRAUDSTREAM_* variable is one a
settings class reads and the settings load with it in kubernetes mode, and every `fraudstream`
command line (Deployments, the scorer, helm test pods) parses with the real CLI."""

from __future__ import annotations

import os
from typing import Any

import pytest

from fraudstream import settings as settings_module

from .toolchain import REPO, scenarios
from .workloads import (
    PREFIX,
    Workload,
    command_problem,
    config_map_data,
    environment,
    settings_classes,
    unknown_variables,
    workloads,
)

Obj = dict[str, Any]
SCENARIOS = sorted(scenarios())
PLACEHOLDER = "from_a_secret"  # valid for every secret field, user names included


def rendered_variables(objects: list[Obj]) -> set[str]:
    """FRAUDSTREAM_* names the objects set: ConfigMap keys and container variables."""
    names = {key for data in config_map_data(objects).values() for key in data}
    names |= {name for w in workloads(objects) for name in w.env}
    return {n for n in names if n.upper().startswith(PREFIX)}


def image_variables() -> set[str]:
    """FRAUDSTREAM_* names set by ENV in the images."""
    names = set()
    for path in (REPO / "images").glob("*/Dockerfile"):
        for line in path.read_text().splitlines():
            if line.startswith("ENV "):
                names |= {w.split("=", 1)[0] for w in line.split()[1:] if "=" in w}
    return {n for n in names if n.startswith(PREFIX)}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_fraudstream_variable_is_a_settings_field(
    rendered_objects: dict[str, list[Obj]], scenario: str
) -> None:
    names = rendered_variables(rendered_objects[scenario])
    assert len(names) > 15
    assert unknown_variables(names) == []


def test_the_images_set_only_settings_fields() -> None:
    assert unknown_variables(image_variables()) == []


def test_a_misspelt_variable_is_caught(rendered_objects: dict[str, list[Obj]]) -> None:
    objects = rendered_objects["default"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "data" in o)
    broken = {**config, "data": {**config["data"], "FRAUDSTREAM_REDIS_HOTS": "online-store"}}
    assert unknown_variables(rendered_variables([broken])) == ["FRAUDSTREAM_REDIS_HOTS"]
    # The match ignores case, as pydantic-settings does, but not the prefix.
    assert unknown_variables({"fraudstream_redis_host", "FRAUDSTREAM_REDISHOST"}) == [
        "FRAUDSTREAM_REDISHOST"
    ]


def use_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None]) -> None:
    """Exactly ``env`` as the FRAUDSTREAM_* environment; Secret values become a placeholder."""
    for name in [n for n in os.environ if n.startswith(PREFIX)]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, PLACEHOLDER if value is None else value)


def package_workloads(objects: list[Obj]) -> list[Workload]:
    """Containers that run the package: they load the chart's settings ConfigMap."""
    return [w for w in workloads(objects) if w.config_maps]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_settings_load_in_every_workload(
    rendered_objects: dict[str, list[Obj]], scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each workload's environment (Secret values replaced by a placeholder) builds every settings
    class and passes load_settings() in kubernetes mode, which refuses missing credentials."""
    objects = rendered_objects[scenario]
    maps = config_map_data(objects)
    checked = package_workloads(objects)
    assert len(checked) >= 4
    for workload in checked:
        use_environment(monkeypatch, environment(workload, maps))
        for cls in settings_classes():
            cls()  # a bad value (a port below 1024, a malformed bucket) raises here
        loaded = settings_module.load_settings()
        assert loaded.platform.mode == "kubernetes", workload.where
        # The Redis password reaches the workloads that reach Redis, and no other.
        reaches_redis = workload.where.endswith("-api api") or "-scorer " in workload.where
        assert (loaded.redis.password is not None) == reaches_redis, workload.where


def test_a_workload_without_a_credential_fails_to_load(
    rendered_objects: dict[str, list[Obj]], monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered_objects["default"]
    api = next(w for w in package_workloads(objects) if w.where.endswith("-api api"))
    env = environment(api, config_map_data(objects))
    # The API token is needed only to serve the API: loading works, serving is refused.
    del env["FRAUDSTREAM_API_TOKEN"]
    use_environment(monkeypatch, env)
    loaded = settings_module.load_settings()
    with pytest.raises(settings_module.SettingsError, match="FRAUDSTREAM_API_TOKEN"):
        loaded.api.required_token()
    # Every command needs the database password.
    del env["FRAUDSTREAM_POSTGRES_PASSWORD"]
    use_environment(monkeypatch, env)
    with pytest.raises(settings_module.SettingsError, match="FRAUDSTREAM_POSTGRES_PASSWORD"):
        settings_module.load_settings()


def commands(objects: list[Obj]) -> dict[str, list[str]]:
    """where -> argv, for every container whose command is the fraudstream CLI."""
    return {w.where: w.argv for w in workloads(objects) if w.argv and w.argv[0] == "fraudstream"}


def test_the_commands_found_are_the_chart_workloads(
    rendered_objects: dict[str, list[Obj]],
) -> None:
    found = commands(rendered_objects["default"])
    for part in (
        "-api api",
        "-generator generator",
        "-label-ingest label-ingest",
        "-scorer driver",
    ):
        assert any(where.endswith(part) for where in found), part


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_fraudstream_command_line_parses(
    rendered_objects: dict[str, list[Obj]], scenario: str
) -> None:
    problems = {
        where: problem
        for where, argv in commands(rendered_objects[scenario]).items()
        if (problem := command_problem(argv)) is not None
    }
    assert problems == {}


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["fraudstream", "generate", "streem"], "No such command"),
        (["fraudstream", "generate", "stream"], "Missing option '--rate'"),
        (["fraudstream", "generate", "stream", "--rate", "fast"], "--rate"),
        (["fraudstream", "ingest-labels", "--rat", "1"], "No such option: --rat"),
        (["fraudstream", "serve", "--port"], "--port"),
    ],
)
def test_a_broken_command_line_is_rejected(argv: list[str], complaint: str) -> None:
    problem = command_problem(argv)
    assert problem is not None
    assert complaint in problem
