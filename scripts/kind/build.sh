# The offline build of kind's node image, step by step (sourced by up.sh after lib.sh). Every
# piece comes from the Go module proxy or Debian's packages; nothing is pulled from an image
# registry. The steps, in order:
#   tools       kind and skaffold from their Go modules (helm comes from scripts/k8s-tools.sh)
#   kubernetes  kubeadm, kubelet, kubectl and the control plane from k8s.io/kubernetes
#   components  containerd, runc, crictl, the CNI plugins, etcd, CoreDNS, the local-path
#               provisioner and pause, each from its own module (pause from Kubernetes' C file)
#   debian      a Debian root file system (debootstrap), imported as $DEBIAN_IMAGE: the base of
#               the node image and of every image the node preloads
#   preload     the images kubeadm and kind expect, under their names, saved into a
#               release-style server tarball that `kind build node-image --type file` takes
#   base        kind's base image: kind's own files/ from its module, patched for this VM
#   node        `kind build node-image`, then saved under the cache for the next `kind-up`
# shellcheck shell=bash

GO_TAGS_CONTAINERD="no_aufs no_zfs no_btrfs no_devmapper"

go_build() { # OUT MODULE_DIR PACKAGE [CGO] [TAGS] [LDFLAGS]
  local out=$1 dir=$2 pkg=$3 cgo=${4:-0} tags=${5:-} ld=${6:-}
  echo "=== $(basename "$out") <- $pkg ($(date +%T))"
  (cd "$dir" && CGO_ENABLED=$cgo nice -n 10 go build -p 2 -trimpath -tags "$tags" \
    -ldflags "-s -w $ld" -o "$out" "$pkg")
}

build_tools() {
  local src="$KIND_CACHE/src"
  GOBIN="$KIND_BIN" nice -n 10 go install "sigs.k8s.io/kind@$KIND_VERSION"
  "$KIND_BIN/kind" version
  # skaffold's go.mod carries replace directives, so `go install` refuses it: build in a copy.
  GONOSUMDB=github.com/GoogleContainerTools/skaffold \
    module_tree github.com/GoogleContainerTools/skaffold/v2 "$SKAFFOLD_VERSION" "$src/skaffold"
  go_build "$KIND_BIN/skaffold" "$src/skaffold" ./cmd/skaffold 0 "" \
    "-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION"
  rm -rf "$src/skaffold"
  "$KIND_BIN/skaffold" version
}

