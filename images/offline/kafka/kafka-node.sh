#!/bin/sh
# Starts one node of a KRaft cluster run as a StatefulSet. The pod's ordinal is its node id; the
# first CONTROLLERS ordinals are combined controller+broker nodes (the static voter set), any
# further ordinal is a broker only, so `kubectl scale statefulset` adds or removes brokers and never
# touches the quorum. Storage is formatted once, with the cluster id every node shares.
#   KAFKA_CLUSTER_ID  the cluster id (kafka-storage random-uuid form)     required
#   KAFKA_SERVICE     the headless Service giving each pod its DNS name   required
#   CONTROLLERS       voters (default 3)   KAFKA_HEAP_MB  heap (default 512)
#   KAFKA_PARTITIONS, KAFKA_REPLICATION_FACTOR, KAFKA_MIN_ISR   topic defaults (6, 3, 2)
#   KAFKA_USERS_DIR   one folder per client user, named as the user, holding `password` (mounted
#                     Secrets): their SCRAM-SHA-512 credentials are written at format time
# Listeners: CLIENT 9092 (SASL_PLAINTEXT, SCRAM-SHA-512) for clients, INTERNAL 9094 (between
# brokers) and CONTROLLER 9093 (the quorum), both reachable only from the Kafka pods (the
# chart's NetworkPolicy).
set -eu
: "${KAFKA_CLUSTER_ID:?set KAFKA_CLUSTER_ID}" "${KAFKA_SERVICE:?set KAFKA_SERVICE}"
controllers=${CONTROLLERS:-3}
host=$(hostname)
ordinal=${host##*-}
case $ordinal in ''|*[!0-9]*) echo "kafka-node: pod name $host does not end in an ordinal" >&2; exit 2 ;; esac
domain="$KAFKA_SERVICE.${POD_NAMESPACE:-default}.svc"
prefix=${host%-*}
voters=""
i=0
while [ "$i" -lt "$controllers" ]; do
  voters="${voters:+$voters,}$i@$prefix-$i.$domain:9093"
  i=$((i + 1))
done
if [ "$ordinal" -lt "$controllers" ]; then
  roles="broker,controller"
  listeners="CLIENT://:9092,INTERNAL://:9094,CONTROLLER://:9093"
else
  roles="broker"
  listeners="CLIENT://:9092,INTERNAL://:9094"
fi
rf=${KAFKA_REPLICATION_FACTOR:-3}
isr=${KAFKA_MIN_ISR:-2}
mkdir -p "$KAFKA_DATA/data"
props="$KAFKA_DATA/server.properties"
cat > "$props" <<PROPS
process.roles=$roles
node.id=$ordinal
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=CLIENT://$host.$domain:9092,INTERNAL://$host.$domain:9094
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.client.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
log.dirs=$KAFKA_DATA/data
num.partitions=${KAFKA_PARTITIONS:-6}
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
auto.create.topics.enable=false
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
log.segment.bytes=268435456
PROPS
java_opts="-Xms${KAFKA_HEAP_MB:-512}m -Xmx${KAFKA_HEAP_MB:-512}m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
 -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -Djava.awt.headless=true \
 -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties"
classpath="/opt/kafka/libs/*"
if [ ! -f "$KAFKA_DATA/data/meta.properties" ]; then
  set --
  users=""
  for dir in "${KAFKA_USERS_DIR:-/etc/kafka-users}"/*/; do
    [ -f "$dir/password" ] || continue
    user=$(basename "$dir")
    set -- "$@" --add-scram "SCRAM-SHA-512=[name=$user,password=$(cat "$dir/password")]"
    users="$users $user"
  done
  echo "kafka-node: formatting $KAFKA_DATA/data as node $ordinal ($roles) of cluster $KAFKA_CLUSTER_ID;" \
    "SCRAM users:${users:- none}"
  # shellcheck disable=SC2086
  java $java_opts -cp "$classpath" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$props" --ignore-formatted "$@"
fi
echo "kafka-node: node $ordinal ($roles), voters $voters"
# shellcheck disable=SC2086
exec java $java_opts -cp "$classpath" kafka.Kafka "$props"
