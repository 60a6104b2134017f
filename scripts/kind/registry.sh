# The image registry beside the kind cluster (sourced by up.sh, images.sh, down.sh, status.sh and
# skaffold-build.sh after lib.sh). `crane registry serve`, built from the go-containerregistry
# module, runs in a container on kind's docker network; its blobs live in $REGISTRY_DATA on the
# host, so they outlive the container. The host pushes to localhost:$REGISTRY_PORT; every node's
# containerd maps that name to the container (/etc/containerd/certs.d/<name>/hosts.toml, the kind
# way: kind-config.yaml points containerd's config_path there). Pods name their images
# localhost:$REGISTRY_PORT/fraudstream/<image>, and a changed image moves only its changed layers.
#
# The server keeps manifests in memory (blobs on disk): after the container restarts, the tags are
# gone until pushed again; up.sh pushes again what `make images` pushed last (only the manifests
# travel: the registry still holds every layer).
# shellcheck shell=bash

CRANE_VERSION=v0.22.1  # github.com/google/go-containerregistry
REGISTRY_CONTAINER="${KIND_CLUSTER}-registry"
REGISTRY_PORT=5001  # skaffold-config.yaml and the offline values name it too
REGISTRY="localhost:$REGISTRY_PORT"
REGISTRY_IMAGE="fraudstream/registry:${CRANE_VERSION#v}"
REGISTRY_DATA="$KIND_CACHE/registry"
REGISTRY_PUSHED="$KIND_CACHE/registry-pushed"  # what `make images` pushed last, one tag a line
REGISTRY_LABEL="dev.fraudstream.kind-registry=$KIND_CLUSTER"

registry_answers() { curl -sf -o /dev/null --max-time 5 "http://$REGISTRY/v2/"; }

build_registry_image() {
  local ctx="$KIND_CACHE/registry-context" src="$KIND_CACHE/src/go-containerregistry"
  rm -rf "$ctx" && mkdir -p "$ctx"
  module_tree github.com/google/go-containerregistry "$CRANE_VERSION" "$src"
  go_build "$ctx/crane" "$src" ./cmd/crane 0 "" \
    "-X github.com/google/go-containerregistry/cmd/crane/cmd.Version=$CRANE_VERSION"
  rm -rf "$src"
  docker_build -t "$REGISTRY_IMAGE" -f "$KIND_DIR/registry/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

# ensure_registry: the registry container running, on kind's network, answering on the host.
ensure_registry() {
  if ! image_present "$REGISTRY_IMAGE"; then
    forget registry
    run_step registry "$CRANE_VERSION" build_registry_image
  fi
  local state
  state="$(docker inspect -f '{{.State.Status}}' "$REGISTRY_CONTAINER" 2>/dev/null || true)"
  if [[ $state != running ]]; then
    [[ -z $state ]] || docker rm -f "$REGISTRY_CONTAINER" >/dev/null
    # The server runs as uid 65532 (the image has no root user): it owns its data folder.
    install -d -o 65532 -g 65532 "$REGISTRY_DATA"
    docker run -d --name "$REGISTRY_CONTAINER" --label "$REGISTRY_LABEL" --restart unless-stopped \
      -p "127.0.0.1:$REGISTRY_PORT:5000" -v "$REGISTRY_DATA:/var/lib/registry" \
      "$REGISTRY_IMAGE" >/dev/null
    say "registry $REGISTRY_CONTAINER started (http://$REGISTRY, blobs in $REGISTRY_DATA)"
  fi
  if docker network inspect kind >/dev/null 2>&1 \
      && ! docker inspect -f '{{json .NetworkSettings.Networks}}' "$REGISTRY_CONTAINER" | grep -q '"kind"'; then
    docker network connect kind "$REGISTRY_CONTAINER"
  fi
  local i
  for i in $(seq 30); do
    registry_answers && return 0
    sleep 1
  done
  die "the registry does not answer on http://$REGISTRY/v2/ (docker logs $REGISTRY_CONTAINER)"
}

# registry_hosts_toml: what each node's containerd reads for the name localhost:$REGISTRY_PORT.
registry_hosts_toml() {
  printf '[host."http://%s:5000"]\n  capabilities = ["pull", "resolve"]\n' "$REGISTRY_CONTAINER"
}

# configure_nodes: every node resolves localhost:$REGISTRY_PORT to the registry container, and the
# cluster says where its local registry is (KEP-1755's ConfigMap, read by tools such as Tilt).
configure_nodes() {
  local node dir="/etc/containerd/certs.d/$REGISTRY"
  for node in $("$KIND_BIN/kind" get nodes --name "$KIND_CLUSTER"); do
    docker exec "$node" mkdir -p "$dir"
    registry_hosts_toml | docker exec -i "$node" cp /dev/stdin "$dir/hosts.toml"
  done
  "$KIND_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "$REGISTRY"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
YAML
}

# push_image TAG: TAG (fraudstream/...) pushed as $REGISTRY/TAG. Layers the registry holds are
# not sent again (docker asks for each one first).
push_image() {
  local target="$REGISTRY/${1#"$REGISTRY/"}" out
  [[ $1 == "$target" ]] || docker tag "$1" "$target"
  if ! out="$(docker push "$target" 2>&1)"; then
    printf '%s\n' "$out" >&2
    return 1
  fi
  grep -v -e ': Preparing$' -e ': Waiting$' <<<"$out" || true
}

# repush: what `make images` pushed last, pushed again (a restarted registry lost its manifests).
repush() {
  [[ -s $REGISTRY_PUSHED ]] || return 0
  local tag missing=0
  while read -r tag; do
    if image_present "$tag"; then
      push_image "$tag" >/dev/null </dev/null
    else
      missing=1
    fi
  done <"$REGISTRY_PUSHED"
  [[ $missing == 0 ]] || say "some images of the last \`make images\` are gone from docker: run it again"
}

remove_registry() {
  local ids
  ids="$(docker ps -aq --filter "label=$REGISTRY_LABEL")"
  [[ -z $ids ]] || docker rm -f $ids >/dev/null
}
