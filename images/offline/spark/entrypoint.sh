#!/bin/bash
# The container entrypoint of the offline Spark base, for Spark on Kubernetes. Spark's Kubernetes
# backend starts driver pods with the arguments `driver <spark-submit arguments>` and executor pods
# with `executor` and SPARK_* variables (the driver's URL, the executor's id, cores, memory, pod
# address); anything else runs as given.
set -euo pipefail

classpath="$SPARK_HOME/jars/*"
[[ -n "${SPARK_EXTRA_CLASSPATH:-}" ]] && classpath="$classpath:$SPARK_EXTRA_CLASSPATH"
[[ -n "${SPARK_CLASSPATH:-}" ]] && classpath="$classpath:$SPARK_CLASSPATH"
[[ -d "${SPARK_CONF_DIR:-}" ]] && classpath="${SPARK_CONF_DIR}:$classpath"

# SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ... in order: the executor's JVM options.
java_opts=()
while IFS='=' read -r name _; do
  java_opts+=("${!name}")
done < <(env | grep -E '^SPARK_JAVA_OPT_[0-9]+=' | sort -t_ -k4 -n)

case "${1:-}" in
  driver)
    shift
    exec tini -s -- "$SPARK_HOME/bin/spark-submit" \
      --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:?}" \
      --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}" \
      --deploy-mode client "$@" ;;
  executor)
    shift
    exec tini -s -- "$JAVA_HOME/bin/java" "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY:?}" -Xmx"$SPARK_EXECUTOR_MEMORY" -cp "$classpath" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL:?}" --executor-id "${SPARK_EXECUTOR_ID:?}" \
      --cores "${SPARK_EXECUTOR_CORES:?}" --app-id "${SPARK_APPLICATION_ID:?}" \
      --hostname "${SPARK_EXECUTOR_POD_IP:?}" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME:-}" "$@" ;;
  *)
    exec "$@" ;;
esac
