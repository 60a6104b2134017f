# Shared by the scripts in scripts/kind: the pins, the cache folders, logging and the step runner.
# Sourced, never run. Every download and build lands under $KIND_CACHE, outside the clone.
# shellcheck shell=bash

KIND_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$KIND_DIR/../.." && pwd)"
# shellcheck source=scripts/kind/versions.env
source "$KIND_DIR/versions.env"

KIND_CACHE="${FRAUDSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fraudstream}/kind"
KIND_BIN="$KIND_CACHE/bin"        # kind, kubectl, helm, skaffold and the docker shim
KIND_OUT="$KIND_CACHE/out"        # built binaries, per version
KIND_LOGS="$KIND_CACHE/logs"      # one log per step
KIND_STAMPS="$KIND_CACHE/stamps"  # one file per finished step, holding the pins it was built with
KIND_CLUSTER="${KIND_CLUSTER:-fraudstream}"
KUBECONFIG_FILE="$KIND_CACHE/kubeconfig"
NODE_IMAGE="fraudstream/kind-node:$KUBERNETES_VERSION"
DEBIAN_IMAGE="fraudstream/debian:$DEBIAN_SUITE"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Go builds keep their own build cache here, removed once the node image is saved
# (KIND_KEEP_GO_CACHE=1 keeps it): it is the largest part of the footprint.
export GOCACHE="${KIND_GOCACHE:-$KIND_CACHE/go-build}"
export GOFLAGS="-buildvcs=false -mod=mod" GOWORK=off
mkdir -p "$KIND_BIN" "$KIND_OUT" "$KIND_LOGS" "$KIND_STAMPS"

say() { printf '\033[1mkind:\033[0m %s\n' "$*"; }
die() { printf 'error (kind): %s\n' "$*" >&2; exit 1; }

# logged NAME COMMAND...: runs COMMAND with its output in $KIND_LOGS/NAME.log. A failure names
# the step, its time, the log and the log's last lines, and exits.
logged() {
  local name=$1 log="$KIND_LOGS/$1.log" start
  shift
  start=$(date +%s)
  say "$name: running (log: $log)"
  # In the background, so that `set -e` holds inside the step (bash ignores it in an `if` test).
  (set -e; "$@") >"$log" 2>&1 &
  if ! wait $!; then
    printf 'error (kind): step "%s" failed after %ss. Last lines of %s:\n' "$name" "$(( $(date +%s) - start ))" "$log" >&2
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
  say "$name: done in $(( $(date +%s) - start ))s"
}

# run_step NAME PINS COMMAND...: logged, unless the step already finished with the same PINS.
run_step() {
  local name=$1 pins=$2
  shift 2
  if [[ "$(cat "$KIND_STAMPS/$name" 2>/dev/null)" == "$pins" ]]; then
    say "$name: up to date"
    return 0
  fi
  rm -f "$KIND_STAMPS/$name"
  logged "$name" "$@"
  printf '%s' "$pins" >"$KIND_STAMPS/$name"
}

# forget STEP...: the steps run again next time (their output is gone).
forget() {
  local step
  for step in "$@"; do rm -f "$KIND_STAMPS/$step"; done
}

# files_hash PATH...: a short digest of files' contents, so that a change to a recipe rebuilds.
files_hash() {
  cat "$@" | sha256sum | cut -c1-12
}

# The docker engine: Debian's docker.io, installed when missing and started when no daemon answers.
ensure_docker() {
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing Debian's docker.io engine (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null \
      || die "apt-get install docker.io failed: run it by hand to see why"
  fi
  if docker info >/dev/null 2>&1; then return 0; fi
  say "starting dockerd (log: $KIND_LOGS/dockerd.log)"
  setsid dockerd >>"$KIND_LOGS/dockerd.log" 2>&1 < /dev/null &
  local i
  for i in $(seq 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "dockerd did not answer within 60 s; see $KIND_LOGS/dockerd.log"
}

# The build's own prerequisites: Go (the module proxy's client), a C compiler and libseccomp's
# headers (runc and pause), debootstrap (the Debian base). Debian's packages when missing.
ensure_build_tools() {
  command -v go >/dev/null 2>&1 || die "Go is missing: install Go 1.24+ (make system-deps checks it)"
  local missing=() package
  for package in debootstrap libseccomp-dev gcc libc6-dev; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  say "installing ${missing[*]} (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed: run it by hand to see why"
}

# module_source MODULE VERSION DEST: a writable copy of a Go module without vendor/ and go.work.
module_source() {
  local module=$1 version=$2 dest=$3 dir
  dir="$(go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  cp -r "$dir" "$dest"
  chmod -R u+w "$dest"
  rm -rf "$dest/vendor" "$dest/go.work" "$dest/go.work.sum"
}

# drop_local_replaces DIR: removes the replace directives that point into the module's own tree
# (a module zip leaves nested modules out), so their published versions are used instead.
drop_local_replaces() {
  local old
  for old in $(cd "$1" && go mod edit -json | python3 "$KIND_DIR/gomod.py" local-replaces); do
    (cd "$1" && go mod edit -dropreplace="$old")
  done
}

# module_tree MODULE VERSION DEST: module_source, then drop_local_replaces.
module_tree() {
  module_source "$@"
  drop_local_replaces "$3"
}

image_present() { docker image inspect "$1" >/dev/null 2>&1; }
