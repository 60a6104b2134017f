"""What the chart's workloads will run: their command lines and their FRAUDSTREAM_* environment,
read from rendered objects and checked against the package itself (its settings classes and its
command line), so that a renamed option or a misspelt variable fails here, not in a pod.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import typer
from pydantic_settings import BaseSettings

from fraudstream import settings as settings_module

from .dockerfile import Dockerfile
from .toolchain import REPO

Obj = dict[str, Any]
PREFIX = "FRAUDSTREAM_"
SCORER_MAIN = "local:///opt/fraudstream/score_stream.py"
"""The scorer's Spark main file (``jobs/score_stream.py``): ``fraudstream score`` with the app's
arguments."""


@dataclass
class Workload:
    """One container of a rendered object: where it is, the argv it runs, its environment.

    ``env`` maps each variable the container sets to its value, or to None when it comes from a
    Secret (its value is unknown offline); ``config_maps`` names the ConfigMaps it loads whole.
    """

    where: str
    argv: list[str] | None
    env: dict[str, str | None] = field(default_factory=dict)
    config_maps: list[str] = field(default_factory=list)


def _env_of(part: Obj) -> tuple[dict[str, str | None], list[str]]:
    env = {e["name"]: e.get("value") for e in part.get("env") or []}
    maps = [s["configMapRef"]["name"] for s in part.get("envFrom") or [] if "configMapRef" in s]
    return env, maps


def _entrypoints() -> dict[str, list[str] | None]:
    """Image repository (``fraudstream/<target>``) -> the ENTRYPOINT of the target it is built
    from, as skaffold builds it (skaffold.yaml's artifacts)."""
    import yaml

    configs = list(yaml.safe_load_all((REPO / "skaffold.yaml").read_text()))
    (platform,) = [c for c in configs if c["metadata"]["name"] == "platform"]
    found = {}
    for artifact in platform["build"]["artifacts"]:
        docker = artifact["docker"]
        stages = Dockerfile.parse(REPO / docker["dockerfile"]).entrypoints()
        target = docker.get("target") or list(stages)[-1]
        found[artifact["image"]] = stages[target]
    return found


def _repository(image: str) -> str:
    """``registry/name`` of an image reference, without its tag or digest."""
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    return name


def _image_entrypoint(image: str, entrypoints: dict[str, list[str] | None]) -> list[str] | None:
    """The ENTRYPOINT of one of the images skaffold builds (also under another registry)."""
    repository = _repository(image)
    for built, entry in entrypoints.items():
        if repository == built or repository.endswith("/" + built):
            return entry
    return None


def workloads(objects: list[Obj]) -> Iterator[Workload]:
    """Every container of Deployments, StatefulSets, Jobs and Pods, and the scorer's driver and
    executors, with the argv it runs (None when it cannot be told offline)."""
    entrypoints = _entrypoints()
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "SparkApplication":
            spec = obj["spec"]
            argv = None
            if spec.get("mainApplicationFile") == SCORER_MAIN:
                argv = ["fraudstream", "score", *spec.get("arguments", [])]
            for role in ("driver", "executor"):
                env, maps = _env_of(spec[role])
                yield Workload(
                    f"{kind}/{name} {role}", argv if role == "driver" else None, env, maps
                )
            continue
        if kind == "Pod":
            pod = obj["spec"]
        elif kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            pod = obj["spec"]["template"]["spec"]
        else:
            continue
        for container in [*(pod.get("initContainers") or []), *pod["containers"]]:
            command = container.get("command") or _image_entrypoint(container["image"], entrypoints)
            argv = [*command, *(container.get("args") or [])] if command else None
            env, maps = _env_of(container)
            yield Workload(f"{kind}/{name} {container['name']}", argv, env, maps)


def config_map_data(objects: list[Obj]) -> dict[str, dict[str, str]]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"}


def environment(workload: Workload, maps: dict[str, dict[str, str]]) -> dict[str, str | None]:
    """The container's whole environment: its ConfigMaps, then its own variables on top."""
    env: dict[str, str | None] = {}
    for name in workload.config_maps:
        env.update(maps[name])
    env.update(workload.env)
    return env


def settings_classes() -> list[type[BaseSettings]]:
    """Every settings class of fraudstream.settings (the only module that reads FRAUDSTREAM_*)."""
    return [
        cls
        for _, cls in inspect.getmembers(settings_module, inspect.isclass)
        if issubclass(cls, BaseSettings) and cls.__module__ == settings_module.__name__
    ]


def settings_variables() -> set[str]:
    """FRAUDSTREAM_* names the settings classes read: env prefix + field name, upper case."""
    names = set()
    for cls in settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        names |= {f"{prefix}{name}".upper() for name in cls.model_fields}
    return names


def unknown_variables(names: set[str]) -> list[str]:
    """The FRAUDSTREAM_* names among ``names`` that no settings field reads (case-insensitive)."""
    known = settings_variables()
    return sorted(n for n in names if n.upper().startswith(PREFIX) and n.upper() not in known)


def command_problem(argv: list[str]) -> str | None:
    """Parse ``fraudstream <args>`` with the package's own Typer/Click parser, without running
    anything; return the parser's complaint (unknown command or option, bad value, missing
    option), or None when the command line is accepted."""
    from fraudstream.cli import app

    if not argv or argv[0] != "fraudstream":
        return f"not a fraudstream command: {argv}"
    # Typer carries its own copy of Click (typer._click): its exceptions are the parser's errors.
    from typer._click.exceptions import ClickException

    command: Any = typer.main.get_command(app)
    try:
        ctx = command.make_context("fraudstream", list(argv[1:]))
        while hasattr(ctx.command, "resolve_command"):  # a group: descend to the subcommand
            rest = [*ctx._protected_args, *ctx.args]
            if not rest:
                return "no subcommand"
            name, sub, sub_args = ctx.command.resolve_command(ctx, rest)
            ctx = sub.make_context(name, sub_args, parent=ctx)
    except typer.Exit:
        return "the command line only asks for help"
    except ClickException as exc:
        return str(exc.format_message())
    return None
