#!/bin/bash
# A `docker` for kind's commands on hosts whose containers cannot be privileged (the VM withholds
# CAP_SYS_RESOURCE, and docker's --privileged asks for every capability, so runc answers
# "unable to apply caps: operation not permitted"). up.sh puts it first on PATH for kind only:
#   run --privileged    -> the same grants one by one, minus CAP_SYS_RESOURCE
#   exec --privileged   -> a plain exec (the node container already holds those grants)
#   pull IMAGE          -> nothing when IMAGE is present locally (nothing is pulled offline)
# Everything else goes to the real client unchanged. FRAUDSTREAM_DOCKER names that client.
set -euo pipefail
real=${FRAUDSTREAM_DOCKER:?FRAUDSTREAM_DOCKER must name the real docker client}

# docker's --privileged, spelled out: every capability docker 20.10 knows except SYS_RESOURCE,
# no seccomp/AppArmor confinement, /proc and /sys unmasked, every device allowed.
privileged=(
  --security-opt=systempaths=unconfined --security-opt=seccomp=unconfined
  --security-opt=apparmor=unconfined --device-cgroup-rule="a *:* rwm"
  --device=/dev/fuse --device=/dev/kmsg
)
for cap in CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP \
  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE \
  SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_TIME SYS_TTY_CONFIG \
  MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM \
  BLOCK_SUSPEND AUDIT_READ; do
  privileged+=("--cap-add=$cap")
done

case ${1:-} in
  pull)
    if "$real" image inspect "${!#}" >/dev/null 2>&1; then exit 0; fi ;;
  run|exec)
    args=()
    for a in "$@"; do
      if [[ $a == --privileged ]]; then
        [[ $1 == run ]] && args+=("${privileged[@]}")
      else
        args+=("$a")
      fi
    done
    exec "$real" "${args[@]}" ;;
esac
exec "$real" "$@"
