#!/usr/bin/env bash
# make images: every image in images/ built for real, smoke-checked, and pushed to the registry
# beside the kind cluster (scripts/kind/registry.sh) when it runs, as localhost:5001/<name>: the
# nodes pull from there, and only the layers a change made travel.
#   IMAGE_BASES=offline (default)  the base images are built here first (images/offline, on the
#                                   Debian base of `make kind-up`) and passed in as build arguments
#   IMAGE_BASES=public             the Dockerfiles' own public bases (a machine that can pull)
#   IMAGES="api scorer"            only these (default: all)
# The smoke checks are tests/kind/test_images.py, run by pytest once the images exist.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$KIND_DIR/build.sh"
source "$KIND_DIR/registry.sh"

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")"
BASES="${IMAGE_BASES:-offline}"
ALL_IMAGES=(api generator trainer mlflow scorer airflow redis redis-exporter kafka postgres minio spark-operator cloudnative-pg)
# The offline profile's own images of what the online profile pulls (docs/kubernetes.md).
OFFLINE_ONLY=(redis redis-exporter kafka postgres minio spark-operator cloudnative-pg)
read -r -a WANTED <<<"${IMAGES:-${ALL_IMAGES[*]}}"
REDIS_EXPORTER_VERSION=v1.74.0  # the chart's images.exporter tag
SPARK_OPERATOR_VERSION="$(sed -n 's/^SPARK_OPERATOR_VERSION=//p' "$ROOT/scripts/k8s-tools.sh")"
CLOUDNATIVE_PG_VERSION="$(sed -n 's/^CLOUDNATIVE_PG_VERSION=//p' "$ROOT/scripts/k8s-tools.sh")"
KAFKA_VERSION="$(sed -n 's/^KAFKA_VERSION = "\(.*\)"/\1/p' "$ROOT/src/fraudstream/platform/toolchain.py")"
PYTHON_BASE=fraudstream/python:3.11-bookworm
BUILT=()

build_offline_bases() {
  if ! image_present "$DEBIAN_IMAGE"; then
    ensure_build_tools
    forget debian
    run_step debian "$(debian_pins)" build_debian
  fi
  local offline="$ROOT/images/offline" base=(--build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE")
  logged base-python docker_build "${base[@]}" -t "$PYTHON_BASE" "$offline/python"
  logged base-maven docker_build "${base[@]}" -t fraudstream/maven:3-jdk17 "$offline/maven"
  logged base-spark docker_build --build-arg "PYTHON_IMAGE=$PYTHON_BASE" --build-arg SPARK_VERSION=4.2.0 \
    -t fraudstream/spark:4.2.0-python3.11 "$offline/spark"
  logged base-jre docker_build "${base[@]}" -t fraudstream/jre:17-bookworm "$offline/jre"
  logged base-airflow docker_build --build-arg "PYTHON_IMAGE=$PYTHON_BASE" \
    -f "$offline/airflow/Dockerfile" -t fraudstream/airflow-base:3.3.2-python3.11 "$ROOT"
}

base_args() { # the build arguments of one Dockerfile for the chosen bases
  [[ $BASES == offline ]] || return 0
  case $1 in
    python) echo "--build-arg PYTHON_IMAGE=$PYTHON_BASE" ;;
    scorer) echo "--build-arg PYTHON_IMAGE=$PYTHON_BASE --build-arg MAVEN_IMAGE=fraudstream/maven:3-jdk17" \
      "--build-arg SPARK_IMAGE=fraudstream/spark:4.2.0-python3.11 --build-arg SCORER_PYTHON=base" ;;
    airflow) echo "--build-arg PYTHON_IMAGE=$PYTHON_BASE --build-arg AIRFLOW_IMAGE=fraudstream/airflow-base:3.3.2-python3.11" ;;
    kafka) echo "--build-arg MAVEN_IMAGE=fraudstream/maven:3-jdk17 --build-arg JRE_IMAGE=fraudstream/jre:17-bookworm" ;;
  esac
}

build_image() { # NAME [TAG]: the project's images take another tag (skaffold's) when given
  local name=$1 tag="${2:-fraudstream/$1:$VERSION}" args=()
  case $name in
    api|generator|trainer|mlflow)
      read -r -a args <<<"$(base_args python)"
      logged "image-$name" docker_build "${args[@]}" -f "$ROOT/images/python/Dockerfile" --target "$name" -t "$tag" "$ROOT" ;;
    scorer|airflow)
      read -r -a args <<<"$(base_args "$name")"
      logged "image-$name" docker_build "${args[@]}" -f "$ROOT/images/$name/Dockerfile" -t "$tag" "$ROOT" ;;
    redis)
      tag="fraudstream/redis:7.0-bookworm"
      logged image-redis docker_build --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$tag" "$ROOT/images/offline/redis" ;;
    redis-exporter)
      tag="fraudstream/redis-exporter:$REDIS_EXPORTER_VERSION"
      if image_present "$tag"; then say "image-redis-exporter: up to date"
      else logged image-redis-exporter build_redis_exporter "$tag"; fi ;;
    kafka)
      tag="fraudstream/kafka:$KAFKA_VERSION"
      read -r -a args <<<"$(base_args kafka)"
      logged image-kafka docker_build "${args[@]}" -f "$ROOT/images/offline/kafka/Dockerfile" -t "$tag" "$ROOT" ;;
    postgres)
      tag="fraudstream/postgres:15-bookworm"
      logged image-postgres docker_build --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$tag" "$ROOT/images/offline/postgres" ;;
    minio)
      tag="fraudstream/minio:$(minio_version)"
      if image_present "$tag"; then say "image-minio: up to date"
      else logged image-minio build_minio "$tag"; fi ;;
    spark-operator)
      tag="fraudstream/spark-operator:${SPARK_OPERATOR_VERSION#v}"
      if image_present "$tag"; then say "image-spark-operator: up to date"
      else logged image-spark-operator build_spark_operator "$tag"; fi ;;
    cloudnative-pg)
      tag="fraudstream/cloudnative-pg:${CLOUDNATIVE_PG_VERSION#v}"
      if image_present "$tag"; then say "image-cloudnative-pg: up to date"
      else logged image-cloudnative-pg build_cloudnative_pg "$tag"; fi ;;
    *) die "unknown image '$name' (one of: ${ALL_IMAGES[*]})" ;;
  esac
  BUILT+=("$tag")
}

