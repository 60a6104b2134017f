"""Reads `go mod edit -json` from standard input for the offline builds in scripts/kind.

A module zip from the Go module proxy leaves out nested modules, so replace directives that point
into the module's own tree cannot be honoured; these commands say what to do with them instead.

    local-replaces            the module paths (path@version when the replace is per version)
                              whose replacement is a local folder: drop those replaces
    staging-requires VERSION  for k8s.io/kubernetes: one `-dropreplace=M -require=M@v0.X.Y` pair
                              per staging module, the published release of the same Kubernetes
                              version (v1.37.0 -> v0.37.0)
"""

from __future__ import annotations

import json
import sys


def _local(replace: dict) -> bool:
    return replace["New"]["Path"].startswith(("./", "../"))


def local_replaces(gomod: dict) -> list[str]:
    out = []
    for replace in gomod.get("Replace") or []:
        if _local(replace):
            old = replace["Old"]
            out.append(old["Path"] + (f"@{old['Version']}" if old.get("Version") else ""))
    return out


def staging_version(kubernetes_version: str) -> str:
    """v1.37.0 -> v0.37.0: the staging modules are published with major 0 and the same minor."""
    major, _, rest = kubernetes_version.removeprefix("v").partition(".")
    if not kubernetes_version.startswith("v") or major != "1" or not rest:
        raise ValueError(f"not a Kubernetes v1.x.y version: {kubernetes_version!r}")
    return f"v0.{rest}"


def staging_requires(gomod: dict, kubernetes_version: str) -> list[str]:
    version = staging_version(kubernetes_version)
    args = []
    for replace in gomod.get("Replace") or []:
        path = replace["Old"]["Path"]
        if _local(replace) and replace["New"]["Path"].startswith("./staging/"):
            args += [f"-dropreplace={path}", f"-require={path}@{version}"]
    return args


def main(argv: list[str]) -> int:
    gomod = json.load(sys.stdin)
    if argv[:1] == ["local-replaces"]:
        print("\n".join(local_replaces(gomod)))
    elif argv[:1] == ["staging-requires"] and len(argv) == 2:
        print("\n".join(staging_requires(gomod, argv[1])))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
