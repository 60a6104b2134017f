#!/bin/bash
# Makes the node's cgroup v1 mounts writable. Docker mounts them read-only unless a container is
# privileged, and a node here cannot be (the host withholds CAP_SYS_RESOURCE, which --privileged
# asks for). A bind remount is what works: a plain `remount,rw` answers "mount point is busy".
# Nothing to do on cgroup v2 hosts.
set -euo pipefail
[[ -f /sys/fs/cgroup/cgroup.controllers ]] && exit 0
while read -r _ target fstype options _; do
  if [[ $fstype == cgroup && $options == ro,* ]]; then
    mount -o remount,bind,rw "$target"
  fi
done < /proc/mounts
if grep -q ' /sys/fs/cgroup tmpfs ro,' /proc/mounts; then mount -o remount,rw /sys/fs/cgroup; fi
