#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# package.sh - builds the Debian package (cpack -G DEB) from a Release build
# without tests or benchmarks, and prints the .deb's path on stdout.
# Usage: deploy/package.sh [BUILD_DIR]   (default build/package)
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/deps.sh build >&2
command -v dpkg-shlibdeps >/dev/null || { echo "package: dpkg-shlibdeps missing (apt-get install dpkg-dev)" >&2; exit 1; }
build=${1:-build/package}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DLINEAGENT_TESTS=OFF \
  -DLINEAGENT_BENCH=OFF -DLINEAGENT_SANITIZE=OFF -DLINEAGENT_PACKAGE=ON >&2
cmake --build "$build" -j"$(nproc)" >&2
(cd "$build" && cpack -G DEB >&2)
ls -t "$build"/lineagent_*.deb | head -1
