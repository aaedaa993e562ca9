#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fuzz.sh - builds the libFuzzer harnesses of tests/fuzz with clang (ASan,
# UBSan, libFuzzer) in build/fuzz and runs each for SECONDS (default 60),
# one after the other, from its seed corpus (tests/fuzz/corpus/NAME, never
# written to: new inputs go to build/fuzz/corpus/NAME) and dictionary.
# A crash stops the run with the harness's exit code; the reproducer is
# left in build/fuzz/crashes/.
# `campaign` in place of SECONDS is the bar a release is held to: each
# harness runs 30 minutes or 10 million executions, whichever comes first.
# Usage: deploy/fuzz.sh [SECONDS|campaign] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
[ $# -gt 0 ] && shift
runs=()
if [ "$secs" = campaign ]; then
  secs=1800
  runs=(-runs=10000000)
fi
case $secs in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a number or 'campaign', not '$secs'" >&2; exit 2;; esac
build=build/fuzz
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINEAGENT_FUZZ=ON -DLINEAGENT_SANITIZE=ON \
  -DLINEAGENT_WERROR=OFF -DLINEAGENT_TESTS=OFF -DLINEAGENT_BENCH=OFF >/dev/null
cmake --build "$build" -j2 >/dev/null
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(fuzz_order fuzz_gdb_rsp fuzz_gdb_identity fuzz_exec_output fuzz_provision_answer fuzz_pv_request
                                         fuzz_trace_records fuzz_tracestore_record fuzz_config)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
mkdir -p "$build/crashes"
for h in "${harnesses[@]}"; do
  name=${h#fuzz_}
  work="$build/corpus/$name"
  mkdir -p "$work"
  dict=()
  [ -f "tests/fuzz/dict/$name.dict" ] && dict=(-dict="tests/fuzz/dict/$name.dict")
  echo "fuzz.sh: $h for ${secs}s" >&2
  rc=0
  "$build/tests/fuzz/$h" -max_total_time="$secs" "${runs[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/crashes/$name-" "${dict[@]}" "$work" "tests/fuzz/corpus/$name" \
    >"$build/$name.log" 2>&1 || rc=$?
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: " "$build/$name.log" | tail -3 >&2 || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz.sh: $h failed ($rc); see $build/$name.log and $build/crashes/" >&2
    tail -40 "$build/$name.log" >&2
    exit "$rc"
  fi
done
