#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deps.sh - installs the Debian packages lineagent needs that are missing.
# Usage: deploy/deps.sh [build|test|demo]   (test and demo include build)
set -euo pipefail

build=(cmake make gcc pkg-config protobuf-c-compiler libprotobuf-c-dev librdkafka-dev
       libpaho-mqtt-dev libsqlite3-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
       libinih-dev libjansson-dev libmicrohttpd-dev libgnutls28-dev libsystemd-dev libpq-dev)
# tracestore's database: the demo, the tests and the bench run a private server.
run=(mosquitto mosquitto-clients jq curl postgresql postgresql-client)
test=(libcmocka-dev protobuf-compiler gcc-arm-none-eabi qemu-system-arm sqlite3 openssl
      socat prometheus systemd dpkg-dev fakeroot chromium
      clang libclang-rt-dev) # clang + its libFuzzer runtime: deploy/fuzz.sh

case "${1:-build}" in
  build) want=("${build[@]}") ;;
  demo)  want=("${build[@]}" "${run[@]}") ;;
  test)  want=("${build[@]}" "${run[@]}" "${test[@]}") ;;
  *) echo "usage: $0 [build|test|demo]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The browser tests' Node.js and npm: by command, not by package, since a
# machine may have them from another Debian package (NodeSource's nodejs
# carries npm, and Debian's npm would conflict with it).
if [ "${1:-build}" = test ] && ! { command -v node && command -v npm; } >/dev/null; then
  missing+=(nodejs npm)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
# sudo only when it is needed: not root, and something to install.
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: not root and no sudo; as root: apt-get install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# mosquitto's package tries to start a system broker; the agent's scripts run
# their own on free loopback ports, so a refused service start is harmless.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
