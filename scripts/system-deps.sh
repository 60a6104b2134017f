#!/usr/bin/env bash
# Installs the system prerequisites of the embedded platform when they are missing:
# a JDK 17+ and Maven (Kafka), PostgreSQL 15+ server binaries, Redis 7 (online store),
# Chromium (browser test), Go 1.24+ (builds MinIO).
# Uses apt-get on Debian/Ubuntu; elsewhere it prints what to install and fails.
set -euo pipefail

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }

need java openjdk-17-jdk-headless
need mvn maven
need redis-server redis-server   # the online store
need jq jq                       # the kind pod network agent (its unit test)
need chromium chromium           # the dashboard's browser test (Playwright drives it)
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi

go_ok() {
  command -v go >/dev/null 2>&1 || return 1
  local v; v=$(go env GOVERSION 2>/dev/null | sed 's/^go//'); [ -n "$v" ] || return 1
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  [ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 24 ]; }
}

if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "installing system packages: ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "error: missing ${missing[*]}; install them with your package manager (see README)" >&2
    exit 1
  fi
fi

# The Debian package starts a cluster of its own on port 5432; fraudstream runs its own server
# and does not need it, but leaves it alone.

if ! go_ok; then
  echo "error: Go 1.24 or newer is needed to build MinIO (found: $(go version 2>/dev/null || echo none))." >&2
  echo "       Install it from your distribution's backports or the official Go release, then retry." >&2
  exit 1
fi
echo "system prerequisites: java $(java -version 2>&1 | head -1 | cut -d'"' -f2), $(mvn -v 2>/dev/null | head -1 | cut -d' ' -f1-3), $(go env GOVERSION), postgres $(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)"
