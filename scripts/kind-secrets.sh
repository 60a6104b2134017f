#!/usr/bin/env bash
# Creates the Secrets a kind cluster needs, with random values, when they do not exist yet
# (idempotent: existing Secrets are left alone). Run by `skaffold dev` before Kafka and Postgres
# are applied; in staging, create these Secrets from your secret store instead. Values never
# leave the cluster.
#   kind-secrets.sh [NAMESPACE] [online|offline]
# offline: also the Secrets Strimzi's KafkaUsers would write in the online profile, one password
# per Kafka user, for charts/offline-stack's Kafka. CloudNativePG runs in both profiles and writes
# the application owner's Secret (fraudstream-postgres-app) itself.
set -euo pipefail
NS="${1:-fraudstream}"
PROFILE="${2:-online}"
[[ $PROFILE == online || $PROFILE == offline ]] || { echo "kind-secrets: profile must be online or offline, not '$PROFILE'" >&2; exit 2; }

random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

ensure() { # namespace, name, then key=value pairs
  local ns=$1 name=$2
  shift 2
  if kubectl -n "$ns" get secret "$name" >/dev/null 2>&1; then return; fi
  local args=()
  # CloudNativePG reads role passwords from basic-auth Secrets.
  [[ "$name" == fraudstream-postgres-* ]] && args+=(--type=kubernetes.io/basic-auth)
  for pair in "$@"; do args+=("--from-literal=$pair"); done
  kubectl -n "$ns" create secret generic "$name" "${args[@]}" >/dev/null
  echo "kind-secrets: created $ns/$name"
}

airflow_password="$(kubectl -n "$NS" get secret fraudstream-postgres-airflow \
  -o jsonpath='{.data.password}' 2>/dev/null | base64 -d || true)"
airflow_password="${airflow_password:-$(random)}"

# MinIO reads rootUser/rootPassword; every S3 client (platform, MLflow, training pods) reads
# access-key/secret-key, the names a real S3 Secret has in staging.
s3_user="fs$(random | cut -c1-14)"
s3_password="$(random)"
ensure "$NS" fraudstream-s3 "rootUser=$s3_user" "rootPassword=$s3_password" \
  "access-key=$s3_user" "secret-key=$s3_password"
ensure "$NS" fraudstream-postgres-mlflow username=mlflow "password=$(random)"
ensure "$NS" fraudstream-postgres-airflow username=airflow "password=$airflow_password"
ensure "$NS" fraudstream-airflow-metadata \
  "connection=postgresql+psycopg2://airflow:$airflow_password@fraudstream-postgres-rw:5432/airflow"
ensure "$NS" fraudstream-airflow-api-secret-key "api-secret-key=$(random)"
# The Airflow UI's admin (the offline profile's Airflow, simple auth manager: user -> password).
airflow_admin="$(random)"
ensure "$NS" fraudstream-airflow-admin username=admin "password=$airflow_admin" \
  "passwords.json={\"admin\": \"$airflow_admin\"}"
ensure "$NS" fraudstream-redis "password=$(random)"
ensure "$NS" fraudstream-api-token "token=$(random)" "read-token=$(random)"
# A Secret made before the API had a read-only role gets the analyst's token added.
read_token="$(kubectl -n "$NS" get secret fraudstream-api-token \
  -o go-template='{{if index .data "read-token"}}present{{end}}')"
if [[ $read_token != present ]]; then
  kubectl -n "$NS" patch secret fraudstream-api-token --type merge \
    -p "{\"stringData\": {\"read-token\": \"$(random)\"}}" >/dev/null
  echo "kind-secrets: added read-token to $NS/fraudstream-api-token"
fi
if [[ $PROFILE == offline ]]; then
  for user in fraudstream-scorer fraudstream-api fraudstream-generator fraudstream-label-ingest fraudstream-trainer; do
    ensure "$NS" "$user" "password=$(random)"
  done
  exit 0
fi
ensure monitoring grafana-admin admin-user=admin "admin-password=$(random)"
