#!/usr/bin/env bash
# make kind-dev: `skaffold dev` (or SKAFFOLD=run, SKAFFOLD=delete) on the kind cluster of
# `make kind-up`, profile offline: builds the project's images as `make images` does and pushes
# them to the registry beside the cluster, installs the Spark Operator, charts/offline-stack, the
# online store and the platform (the first champion trained at install), port-forwards Airflow
# (8080), MLflow (5000) and the API (8000), then rebuilds and redeploys on every change to the
# files an image is built from. `make kind-e2e` deploys through it (SKAFFOLD=run).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$KIND_DIR/registry.sh"
[[ -f "$KUBECONFIG_FILE" ]] || die "no cluster ($KUBECONFIG_FILE missing): run \`make kind-up\` and \`make images\` first"
registry_answers || die "the registry http://$REGISTRY does not answer: run \`make kind-up\` (it starts it)"
chart="${FRAUDSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fraudstream}/k8s/spark-operator-chart"
[[ -f "$chart/Chart.yaml" ]] || die "the Spark Operator's chart is missing ($chart): run \`make k8s-tools\`"
# Relative to the clone: skaffold joins a chartPath to the config's folder before it expands it.
export KUBECONFIG="$KUBECONFIG_FILE" FRAUDSTREAM_SPARK_OPERATOR_CHART="$(realpath --relative-to="$ROOT" "$chart")"
export PATH="$KIND_BIN:$(dirname "$KIND_CACHE")/bin:$PATH"
# skaffold writes into its global configuration (prompts it showed): give it a copy.
cp "$KIND_DIR/skaffold-config.yaml" "$KIND_CACHE/skaffold-config.yaml"
cd "$ROOT"
command=${SKAFFOLD:-dev} labels=()
# skaffold labels every object and pod template with its run's id, a new one per invocation, so a
# second `skaffold run` (a second `make kind-e2e`) restarted every pod of every release, Kafka's
# included, and the scorer's driver died mid-check. One id per cluster keeps a re-run to the
# objects that changed (skaffold's status check follows the id it is given).
[[ $command == delete ]] || labels=(--label "skaffold.dev/run-id=kind-$KIND_CLUSTER")
exec skaffold "$command" -p offline --config "$KIND_CACHE/skaffold-config.yaml" \
  --kube-context "kind-$KIND_CLUSTER" --update-check=false --interactive=false "${labels[@]}" "$@"
