#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh - installs what is missing, builds with -Wall -Wextra -Werror and
# ASan/UBSan, and runs every test (unit and integration) through ctest; then,
# on a full run, the benchmark harness once at tiny sizes (a Release build
# with -Werror, which sees warnings the Debug build does not; no figures are
# asserted), and each libFuzzer harness for 20 s (deploy/fuzz.sh 20).
# Usage: deploy/test.sh [ctest args...]   e.g. deploy/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/deps.sh test
# playwright-core for the browser tests, from the lock file (no browser
# download: the tests drive Debian's chromium).
if [ ! tests/browser/node_modules/.package-lock.json -nt tests/browser/package-lock.json ]; then
  echo "test.sh: npm ci in tests/browser (playwright-core)"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
build=build/test
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DLINEAGENT_SANITIZE=ON -DLINEAGENT_WERROR=ON -DLINEAGENT_FAULT_INJECTION=ON >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd "$build" && ctest --output-on-failure -j2 "$@")
if [ $# -eq 0 ]; then
  echo "test.sh: benchmark harness smoke run (deploy/bench.sh --smoke)"
  deploy/bench.sh --smoke >/dev/null
  echo "test.sh: fuzz harness smoke run, 20 s each (deploy/fuzz.sh 20)"
  deploy/fuzz.sh 20
fi
