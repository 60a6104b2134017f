#!/usr/bin/env bash
# make kind-up: the kind cluster of kind-config.yaml (one control plane, three zoned workers),
# on a node image built on this machine from the Go module proxy and Debian's packages, and the
# image registry beside it that the nodes pull from (scripts/kind/registry.sh), and NetworkPolicy
# enforcement (scripts/kind/netpol.sh). Installs and starts Docker when needed. Idempotent: every finished step is skipped on the next run, a
# running cluster is kept. Timing and logs per step; the kubeconfig's path at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$KIND_DIR/build.sh"
source "$KIND_DIR/registry.sh"
source "$KIND_DIR/netpol.sh"

node_image() {
  local pins
  pins="$(cat "$KIND_DIR/versions.env" | sha256sum | cut -c1-12)-$(files_hash "$KIND_DIR"/node/* "$KIND_DIR"/preload/* "$KIND_DIR/archive_tags.py")"
  if [[ "$(cat "$KIND_STAMPS/node" 2>/dev/null)" == "$pins" ]]; then
    if image_present "$NODE_IMAGE"; then
      say "node image $NODE_IMAGE: up to date"
      return
    fi
    if [[ -f "$KIND_CACHE/images/kind-node.tar" ]]; then
      logged node-load docker load -i "$KIND_CACHE/images/kind-node.tar"
      return
    fi
  fi
  # What `docker` held may be gone (a new engine, a prune): build those images again.
  image_present "$DEBIAN_IMAGE" || forget debian preload base node
  image_present "fraudstream/kind-base:$KIND_VERSION" || forget base node
  image_present "registry.k8s.io/kube-apiserver:$KUBERNETES_VERSION" || forget preload node
  [[ -x "$KIND_OUT/kubernetes-$KUBERNETES_VERSION/kubeadm" ]] || forget kubernetes preload node
  [[ -x "$KIND_OUT/components/containerd" ]] || forget components preload base node
  ensure_build_tools
  say "building the node image (about 25 minutes of two cores the first time; finished steps are skipped)"
  # The two long Go builds side by side, then the rest in order.
  run_step kubernetes "$KUBERNETES_VERSION" build_kubernetes &
  local kubernetes=$!
  run_step components "$CONTAINERD_VERSION $RUNC_VERSION $CRICTL_VERSION $CNI_PLUGINS_VERSION $ETCD_VERSION $COREDNS_VERSION $LOCAL_PATH_PROVISIONER_VERSION" build_components &
  local components=$!
  wait "$kubernetes"
  wait "$components"
  run_step tools "$KIND_VERSION $SKAFFOLD_VERSION" build_tools
  run_step debian "$(debian_pins)" build_debian
  run_step preload "$pins" build_preload
  run_step base "$pins" build_base
  run_step node "$pins" build_node
  if [[ "${KIND_KEEP_GO_CACHE:-0}" != 1 ]]; then
    say "removing the Go build cache $GOCACHE ($(du -sh "$GOCACHE" 2>/dev/null | cut -f1); KIND_KEEP_GO_CACHE=1 keeps it)"
    rm -rf "$GOCACHE"
  fi
}

create_cluster() {
  if "$KIND_BIN/kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
    say "cluster $KIND_CLUSTER: already running"
    with_docker_shim "$KIND_BIN/kind" export kubeconfig --name "$KIND_CLUSTER" \
      --kubeconfig "$KUBECONFIG_FILE" >/dev/null
    return
  fi
  logged cluster with_docker_shim "$KIND_BIN/kind" create cluster --name "$KIND_CLUSTER" \
    --config "$ROOT/kind-config.yaml" --image "$NODE_IMAGE" --kubeconfig "$KUBECONFIG_FILE" --wait 5m
}

wait_ready() {
  local kubectl=("$KIND_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE")
  logged ready bash -c '
    set -e
    "$@" wait --for=condition=Ready nodes --all --timeout=300s
    for ns in kube-system local-path-storage; do
      "$@" -n "$ns" wait --for=condition=Ready pods --all --timeout=300s
    done
    "$@" get nodes -o wide
    "$@" get pods -A -o wide' _ "${kubectl[@]}"
}

main() {
  local start
  start=$(date +%s)
  ensure_docker
  [[ -x "$KIND_BIN/kind" ]] || forget tools
  node_image
  run_step tools "$KIND_VERSION $SKAFFOLD_VERSION" build_tools
  create_cluster
  wait_ready
  ensure_registry
  logged registry-nodes configure_nodes
  logged registry-repush repush
  ensure_netpol
  say "cluster $KIND_CLUSTER ready in $(( $(date +%s) - start ))s: $("$KIND_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get nodes --no-headers | wc -l) nodes Ready"
  say "registry: http://$REGISTRY ($(curl -sf "http://$REGISTRY/v2/_catalog" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["repositories"] or []))') repositories; make images pushes the images)"
  say "use it with: export KUBECONFIG=$KUBECONFIG_FILE PATH=$KIND_BIN:\$PATH"
}

main "$@"
