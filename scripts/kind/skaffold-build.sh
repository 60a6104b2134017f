#!/usr/bin/env bash
# skaffold's custom builder for the kind cluster (profile offline): builds the one image skaffold
# asks for ($IMAGE: localhost:5001/fraudstream/<name>:<tag>, the registry beside the cluster being
# skaffold's default repository there, scripts/kind/skaffold-config.yaml) exactly as
# `make images` does, on the offline bases, and pushes it when skaffold asks ($PUSH_IMAGE): only
# the layers the registry lacks travel, and the nodes pull them from it.
set -euo pipefail
: "${IMAGE:?skaffold sets IMAGE}"
source "$(dirname "${BASH_SOURCE[0]}")/images.sh"
name="${IMAGE##*/}"
name="${name%%:*}"
ensure_docker
[[ $BASES == public ]] || image_present "$PYTHON_BASE" || build_offline_bases
build_image "$name" "$IMAGE"
if [[ "${PUSH_IMAGE:-false}" == true ]]; then
  ensure_registry
  push_image "$IMAGE"
fi
