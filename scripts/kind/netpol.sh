# NetworkPolicy enforcement for the kind cluster (sourced by up.sh after lib.sh, build.sh and
# registry.sh). The pod network agent of the node image (preload/podnet.sh) routes but does not
# enforce policies, so `make kind-up` adds kube-network-policies, built from its Go module.
#
# Upstream queues packets to user space with nftables' queue statement, which needs the kernel's
# nft_queue; the kernels of these machines are built without it (CONFIG_NFT_QUEUE unset) but with
# nft_compat and the xtables NFQUEUE target. The build swaps that one statement for the NFQUEUE
# target (netpol/xtqueue.go); everything else is the release as published.
# shellcheck shell=bash

NETPOL_VERSION=v0.8.0  # sigs.k8s.io/kube-network-policies
NETPOL_IMAGE="$REGISTRY/fraudstream/kube-network-policies:${NETPOL_VERSION}-xtqueue"

# patch_netpol_queue SRC: every `queue := &expr.Queue{...}` block becomes `xtQueue(...)`. Fails
# when the release no longer has the block it expects (a new version needs a new look).
patch_netpol_queue() {
  cp "$KIND_DIR/netpol/xtqueue.go" "$1/pkg/networkpolicy/xtqueue.go"
  python3 - "$1" <<'PY'
import pathlib, re, sys
root = pathlib.Path(sys.argv[1]) / "pkg" / "networkpolicy"
block = re.compile(
    r"queue := &expr\.Queue\{Num: uint16\(c\.config\.QueueID\)\}\n"
    r"\s*if c\.config\.FailOpen \{\n\s*queue\.Flag = expr\.QueueFlagBypass\n\s*\}\n")
found = 0
for path in root.glob("*.go"):
    text = path.read_text()
    new, n = block.subn("queue := xtQueue(uint16(c.config.QueueID), c.config.FailOpen)\n", text)
    if n:
        path.write_text(new)
        found += n
if found == 0:
    sys.exit(f"no nftables queue statement found under {root}: the patch does not fit this release")
print(f"queue statements replaced by the NFQUEUE target: {found}")
PY
}

build_netpol_image() {
  local ctx="$KIND_CACHE/netpol-context" src="$KIND_CACHE/src/kube-network-policies"
  rm -rf "$ctx" && mkdir -p "$ctx"
  module_tree sigs.k8s.io/kube-network-policies "$NETPOL_VERSION" "$src"
  patch_netpol_queue "$src"
  go_build "$ctx/kube-network-policies" "$src" ./cmd
  rm -rf "$src"
  docker_build -t "$NETPOL_IMAGE" -f "$KIND_DIR/netpol/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

# ensure_netpol: the image built (once per pins) and pushed, the agent running on every node.
ensure_netpol() {
  local pins
  pins="$NETPOL_VERSION-$(files_hash "$KIND_DIR"/netpol/* "$KIND_DIR/netpol.sh")"
  image_present "$NETPOL_IMAGE" || forget netpol
  run_step netpol "$pins" build_netpol_image
  logged netpol-apply install_netpol
}

install_netpol() {
  local kubectl=("$KIND_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE")
  push_image "$NETPOL_IMAGE"
  sed "s|image: IMAGE|image: $NETPOL_IMAGE|" "$KIND_DIR/netpol/kube-network-policies.yaml" \
    | "${kubectl[@]}" apply -f -
  "${kubectl[@]}" -n kube-system rollout status daemonset/kube-network-policies --timeout=300s
}
