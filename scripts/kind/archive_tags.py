"""Rewrites a multi-image `docker save` archive so `kind build node-image` sees every image in it.

kind reads an archive's image names from whichever of `repositories` and `manifest.json` comes
first in the tar, and from `manifest.json` it takes the first image's names only; docker also
writes Docker Hub names short (`kindest/x:tag`) where kind compares the long form
(`docker.io/kindest/x:tag`). So this writes `repositories` first, with every name in the long
form, then `manifest.json`, rewritten the same way. A name kind does not find in an archive it
fetches from a registry, which fails offline.

    python3 archive_tags.py ARCHIVE.tar    (rewritten in place; prints the names it holds)
"""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile


def qualified(reference: str) -> str:
    """`kindest/x:1` -> `docker.io/kindest/x:1`; names with a registry host stay as they are."""
    first = reference.split("/", 1)[0]
    if "/" in reference and ("." in first or ":" in first or first == "localhost"):
        return reference
    if "/" not in reference:
        reference = "library/" + reference
    return "docker.io/" + reference


def _repositories(data: dict) -> dict:
    return {qualified(name + ":x").rsplit(":", 1)[0]: tags for name, tags in data.items()}


def _manifest(data: list) -> list:
    for entry in data:
        entry["RepoTags"] = [qualified(tag) for tag in entry.get("RepoTags") or []]
    return data


def rewrite(path: str) -> list[str]:
    """Rewrites the archive at `path` in place and returns the image names it now holds."""
    tmp = path + ".tmp"
    with tarfile.open(path) as src, tarfile.open(tmp, "w") as dst:
        members = src.getmembers()
        metadata = {"repositories": _repositories, "manifest.json": _manifest}
        ordered = [m for m in members if m.name not in metadata]
        ordered += [m for name in metadata for m in members if m.name == name]
        names: list[str] = []
        for member in ordered:
            handle = src.extractfile(member) if member.isfile() else None
            if member.name in metadata and handle is not None:
                data = metadata[member.name](json.load(handle))
                if member.name == "manifest.json":
                    names = [tag for entry in data for tag in entry["RepoTags"]]
                body = json.dumps(data).encode()
                member.size = len(body)
                dst.addfile(member, io.BytesIO(body))
            else:
                dst.addfile(member, handle)
    os.replace(tmp, path)
    return names


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    for name in rewrite(argv[0]):
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