build_redis_exporter() { # TAG
  local ctx="$KIND_CACHE/redis-exporter" src="$KIND_CACHE/src/redis-exporter"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  module_tree github.com/oliver006/redis_exporter "$REDIS_EXPORTER_VERSION" "$src"
  go_build "$ctx/redis_exporter" "$src" . 0 "" "-X main.BuildVersion=${REDIS_EXPORTER_VERSION#v}"
  rm -rf "$src"
  docker_build -t "$1" -f "$ROOT/images/offline/redis-exporter/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

minio_version() { sed -n 's/^MINIO_VERSION = "\(.*\)"/\1/p' "$ROOT/src/fraudstream/platform/toolchain.py"; }

build_minio() { # TAG: the embedded platform's MinIO binary (built once, cached), in an image
  local ctx="$KIND_CACHE/minio" binary
  binary="$("$ROOT/.venv/bin/python" -c 'import sys; from pathlib import Path
from fraudstream.platform import toolchain
from fraudstream.settings import PlatformSettings
print(toolchain.minio_binary(PlatformSettings().cache_dir))')"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$binary" "$ctx/minio"
  docker_build --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$1" -f "$ROOT/images/offline/minio/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

build_spark_operator() { # TAG: controller and webhook from the Go module, on the offline Spark image
  local ctx="$KIND_CACHE/spark-operator" src="$KIND_CACHE/src/spark-operator"
  rm -rf "$ctx" && mkdir -p "$ctx"
  module_tree github.com/kubeflow/spark-operator/v2 "$SPARK_OPERATOR_VERSION" "$src"
  go_build "$ctx/spark-operator" "$src" ./cmd/operator 0 "" \
    "-X k8s.io/component-base/version.gitVersion=$SPARK_OPERATOR_VERSION"
  install -m 0755 "$src/entrypoint.sh" "$ctx/entrypoint.sh"  # module files are read-only
  rm -rf "$src"
  docker_build --build-arg SPARK_IMAGE=fraudstream/spark:4.2.0-python3.11 -t "$1" \
    -f "$ROOT/images/offline/spark-operator/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

build_cloudnative_pg() { # TAG: CloudNativePG's manager from its Go module
  local ctx="$KIND_CACHE/cloudnative-pg" src="$KIND_CACHE/src/cloudnative-pg"
  rm -rf "$ctx" && mkdir -p "$ctx"
  module_tree github.com/cloudnative-pg/cloudnative-pg "$CLOUDNATIVE_PG_VERSION" "$src"
  go_build "$ctx/manager" "$src" ./cmd/manager
  rm -rf "$src"
  docker_build --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$1" \
    -f "$ROOT/images/offline/cloudnative-pg/Dockerfile" "$ctx"
  rm -rf "$ctx"
}

# The images go to the registry beside the cluster, which every node pulls from: a layer the
# registry holds is not sent again, and a node fetches only the layers it lacks (its containerd
# keeps them unpacked only, kind's discard_unpacked_layers).
push_to_registry() {
  if ! docker inspect "$REGISTRY_CONTAINER" >/dev/null 2>&1; then
    say "no registry $REGISTRY_CONTAINER: images not pushed (make kind-up, then make images again)"
    return
  fi
  ensure_registry
  logged push push_all
  printf '%s\n' "${BUILT[@]}" >"$REGISTRY_PUSHED"
}

push_all() {
  local tag
  for tag in "${BUILT[@]}"; do
    echo "== $REGISTRY/$tag"
    push_image "$tag"
  done
  curl -sf "http://$REGISTRY/v2/_catalog"
  echo
  du -sh "$REGISTRY_DATA"
}

# Docker keeps the replaced versions of rebuilt images and every build's cache: keep the
# footprint bounded (the newest 4 GB of build cache stay, for fast rebuilds).
trim_docker() {
  docker image prune -f >/dev/null
  docker builder prune -f --keep-storage 4GB >/dev/null
}

main() {
  local start name
  start=$(date +%s)
  ensure_docker
  [[ $BASES == offline || $BASES == public ]] || die "IMAGE_BASES must be offline or public, not '$BASES'"
  [[ $BASES == public ]] || build_offline_bases
  for name in "${WANTED[@]}"; do
    if [[ $BASES == public ]] && printf '%s\n' "${OFFLINE_ONLY[@]}" | grep -qx "$name"; then continue; fi
    build_image "$name"
  done
  say "built in $(( $(date +%s) - start ))s:"
  docker image ls --format '  {{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -F -f <(printf '%s\n' "${BUILT[@]}") || true
  say "smoke checks (tests/kind/test_images.py)"
  FRAUDSTREAM_TEST_IMAGES="${BUILT[*]}" "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider "$ROOT/tests/kind/test_images.py"
  push_to_registry
  trim_docker
  say "docker now holds: $(docker system df --format '{{.Type}} {{.Size}}' | paste -sd, - | sed 's/,/, /g')"
  say "done in $(( $(date +%s) - start ))s"
}

# Sourced by scripts/kind/skaffold-build.sh for its functions; run, it builds.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
