#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The exec adapter end to end, in a test-first flow (TEST, WRITE, VERIFY,
# CALIBRATE, LOCK) with the order's test items and calibration limit. The
# external programs are one small script standing in for an FCT program, a
# programmer, a calibration rig and a lock tool. A two-site FCT station runs
# boards in parallel. Boards by arrival index:
#   3  vbus out of the order's limits -> TEST limit_exceeded, never written
#   5  i_idle not measured            -> TEST measurement_missing
#   6  lock not confirmed             -> LOCK lock_unverified
#   1, 2, 4 pass: calibrated by the agent's fit, locked, end-of-line checked.
source "$(dirname "$0")/lib.sh"

start_mosquitto
start_kafka
make_firmware v1 3.0.0

PROG=$T/station.sh
cat >"$PROG" <<'EOF'
#!/bin/bash
# station.sh STEP BOARD IMAGE SITE OFFSET GAIN
step=$1 board=$2 image=$3 site=$4
n=${board##*-B0000}
case $step in
  test)
    v=5.01; [ "$n" = 3 ] && v=4.20
    sleep 0.3 # long enough that the two sites overlap
    echo "FCT site $site board $board" >&2
    echo "{\"name\":\"vbus\",\"value\":$v,\"unit\":\"V\"}"
    [ "$n" = 5 ] || echo "{\"name\":\"i_idle\",\"value\":0.021,\"unit\":\"A\"}" ;;
  write) echo "$board" >>"$(dirname "$0")/writes" ;;
  verify) echo "{\"readback_sha256\":\"$(sha256sum <"$image" | cut -c1-64)\"}" ;;
  calibrate) x=0; for y in 1 3 5.02 7; do echo "{\"reference\":$y,\"raw\":$x}"; x=$((x+1)); done ;;
  calibrate_write) echo "{\"offset\":$5,\"gain\":$6}" ;;
  lock) [ "$n" = 6 ] || echo '{"lock_verified":true}' ;;
esac
EOF
chmod 700 "$PROG"

ARGS='{step} {board_id} {image} {site} {offset} {gain}'
write_config "$T/agent.conf" "[station fct1]
adapter = exec
steps = test
sites = 2
exec.program = $PROG
exec.args = $ARGS
exec.timeout_ms = 10000
[station prog1]
adapter = exec
steps = write, verify
exec.program = $PROG
exec.args = $ARGS
[station cal1]
adapter = exec
steps = calibrate, lock
exec.program = $PROG
exec.args = $ARGS"
# (the output whole first: grep -q stopping early would cut the pipe under pipefail)
out=$("$AGENT" check-config -c "$T/agent.conf") || fail "check-config: $out"
grep -q '^sites = 2$' <<<"$out" || fail "check-config does not show sites = 2"
# the adapters' own checks run at check-config too, naming the station
sed 's/^sites = 2$/sites = 0/' "$T/agent.conf" >"$T/bad1.conf"
out=$("$AGENT" check-config -c "$T/bad1.conf" 2>&1) && fail "sites = 0 accepted"
grep -q "\[station fct1\] sites: must be a whole number in 1..64" <<<"$out" || fail "sites = 0: $out"
sed "s|^exec.program = $PROG\$|exec.program = $T/missing|" "$T/agent.conf" >"$T/bad2.conf"
out=$("$AGENT" check-config -c "$T/bad2.conf" 2>&1) && fail "a missing program accepted"
grep -q "\[station fct1\] exec program $T/missing is not executable" <<<"$out" || fail "missing program: $out"
pass "check-config refuses sites = 0 and a missing exec program, naming the station"
start_agent "$T/agent.conf"

ITEMS='"testItems":[{"name":"vbus","low":4.75,"high":5.25,"unit":"V"},{"name":"i_idle","low":0,"high":0.05,"unit":"A"}],"testPlan":{"version":"FCT-7"},"calibrationMaxResidual":0.1'
order=$(order_json WO-E 1 LOT-E 6 3.0.0 "$FW_SHA" "$FW_PATH" '["TEST","WRITE","VERIFY","CALIBRATE","LOCK"]')
publish -m "${order%\}},$ITEMS}"
wait_log "lot LOT-E completed" 60
stop_agent

# order_accepted, lot_started, 6 unit_tested, 4 unit_written, 4 unit_calibrated,
# 3 unit_locked, 3 unit_failed, 6 unit_completed, lot_completed
consume 29
check_integrity
E=$T/events.jsonl
B() { printf 'LOT-E-B%05d' "$1"; }
ev() { jq -c --arg b "$(B "$1")" --arg t "$2" 'select(.boardId==$b and .type==$t)' "$E" | head -1; }