build_kubernetes() {
  local version=$KUBERNETES_VERSION src="$KIND_CACHE/src/kubernetes" out="$KIND_OUT/kubernetes-$KUBERNETES_VERSION"
  module_source k8s.io/kubernetes "$version" "$src"
  # The staging modules (k8s.io/api, client-go, ...) are replaced by ./staging in go.mod, which
  # the module zip does not hold: require their published release of the same version instead.
  local args
  mapfile -t args < <(cd "$src" && go mod edit -json | python3 "$KIND_DIR/gomod.py" staging-requires "$version")
  (cd "$src" && go mod edit "${args[@]}")
  drop_local_replaces "$src"
  local minor=${version#v1.}
  minor=${minor%%.*}
  local ld="" pkg
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld="$ld -X '$pkg.gitVersion=$version' -X '$pkg.gitMajor=1' -X '$pkg.gitMinor=$minor'"
    ld="$ld -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=1970-01-01T00:00:00Z'"
  done
  mkdir -p "$out"
  local cmd
  for cmd in kubeadm kubelet kubectl kube-proxy kube-scheduler kube-controller-manager kube-apiserver; do
    go_build "$out/$cmd" "$src" "./cmd/$cmd" 0 "" "$ld"
  done
  # pause, the sandbox container, is one C file in the same module.
  nice -n 10 gcc -Os -Wall -Werror -static -DVERSION="${PAUSE_IMAGE_TAGS##* }" \
    -o "$out/pause" "$src/build/pause/linux/pause.c"
  rm -rf "$src"
  "$out/kubeadm" version -o short
  ln -sfn "$out/kubectl" "$KIND_BIN/kubectl"
}

build_components() {
  local out="$KIND_OUT/components" src="$KIND_CACHE/src"
  mkdir -p "$out"
  local cd=github.com/containerd/containerd/v2 cmd
  module_tree "$cd" "$CONTAINERD_VERSION" "$src/containerd"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    go_build "$out/$cmd" "$src/containerd" "./cmd/$cmd" 0 "$GO_TAGS_CONTAINERD" "-X $cd/version.Version=$CONTAINERD_VERSION"
  done
  # runc needs cgo and libseccomp (Debian's libseccomp-dev).
  module_tree github.com/opencontainers/runc "$RUNC_VERSION" "$src/runc"
  go_build "$out/runc" "$src/runc" . 1 seccomp "-X main.version=${RUNC_VERSION#v}"
  module_tree sigs.k8s.io/cri-tools "$CRICTL_VERSION" "$src/cri-tools"
  go_build "$out/crictl" "$src/cri-tools" ./cmd/crictl 0 "" "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
  module_tree github.com/containernetworking/plugins "$CNI_PLUGINS_VERSION" "$src/cni"
  for cmd in ipam/host-local main/loopback main/ptp meta/portmap; do
    go_build "$out/$(basename "$cmd")" "$src/cni" "./plugins/$cmd"
  done
  module_tree go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$src/etcd"
  go_build "$out/etcd" "$src/etcd" .
  module_tree github.com/coredns/coredns "$COREDNS_VERSION" "$src/coredns"
  go_build "$out/coredns" "$src/coredns" .
  module_tree github.com/rancher/local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" "$src/local-path"
  go_build "$out/local-path-provisioner" "$src/local-path" .
  rm -rf "$src/containerd" "$src/runc" "$src/cri-tools" "$src/cni" "$src/etcd" "$src/coredns" "$src/local-path"
  ls -la "$out"
}

# docker_build ARGS...: BuildKit through a client that has it built in (Debian's docker.io 20.10
# does; a newer client needs its buildx plugin), so per-Dockerfile .dockerignore files apply.
docker_build() {
  if docker buildx version >/dev/null 2>&1; then
    nice -n 10 docker build "$@"
  else
    DOCKER_BUILDKIT=1 nice -n 10 "${FRAUDSTREAM_BUILD_DOCKER:-/usr/bin/docker}" build "$@"
  fi
}

LOCAL_CA_DIR="${FRAUDSTREAM_LOCAL_CA_DIR:-/usr/local/share/ca-certificates}"

# debian_pins: what the Debian base depends on (the suite and the local CAs it trusts).
debian_pins() {
  echo "$DEBIAN_SUITE $(cat "$LOCAL_CA_DIR"/*.crt 2>/dev/null | sha256sum | cut -c1-12)"
}

build_debian() {
  local rootfs="$KIND_CACHE/rootfs"
  rm -rf "$rootfs"
  nice -n 10 debootstrap --variant=minbase --include=ca-certificates "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR"
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $DEBIAN_MIRROR $DEBIAN_SUITE main
deb $DEBIAN_MIRROR $DEBIAN_SUITE-updates main
deb ${DEBIAN_MIRROR%/debian}/debian-security $DEBIAN_SUITE-security main
SOURCES
  # Site-local certificate authorities of this machine (a proxy that inspects TLS, for one) are
  # trusted inside the images too, or pip and Maven fail there with "certificate verify failed".
  local ca
  for ca in "$LOCAL_CA_DIR"/*.crt; do
    [[ -f $ca ]] || continue
    cp "$ca" "$rootfs/usr/local/share/ca-certificates/"
  done
  chroot "$rootfs" update-ca-certificates
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$DEBIAN_IMAGE"
  rm -rf "$rootfs"
  docker image ls "$DEBIAN_IMAGE"
}

PRELOAD_KUBE_IMAGES=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy)

build_preload() {
  local kube="$KIND_OUT/kubernetes-$KUBERNETES_VERSION" comp="$KIND_OUT/components"
  local ctx="$KIND_CACHE/preload-context" release="$KIND_CACHE/release"
  rm -rf "$ctx" "$release"
  mkdir -p "$ctx/bin" "$release/kubernetes/server/bin"
  cp "$kube"/kube-* "$kube/pause" "$comp/etcd" "$comp/coredns" "$comp/local-path-provisioner" "$ctx/bin/"
  cp "$KIND_DIR/preload/podnet.sh" "$ctx/"
  local build=(docker_build -q -f "$KIND_DIR/preload/Dockerfile" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE")
  local name tag
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    "${build[@]}" --target binary --build-arg "BINARY=$name" -t "registry.k8s.io/$name:$KUBERNETES_VERSION" "$ctx"
  done
  "${build[@]}" --target kube-proxy -t "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" "$ctx"
  "${build[@]}" --target binary --build-arg BINARY=etcd -t "registry.k8s.io/etcd:$ETCD_IMAGE_TAG" "$ctx"
  "${build[@]}" --target coredns -t "registry.k8s.io/coredns/coredns:$COREDNS_VERSION" "$ctx"
  for tag in $PAUSE_IMAGE_TAGS; do
    "${build[@]}" --target pause -t "registry.k8s.io/pause:$tag" "$ctx"
  done
  "${build[@]}" --target podnet -t "$KINDNETD_IMAGE" "$ctx"
  "${build[@]}" --target binary --build-arg BINARY=local-path-provisioner -t "$LOCAL_PATH_PROVISIONER_IMAGE" "$ctx"
  docker tag "$DEBIAN_IMAGE" "$LOCAL_PATH_HELPER_IMAGE"
  # The layout of a Kubernetes server release, which `kind build node-image --type file` takes:
  # the node binaries and one image archive per control-plane image. kind counts every image in
  # those archives as built, so the other preloaded images ride in kube-proxy.tar.
  local bin="$release/kubernetes/server/bin"
  echo "$KUBERNETES_VERSION" >"$release/kubernetes/version"
  cp "$kube/kubeadm" "$kube/kubelet" "$kube/kubectl" "$bin/"
  for name in kube-apiserver kube-controller-manager kube-scheduler; do
    docker save -o "$bin/$name.tar" "registry.k8s.io/$name:$KUBERNETES_VERSION"
  done
  local extra=("registry.k8s.io/etcd:$ETCD_IMAGE_TAG" "registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
    "$KINDNETD_IMAGE" "$LOCAL_PATH_PROVISIONER_IMAGE" "$LOCAL_PATH_HELPER_IMAGE")
  for tag in $PAUSE_IMAGE_TAGS; do extra+=("registry.k8s.io/pause:$tag"); done
  docker save -o "$bin/kube-proxy.tar" "registry.k8s.io/kube-proxy:$KUBERNETES_VERSION" "${extra[@]}"
  python3 "$KIND_DIR/archive_tags.py" "$bin/kube-proxy.tar"
  tar -C "$release" -c kubernetes | gzip -1 >"$KIND_CACHE/kubernetes-server-linux-amd64.tar.gz"
  rm -rf "$ctx" "$release"
}

build_base() {
  local ctx="$KIND_CACHE/base-context" kind_module
  kind_module="$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$ctx"
  mkdir -p "$ctx/bin"
  cp -r "$kind_module/images/base/files" "$ctx/files"
  chmod -R u+w "$ctx"
  cp "$KIND_DIR/node/cgroup-rw.sh" "$ctx/"
  local f
  for f in containerd ctr containerd-shim-runc-v2 crictl runc host-local loopback ptp portmap; do
    cp "$KIND_OUT/components/$f" "$ctx/bin/"
  done
  docker_build -f "$KIND_DIR/node/Dockerfile" --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" \
    -t "fraudstream/kind-base:$KIND_VERSION" "$ctx"
  rm -rf "$ctx"
}

# with_docker_shim COMMAND...: runs a kind command with scripts/kind/docker-shim.sh as `docker`.
with_docker_shim() {
  local shim="$KIND_CACHE/shim"
  mkdir -p "$shim"
  ln -sfn "$KIND_DIR/docker-shim.sh" "$shim/docker"
  FRAUDSTREAM_DOCKER="$(command -v docker)" PATH="$shim:$PATH" "$@"
}

build_node() {
  with_docker_shim nice -n 10 "$KIND_BIN/kind" build node-image --type file \
    --base-image "fraudstream/kind-base:$KIND_VERSION" --image "$NODE_IMAGE" \
    "$KIND_CACHE/kubernetes-server-linux-amd64.tar.gz"
  mkdir -p "$KIND_CACHE/images"
  docker save -o "$KIND_CACHE/images/kind-node.tar" "$NODE_IMAGE"
  rm -f "$KIND_CACHE/kubernetes-server-linux-amd64.tar.gz"
  docker image ls "$NODE_IMAGE"
}
