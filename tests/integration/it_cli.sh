#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The command line: --version, check-config (effective config, secrets
# masked, the offending line on error), and a foreign spool file refused at
# start with a clear error, a non-zero exit and the file left untouched.
source "$(dirname "$0")/lib.sh"

"$AGENT" --version | grep -qE '^lineagent [0-9]+\.[0-9]+\.[0-9]+$' || fail "--version"
pass "--version: $("$AGENT" --version)"

out=$("$AGENT" check-config -c "$SRC/deploy/lineagent.conf" 2>&1) || fail "reference config rejected: $out"
grep -q '^\[station prog1\]' <<<"$out" || fail "effective config lacks the stations"
grep -q '^client_id = lineagent-plant1-smt3$' <<<"$out" || fail "default client_id not shown"
pass "check-config accepts deploy/lineagent.conf and shows defaults"

echo "s3cret-mqtt" >"$T/mqtt.pw"
BOOTSTRAP=embedded MQTT_PORT=1883 write_config "$T/secret.conf"
sed -i "s|^\[mqtt\]|[mqtt]\nusername = line1\npassword_file = $T/mqtt.pw|; s|^\[kafka\]|[kafka]\nsasl.password = s3cret-kafka|" "$T/secret.conf"
out=$("$AGENT" check-config -c "$T/secret.conf" 2>&1) || fail "secret config rejected: $out"
grep -q "s3cret" <<<"$out" && fail "a secret was printed: $out"
grep -q "sasl.password = \*\*\*\*\*\*\*\*" <<<"$out" || fail "sasl.password not shown masked"
pass "check-config masks secrets"

printf '[agent]\nsite = S\nline = L\nspool = x\nfrobnicate = yes\n' >"$T/bad.conf"
rc=0; out=$("$AGENT" check-config -c "$T/bad.conf" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "bad config accepted"
grep -q "bad.conf:5:.*frobnicate" <<<"$out" || fail "error does not name line 5: $out"
pass "bad config: exit $rc, \"$out\""

# a station configured for a step its adapter cannot perform (issue 20, finding 8)
BOOTSTRAP=embedded MQTT_PORT=1883 write_config "$T/steps.conf"
printf '[station prog9]\nadapter = gdb\nsteps = write, verify, test\ngdb.port = 3333\n' >>"$T/steps.conf"
rc=0; out=$("$AGENT" check-config -c "$T/steps.conf" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a gdb station with steps = test accepted"
grep -q "steps.conf:[0-9]*: \[station prog9\] steps: adapter gdb cannot perform test" <<<"$out" || fail "unclear: $out"
pass "a step the adapter cannot perform: exit $rc, \"$out\""

# a foreign file where the spool should be
printf 'SQLite format 3\0 but not really; quality records of another tool\n' >"$T/spool.db"
sum=$(sha256sum "$T/spool.db")
BOOTSTRAP=embedded MQTT_PORT=1883 write_config "$T/run.conf"
rc=0; "$AGENT" run -c "$T/run.conf" >"$T/agent-foreign.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "agent started on a foreign spool file"
grep -qi "spool" "$T/agent-foreign.log" || fail "no clear spool error: $(cat "$T/agent-foreign.log")"
[ "$(sha256sum "$T/spool.db")" = "$sum" ] || fail "the foreign file was modified"
ls "$T"/spool.db-* >/dev/null 2>&1 && fail "journal files were created beside the foreign file"
pass "foreign spool: exit $rc, file untouched: $(grep -i spool "$T/agent-foreign.log" | head -1)"

# a lineagent spool whose pages are damaged: refused at start, untouched
rm -f "$T"/spool.db*
"$AGENT" run -c "$T/run.conf" >"$T/agent-mk.log" 2>&1 &
mk=$!
wait_for 20 "agent up on a new spool" grep -q "running: site" "$T/agent-mk.log"
kill -TERM $mk; wait $mk || true
[ -s "$T/spool.db" ] && [ ! -e "$T/spool.db-wal" ] || fail "no clean spool to damage"
pages=$(( $(stat -c %s "$T/spool.db") / 4096 ))
for p in $(seq 1 $((pages - 1))); do # every page but the header page: b-tree headers to garbage
  printf '\x55\x55\x55\x55\x55\x55\x55\x55\x55\x55\x55\x55' | dd of="$T/spool.db" bs=1 seek=$((p * 4096)) conv=notrunc status=none
done
sum=$(sha256sum "$T/spool.db")
rc=0; "$AGENT" run -c "$T/run.conf" >"$T/agent-corrupt.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] || fail "agent started on a corrupt spool"
grep -q "corrupt\|malformed" "$T/agent-corrupt.log" || fail "no clear error: $(cat "$T/agent-corrupt.log")"
[ "$(sha256sum "$T/spool.db")" = "$sum" ] || fail "the corrupt spool was modified"
rc2=0; "$AGENT" spool stats -c "$T/run.conf" >/dev/null 2>&1 || rc2=$?
[ "$(sha256sum "$T/spool.db")" = "$sum" ] || fail "spool stats modified the corrupt spool"
pass "corrupt spool ($pages pages damaged): exit $rc, file untouched: $(grep -m1 -i "corrupt\|malformed" "$T/agent-corrupt.log" | cut -c30-200)"
