"""Lay out the JSON schemas kubeconform validates against, offline.

Usage: k8s_schemas.py crds CRD_DIR OUT_DIR
       k8s_schemas.py kubernetes SCHEMA_DIR OUT_DIR

``kubernetes``: copies the strict Kubernetes schemas bundled by kubernetes-validate (SCHEMA_DIR is
one ``v<version>-local-strict`` folder) so that their references resolve to the local
``_definitions.json`` instead of https://kubernetes.io: the ``$id`` is dropped and the absolute
``/api/_definitions.json`` references become relative.

``crds``: every ``*.yaml`` under CRD_DIR is read; for each served version of each CRD the
``openAPIV3Schema`` is written to ``OUT_DIR/<group>/<kind>_<version>.json`` (kind in lower case),
the layout of kubeconform's ``{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json``
schema location. The conversion makes OpenAPI's dialect plain JSON Schema: objects that declare
properties reject unknown fields (as the API server prunes or rejects them), ``nullable`` admits
null, and ``x-kubernetes-int-or-string`` admits an integer or a string. Idempotent: the output is
a pure function of the input files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    """Return a copy of an OpenAPI v3 schema node rewritten as strict JSON Schema."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.get("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def schemas_of(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Map ``<group>/<kind>_<version>.json`` to the strict schema of each served version."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"].lower()
    result = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = strict(version["schema"]["openAPIV3Schema"])
        # The API server owns these: a manifest may carry any valid metadata.
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        result[f"{group}/{kind}_{version['name']}.json"] = schema
    return result


def kubernetes_schemas(schema_dir: Path, out_dir: Path) -> int:
    """Copy the bundled Kubernetes schemas with local references; return how many."""
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(schema_dir.glob("*.json")):
        schema = json.loads(path.read_text())
        schema.pop("$id", None)
        text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
        (out_dir / path.name).write_text(text)
        count += 1
    return count


def crd_schemas(crd_dir: Path, out_dir: Path) -> int:
    """Write the strict schema of every served CRD version under crd_dir; return how many."""
    count = 0
    for path in sorted(crd_dir.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas_of(doc).items():
                target = out_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True))
                count += 1
    return count


def main(argv: list[str]) -> int:
    commands = {"crds": crd_schemas, "kubernetes": kubernetes_schemas}
    if len(argv) != 4 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    source, out_dir = Path(argv[2]), Path(argv[3])
    count = commands[argv[1]](source, out_dir)
    if count == 0:
        print(f"error (k8s-schemas): no schema found under {source}", file=sys.stderr)
        return 1
    print(f"k8s-schemas: wrote {count} {argv[1]} schemas to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
