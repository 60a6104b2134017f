#!/usr/bin/env bash
# skaffold's custom builder for the kind cluster (profile offline): builds the one image skaffold
# asks for ($IMAGE, with skaffold's tag) exactly as `make images` does, on the offline bases, and
# streams it into the workers that lack it. skaffold's own `kind load` is disabled for this
# cluster (scripts/kind/skaffold-config.yaml): it would send every image to every node, control
# plane included, and keep the compressed layers beside the unpacked ones.
set -euo pipefail
: "${IMAGE:?skaffold sets IMAGE}"
source "$(dirname "${BASH_SOURCE[0]}")/images.sh"
name="${IMAGE#*/}"
name="${name%%:*}"
ensure_docker
[[ $BASES == public ]] || image_present "$PYTHON_BASE" || build_offline_bases
build_image "$name" "$IMAGE"
load_into_cluster
