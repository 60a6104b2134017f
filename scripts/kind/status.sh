#!/usr/bin/env bash
# make kind-status: the cluster's nodes and pods, the node containers' memory, the footprint on
# disk (the cache, Docker's root) and the pins the node image was built with.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$KIND_DIR/registry.sh"

if ! docker info >/dev/null 2>&1; then
  say "no docker engine answers (make kind-up starts one)"
  exit 1
fi
if ! [[ -x "$KIND_BIN/kind" ]] || ! "$KIND_BIN/kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  say "no cluster $KIND_CLUSTER (make kind-up creates it)"
else
  kubectl=("$KIND_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE")
  "${kubectl[@]}" get nodes -o wide
  "${kubectl[@]}" get pods -A
  docker stats --no-stream --format 'table {{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}' \
    $(docker ps -q --filter "label=io.x-k8s.kind.cluster=$KIND_CLUSTER") \
    $(docker ps -q --filter "label=$REGISTRY_LABEL")
  for node in $("$KIND_BIN/kind" get nodes --name "$KIND_CLUSTER"); do
    printf '%s: containerd %s\n' "$node" "$(docker exec "$node" du -sh /var/lib/containerd | cut -f1)"
  done
  say "kubeconfig: $KUBECONFIG_FILE"
fi
say "node image: $NODE_IMAGE ($(docker image inspect -f '{{.Size}}' "$NODE_IMAGE" 2>/dev/null | awk '{printf "%.2f GB", $1/1e9}' || echo absent))"
if registry_answers; then
  say "registry: http://$REGISTRY, $(curl -sf "http://$REGISTRY/v2/_catalog" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["repositories"] or []))') repositories, blobs $(du -sh "$REGISTRY_DATA" | cut -f1) ($REGISTRY_DATA)"
else
  say "registry: not running (make kind-up starts it)"
fi
say "disk: cache $(du -sh "$KIND_CACHE" 2>/dev/null | cut -f1) ($KIND_CACHE), Go modules $(du -sh "$(go env GOMODCACHE)" 2>/dev/null | cut -f1), Docker root $(du -sh "$(docker info -f '{{.DockerRootDir}}')" 2>/dev/null | cut -f1)"
docker system df