[ "$(sort "$T/writes" | tr '\n' ' ')" = "$(B 1) $(B 2) $(B 4) $(B 6) " ] || fail "writes: $(tr '\n' ' ' <"$T/writes")"
pass "test-first: the board failing TEST was never written ($(wc -l <"$T/writes") writes for 6 boards)"

f=$(ev 3 unit_failed)
[ "$(jq -r '.unitFailed.step + "/" + .unitFailed.failureMode + "/" + .station' <<<"$f")" = TEST/limit_exceeded/fct1 ] || fail "B3: $f"
t=$(ev 3 unit_tested)
jq -e '.unitTested.measurements[] | select(.name=="vbus") | .low == 4.75 and .high == 5.25 and .passed == false and .unit == "V"' <<<"$t" >/dev/null \
  || fail "B3 unit_tested does not carry the order's limits: $t"
[ "$(jq -r .unitTested.testPlan.version <<<"$t")" = FCT-7 ] || fail "unit_tested does not name the test plan: $t"
site=$(jq -r '.unitFailed.stationSite // 0' <<<"$f")
[[ "$site" =~ ^[01]$ ]] || fail "B3 failure without its site: $f"
pass "B3: TEST limit_exceeded at fct1 site $site, judged against the order's [4.75, 5.25] V"

f=$(ev 5 unit_failed)
[ "$(jq -r .unitFailed.failureMode <<<"$f")" = measurement_missing ] || fail "B5: $f"
jq -e '.unitTested.measurements[] | select(.name=="i_idle") | .passed == false and .value == "NaN"' <<<"$(ev 5 unit_tested)" >/dev/null \
  || fail "B5: the missing item is not recorded: $(ev 5 unit_tested)"
pass "B5: measurement_missing, recorded as NaN against [0, 0.05] A"

f=$(ev 6 unit_failed)
[ "$(jq -r '.unitFailed.step + "/" + .unitFailed.failureMode' <<<"$f")" = LOCK/lock_unverified ] || fail "B6: $f"
[ "$(jq -r .unitCompleted.passed <<<"$(ev 6 unit_completed)")" = false ] || fail "B6 passed with an unverified lock"
pass "B6: every test passed but the lock is unverified -> failed"

for n in 1 2 4; do
  c=$(ev $n unit_completed)
  [ "$(jq -r .unitCompleted.passed <<<"$c")" = true ] || fail "B$n not passed: $c"
  [ "$(jq -r .unitCompleted.firmwareSha256 <<<"$c")" = "$FW_SHA" ] || fail "B$n digest: $c"
  k=$(ev $n unit_calibrated)
  jq -e '.unitCalibrated.points == 4 and (.unitCalibrated.gain - 2 | fabs) < 0.01 and .unitCalibrated.residual < 0.1' <<<"$k" >/dev/null \
    || fail "B$n calibration: $k"
  [ "$(jq -r .unitLocked.verified <<<"$(ev $n unit_locked)")" = true ] || fail "B$n lock"
  [ "$(jq '[.unitTested.measurements[] | select(.passed)] | length' <<<"$(ev $n unit_tested)")" -eq 2 ] || fail "B$n tests"
done
pass "B1, B2, B4: tested, written, verified, calibrated by the agent's fit (gain $(jq -r .unitCalibrated.gain <<<"$(ev 1 unit_calibrated)")), locked, passed"
grep -q "station fct1 test: FCT site 1" "$AGENT_LOG" && grep -q "station fct1 test: FCT site 0" "$AGENT_LOG" \
  || fail "both FCT sites should have run boards (stderr goes to the log)"
pass "both FCT sites ran boards; the programs' stderr is in the agent log"

"$AGENT" trace --brokers "$BOOTSTRAP" --format summary --expect 29 --idle-ms 1500 --timeout-ms 60000 >"$T/summary.txt" \
  || fail "trace summary: $(cat "$T/summary.txt")"
grep -q "failures by station and site" "$T/summary.txt" || fail "summary lacks failures per fixture: $(cat "$T/summary.txt")"
fct=$(awk '$1=="fct1" && $2=="site" {n += $4} END {print n+0}' "$T/summary.txt")
cal=$(awk '$1=="cal1" && $2=="site" && $3=="0" {print $4}' "$T/summary.txt")
[ "$fct" -eq 2 ] && [ "$cal" = 1 ] || fail "failures per fixture: fct1 $fct, cal1 $cal: $(cat "$T/summary.txt")"
pass "summary: failures per station and site (fct1: $fct, cal1 site 0: $cal)"
