#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The web page in a real browser (Debian's chromium, driven by playwright-core
# from tests/browser): while a lot with a mid-lot firmware change runs
# agent -> Kafka -> tracestore -> PostgreSQL, the "Lines now" tile's passed
# count rises without a reload and ends at the lot's passed count as the
# agent's events give it; then the lot page names the same boundary boards as
# `tracestore lot`, and a serial search shows its firmware and every
# measurement the agent recorded for it. Screenshots of each page are kept in
# the build folder (web-screenshots/) for a reviewer.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"
source "$(dirname "$0")/ts_lib.sh"

BROWSER_DIR=$SRC/tests/browser
command -v node >/dev/null || fail "node is not installed (deploy/deps.sh test installs nodejs)"
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || fail "chromium is not installed (deploy/deps.sh test installs it)"
[ -d "$BROWSER_DIR/node_modules/playwright-core" ] || fail "playwright-core is not installed (deploy/test.sh runs npm ci in tests/browser)"
SHOTS=${WEB_SHOTS_DIR:-$PWD/web-screenshots}
mkdir -p "$SHOTS"

write_pv_config "$T/pv.conf" 0
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka --topic "$TOPIC"
ts_setup
write_ts_config "$T/ts.conf" "[http]" "listen = 127.0.0.1:0"
start_tracestore "$T/ts.conf"
HTTP_PORT=$(sed -n 's/.*http: listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$TS_LOG")
[ -n "$HTTP_PORT" ] || fail "tracestore does not say where it listens"
URL=http://127.0.0.1:$HTTP_PORT

# The page and its files, as a browser gets them.
curl -fsS -D "$T/h" "$URL/" -o "$T/index.html" || fail "GET / failed"
grep -qi '^content-type: text/html' "$T/h" || fail "/ is not served as text/html"
curl -fsS -D "$T/h" "$URL/app.js" -o /dev/null && grep -qi '^content-type: text/javascript' "$T/h" || fail "app.js content type"
etag=$(sed -n 's/^[Ee][Tt]ag: *//p' "$T/h" | tr -d '\r')
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$URL/app.js")" = 304 ] || fail "app.js not revalidated by ETag"
pass "page files served with content types and ETag revalidation"

stations=("[station prog1]" "adapter = sim" "steps = write, verify" "sim.boards_per_second = 4"
  "[station prov1]" "adapter = sim" "steps = provision"
  "[station fct1]" "adapter = sim" "steps = test" "sim.fail_rate = 0.15" "sim.seed = 5"
  "[station lock1]" "adapter = sim" "steps = lock")
write_config "$T/agent.conf" "[provisioning]" "url = http://127.0.0.1:$PV_PORT" "${stations[@]}"
start_agent "$T/agent.conf"
make_firmware v1 1.0.0; SHA1=$FW_SHA; P1=$FW_PATH
make_firmware v2 1.1.0; SHA2=$FW_SHA; P2=$FW_PATH
QTY=40 LOT=LOT-WEB
FLOW='["WRITE","VERIFY","PROVISION","TEST","LOCK"]'

# "Lines now" opens before the lot starts and stays open through it.
FINAL=$T/final_passed
(cd "$BROWSER_DIR" && TS_URL=$URL LINE_KEY="$SITE/$LINE" READY_FILE=$T/ready FINAL_PASSED_FILE=$FINAL \
  SHOT_DIR=$SHOTS node web_check.mjs live) >"$T/live.out" 2>&1 &
LIVE_PID=$!
PIDS+=("$LIVE_PID")
wait_for 60 "the page's live feed" test -f "$T/ready"
publish -m "$(order_json WO-W 1 $LOT $QTY 1.0.0 "$SHA1" "$P1" "$FLOW")"
sleep 1.5
publish -m "$(order_json WO-W 2 $LOT $QTY 1.1.0 "$SHA2" "$P2" "$FLOW")"
wait_log "lot $LOT completed" 120
stop_agent
consume $((3 + QTY * 3 + 1))
check_integrity
E=$T/events.jsonl
passed=$(jq -s 'map(select(.type == "unit_completed" and .unitCompleted.passed)) | length' "$E")
echo "$passed" >"$FINAL"
rc=0; wait "$LIVE_PID" || rc=$?
cat "$T/live.out"
[ "$rc" -eq 0 ] || fail "the live tile check failed"
pass "Lines now: the tile rose live to the lot's $passed passed boards"

ts lot $LOT --json >"$T/lot.json" || fail "tracestore lot failed"
last_old=$(jq -r '.changeovers[0].lastOldBoard' "$T/lot.json")
first_new=$(jq -r '.changeovers[0].firstNewBoard' "$T/lot.json")
[ "$last_old" != null ] || fail "tracestore lot names no changeover"
# A provisioned, tested unit, and the measurements the agent recorded for it.
board=$(jq -r 'select(.type == "unit_tested") | .boardId' "$E" | head -1)
serial=$(jq -r --arg b "$board" 'select(.type == "unit_provisioned" and .boardId == $b) | .unitProvisioned.serial' "$E")
version=$(jq -r --arg b "$board" 'select(.type == "unit_written" and .boardId == $b) | .unitWritten.version' "$E")
names=$(jq -r --arg b "$board" 'select(.type == "unit_tested" and .boardId == $b) | .unitTested.measurements[].name' "$E" | paste -sd,)
[ -n "$serial" ] && [ -n "$names" ] || fail "no provisioned, tested unit to look up"
(cd "$BROWSER_DIR" && TS_URL=$URL LOT_ID=$LOT LAST_OLD=$last_old FIRST_NEW=$first_new SERIAL=$serial \
  SERIAL_VERSION=$version MEASUREMENTS=$names SHOT_DIR=$SHOTS node web_check.mjs pages) || fail "page checks failed"
pass "lot page boundary $last_old -> $first_new, unit $serial with $version and measurements $names"

# The recall list as CSV: one row per unit of the old release, plus the header.
n_old=$(jq -r '.versions["1.0.0"]' "$T/lot.json")
rows=$(curl -fsS "$URL/v1/firmware/1.0.0/units?format=csv" | wc -l)
[ "$rows" -eq $((n_old + 1)) ] || fail "recall CSV has $rows lines, want $((n_old + 1))"
pass "recall CSV lists the $n_old units of 1.0.0; screenshots in $SHOTS"
