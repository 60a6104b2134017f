#!/usr/bin/env bash
# make kind-down: deletes the kind cluster and the registry container beside it, and checks that
# none of their containers is left. The node image, the build cache and the registry's blobs stay,
# so the next `make kind-up` takes under a minute (and `make images` sends only manifests);
# `make kind-clean` removes those too.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$KIND_DIR/registry.sh"

if ! docker info >/dev/null 2>&1; then
  say "no docker engine answers: no cluster to delete"
  exit 0
fi
if [[ -x "$KIND_BIN/kind" ]] && "$KIND_BIN/kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  "$KIND_BIN/kind" delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_FILE"
fi
remove_registry
left="$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$KIND_CLUSTER"; docker ps -aq --filter "label=$REGISTRY_LABEL")"
if [[ -n "$left" ]]; then
  die "containers of cluster $KIND_CLUSTER are left: $(echo "$left" | tr '\n' ' ')(docker rm -f them)"
fi
rm -f "$KUBECONFIG_FILE"
say "cluster $KIND_CLUSTER and its registry deleted; no container of them is left"
