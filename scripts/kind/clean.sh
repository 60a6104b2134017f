#!/usr/bin/env bash
# make kind-clean: everything `make kind-up` and `make images` left on this machine, for the
# disk: the cluster and its registry (blobs included), the images they built, the cache (binaries, saved node image, logs) and the
# Go build cache. The Go module downloads stay ($(go env GOMODCACHE); `go clean -modcache`).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$KIND_DIR/down.sh"
if docker info >/dev/null 2>&1; then
  images="$(docker image ls --format '{{.Repository}}:{{.Tag}}' | grep -E '^(fraudstream/|localhost:5001/fraudstream/|registry\.k8s\.io/|kindest/|docker\.io/kindest/)' || true)"
  [[ -z "$images" ]] || docker image rm -f $images >/dev/null
  docker builder prune -af >/dev/null
  docker image prune -f >/dev/null
fi
rm -rf "$KIND_CACHE"
say "removed the cluster, its images and $KIND_CACHE"
