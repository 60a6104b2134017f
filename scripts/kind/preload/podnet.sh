#!/bin/bash
# The pod network of the offline kind cluster: what kindnetd does for routing, as a small agent.
# kind's node image runs it as the `kindnet` DaemonSet (host network, NET_ADMIN) under kindnetd's
# image name, since kindnetd's source is a nested module the Go module proxy does not serve.
# On its node, every PODNET_INTERVAL seconds, it:
#   - writes the CNI configuration for the node's pod range (ptp + host-local + portmap);
#   - routes every other node's pod range through that node's address;
#   - masquerades pod traffic that leaves the pod network (POD_SUBNET), and nothing else, so pods
#     see each other's own addresses.
# It does not enforce NetworkPolicies (kindnetd does; see docs/kubernetes.md).
#
#   podnet              run the agent (in-cluster: HOST_IP, POD_SUBNET, the service account)
#   podnet plan HOST_IP < nodes.json
#                       print the CNI configuration and the routes for HOST_IP from a NodeList
set -euo pipefail

CNI_CONF=${CNI_CONF:-/etc/cni/net.d/10-kindnet.conflist}
INTERVAL=${PODNET_INTERVAL:-10}
SA=/var/run/secrets/kubernetes.io/serviceaccount

log() { printf '%s podnet: %s\n' "$(date -u +%FT%TZ)" "$*"; }

# node_table < NodeList JSON: one line per node with a pod range: NAME INTERNAL_IP POD_CIDR
node_table() {
  jq -r '.items[] | select(.spec.podCIDR != null)
    | [.metadata.name, (.status.addresses[] | select(.type == "InternalIP") | .address), .spec.podCIDR]
    | @tsv'
}

# cni_config POD_CIDR: the CNI configuration of a node whose pods take addresses in POD_CIDR.
cni_config() {
  jq -n --arg subnet "$1" '{
    cniVersion: "0.4.0", name: "kindnet",
    plugins: [
      {type: "ptp", ipMasq: false, mtu: 1500,
       ipam: {type: "host-local", dataDir: "/run/cni-ipam-state",
              routes: [{dst: "0.0.0.0/0"}], ranges: [[{subnet: $subnet}]]}},
      {type: "portmap", capabilities: {portMappings: true}}
    ]}'
}

# plan HOST_IP < NodeList: "cni <json>" for this node, "route <cidr> <via>" for every other one.
plan() {
  local host=$1 found=0 name ip cidr
  while IFS=$'\t' read -r name ip cidr; do
    if [[ $ip == "$host" ]]; then
      printf 'cni %s\n' "$(cni_config "$cidr" | jq -c .)"
      found=1
    else
      printf 'route %s %s\n' "$cidr" "$ip"
    fi
  done < <(node_table)
  if [[ $found == 0 ]]; then
    echo "podnet: no node with InternalIP $host has a pod range yet" >&2
    return 1
  fi
}

nodes() {
  curl -sf --cacert "$SA/ca.crt" -H "Authorization: Bearer $(cat "$SA/token")" \
    "https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}/api/v1/nodes"
}

masquerade() {
  local rule=(-s "$POD_SUBNET" ! -d "$POD_SUBNET" -m comment --comment fraudstream-podnet -j MASQUERADE)
  iptables -w -t nat -C POSTROUTING "${rule[@]}" 2>/dev/null || iptables -w -t nat -A POSTROUTING "${rule[@]}"
}

apply() {
  local kind rest conf
  while read -r kind rest; do
    case $kind in
      cni)
        conf=$rest
        if [[ "$(jq -c . "$CNI_CONF" 2>/dev/null)" != "$conf" ]]; then
          printf '%s\n' "$conf" | jq . >"$CNI_CONF.tmp" && mv "$CNI_CONF.tmp" "$CNI_CONF"
          log "wrote $CNI_CONF"
        fi ;;
      route)
        read -r cidr via <<<"$rest"
        if [[ "$(ip route show "$cidr")" != "$cidr via $via"* ]]; then
          ip route replace "$cidr" via "$via"
          log "route $cidr via $via"
        fi ;;
    esac
  done
}

run() {
  : "${HOST_IP:?HOST_IP (the node address) is not set}" "${POD_SUBNET:?POD_SUBNET is not set}"
  log "node $HOST_IP, pod network $POD_SUBNET"
  while true; do
    local current
    if current=$(nodes | plan "$HOST_IP"); then
      apply <<<"$current"
      masquerade
    else
      log "retrying in ${INTERVAL}s"
    fi
    sleep "$INTERVAL"
  done
}

case ${1:-run} in
  run) run ;;
  plan) plan "${2:?usage: podnet plan HOST_IP < nodes.json}" ;;
  *) echo "usage: podnet [run | plan HOST_IP]" >&2; exit 2 ;;
esac
