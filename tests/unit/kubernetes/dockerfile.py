"""A Dockerfile read as instructions, and the rules every fraudstream image follows.

The images are checked by reading their Dockerfiles (tests/kind builds and runs them): multi-stage,
base images pinned, a non-root final user, and the project's own wheel installed at the versions
of requirements.lock (or without dependencies where the base image owns them, as Airflow does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .policy import is_pinned

_WHEEL_INSTALL = re.compile(r"\bpip install\b.*fraudstream-\*\.whl", re.DOTALL)
_WHEEL_BUILD = re.compile(r"\bpip wheel\b.*--no-deps.*\s\.(\s|$)", re.DOTALL)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]

    @classmethod
    def from_text(cls, text: str) -> Dockerfile:
        """Instructions with continuation lines joined; comments and blank lines dropped."""
        joined = re.sub(r"\\\n", " ", text)
        found = []
        for line in joined.splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            keyword, _, arguments = stripped.partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
        return cls(tuple(found))

    @classmethod
    def parse(cls, path: Path) -> Dockerfile:
        return cls.from_text(path.read_text())

    def of(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def global_args(self) -> dict[str, str]:
        """The defaults of the ARGs declared before the first FROM (the ones FROM may use)."""
        found: dict[str, str] = {}
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                break
            if instruction.keyword == "ARG":
                name, _, default = instruction.arguments.partition("=")
                found[name] = default
        return found

    def stages(self) -> list[tuple[str, str | None]]:
        """(base image, stage name) per FROM, in order, with the ARG defaults substituted."""
        defaults = self.global_args()

        def substitute(word: str) -> str:
            return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m[1] or m[2], m[0]), word)

        result = []
        for arguments in self.of("FROM"):
            words = [substitute(w) for w in arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append((words[0], name))
        return result

    def users(self) -> dict[str, str | None]:
        """The USER in force at the end of each stage (by name, ``#<n>`` when unnamed); a stage
        built FROM another stage starts with that stage's user."""
        users: dict[str, str | None] = {}
        stages = iter(self.stages())
        current, user = "", None
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                if current:
                    users[current] = user
                base, name = next(stages)
                current, user = name or f"#{len(users)}", users.get(base)
            elif instruction.keyword == "USER":
                user = instruction.arguments
        users[current] = user
        return users

    def entrypoints(self) -> dict[str, list[str] | None]:
        """The ENTRYPOINT (exec form) in force at the end of each stage, inherited like users."""
        found: dict[str, list[str] | None] = {}
        stages = iter(self.stages())
        current, entry = "", None
        for instruction in self.instructions:
            if instruction.keyword == "FROM":
                if current:
                    found[current] = entry
                base, name = next(stages)
                current, entry = name or f"#{len(found)}", found.get(base)
            elif instruction.keyword == "ENTRYPOINT":
                entry = json.loads(instruction.arguments)
        found[current] = entry
        return found

    def targets(self) -> list[str]:
        """Stages nothing else builds on or copies from: the images this file produces. A FROM
        that picks its stage by a build argument (`FROM venv-${KIND}`) uses every stage it can
        pick."""
        stages = self.stages()
        used = {base for base, _ in stages}
        names = {name for _, name in stages}
        for arguments, (resolved, _) in zip(self.of("FROM"), stages, strict=True):
            base = next(w for w in arguments.split() if not w.startswith("--"))
            if "$" in base and resolved in names:
                pattern = re.sub(r"\\\$\\\{\w+\\\}|\\\$\w+", ".+", re.escape(base))
                used |= {name for name in names if name and re.fullmatch(pattern, name)}
        for arguments in self.of("COPY"):
            used |= {
                w.removeprefix("--from=") for w in arguments.split() if w.startswith("--from=")
            }
        return [name for name in self.users() if name not in used]

    def copy_sources(self) -> list[str]:
        """Sources that COPY takes from the build context (the repository root)."""
        sources = []
        for arguments in self.of("COPY"):
            words = arguments.split()
            if any(w.startswith("--from=") for w in words):
                continue
            sources += [w for w in words if not w.startswith("--")][:-1]
        return sources


def dockerfile_violations(dockerfile: Dockerfile) -> list[str]:
    """The image rules, as readable violations (empty: the Dockerfile complies)."""
    found = []
    stages = dockerfile.stages()
    if len(stages) < 2:
        found.append("not a multi-stage build")
    names: set[str] = set()
    for image, name in stages:
        if image not in names and not is_pinned(image):
            found.append(f"base image {image} is not pinned")
        if name:
            names.add(name)
    users = dockerfile.users()
    for target in dockerfile.targets():
        user = users[target]
        if user is None or user.split(":")[0] in {"root", "0"}:
            found.append(f"target {target} runs as root (USER {user})")
    runs = dockerfile.of("RUN")
    if not any(_WHEEL_BUILD.search(run) for run in runs):
        found.append("does not build the project's wheel (pip wheel --no-deps .)")
    installs = [run for run in runs if _WHEEL_INSTALL.search(run)]
    if not installs:
        found.append("does not install the project's wheel")
    for run in installs:
        if "--no-deps" not in run and "requirements.lock" not in run:
            found.append("installs the wheel without requirements.lock as constraints")
    return found
