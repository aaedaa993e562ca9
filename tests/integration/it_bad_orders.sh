#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bad input never stops the agent or disturbs an accepted lot: each bad order
# is answered on orders/result with a clear reason and recorded in Kafka as
# order_rejected; a protobuf order and a good JSON order still run. A
# rejection names the order (id, revision, lot) whenever they can be read;
# an order can read no file outside [firmware] allowed_urls, learns no
# digest of one, and a FIFO does not hang intake.
source "$(dirname "$0")/lib.sh"
command -v protoc >/dev/null || fail "protoc is not installed (deploy/deps.sh test installs it)"

start_mosquitto
start_kafka
BPS=100 STEP_MS=0 write_config "$T/agent.conf"
start_agent "$T/agent.conf"
start_results
make_firmware good 1.0.0
GOOD_SHA=$FW_SHA; GOOD=$FW_PATH
ZERO=0000000000000000000000000000000000000000000000000000000000000000

expect_reject() { # expect_reject N PATTERN: the Nth result is a rejection matching PATTERN
  wait_for 20 "result #$1" results_at_least "$1"
  local r; r=$(sed -n "${1}p" "$T/results.jsonl")
  [ "$(jq -r .accepted <<<"$r")" = false ] || fail "expected a rejection, got $r"
  jq -r .reason <<<"$r" | grep -qiE -- "$2" || fail "reason does not match /$2/: $r"
  pass "rejected: $(jq -r .reason <<<"$r")"
}

n=0
publish -m '{"orderId": "WO-X", "revision": 1,'; n=$((n+1)); expect_reject $n "json|line"
printf '\x0a\xff\xff\xff\x0f\x01' >"$T/junk.bin" # field 1 claims 4 GB: not a JobOrder
publish -f "$T/junk.bin"; n=$((n+1)); expect_reject $n "protobuf"
publish -m "$(order_json WO-Q 1 LOT-Q 0 1.0.0 "$GOOD_SHA" "$GOOD")"; n=$((n+1)); expect_reject $n "quantity"
publish -m "$(order_json WO-Q 1 LOT-Q 999999999 1.0.0 "$GOOD_SHA" "$GOOD")"; n=$((n+1)); expect_reject $n "quantity"
publish -m "$(order_json WO-S 1 LOT-S 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","FLASH"]')"; n=$((n+1)); expect_reject $n "FLASH"
r=$(sed -n "${n}p" "$T/results.jsonl")
[ "$(jq -r '[.orderId, .revision, .lotId] | join(" ")' <<<"$r")" = "WO-S 1 LOT-S" ] || fail "rejection lacks the ids: $r"
pass "a JSON order with an unknown step is rejected naming WO-S rev 1 LOT-S"
publish -m "$(order_json -rf 1 LOT-R 5 1.0.0 "$GOOD_SHA" "$GOOD")"; n=$((n+1)); expect_reject $n "order_id must not start with '-'"
# outside allowed_urls: refused before any I/O, the file's digest never told
PASSWD_SHA=$(sha256sum /etc/passwd | cut -d' ' -f1)
publish -m "$(order_json WO-E 1 LOT-E 5 1.0.0 $ZERO /etc/passwd)"; n=$((n+1)); expect_reject $n "not under \\[firmware\\] allowed_urls"
ln -s /etc/passwd "$T/passwd.bin"
mkfifo "$T/fifo.bin"
publish -m "$(order_json WO-L 1 LOT-L 5 1.0.0 $ZERO "$T/passwd.bin")"; n=$((n+1)); expect_reject $n "not a readable regular file"
publish -m "$(order_json WO-I 1 LOT-I 5 1.0.0 $ZERO "$T/fifo.bin")"; n=$((n+1)); expect_reject $n "not a readable regular file"
publish -m "$(order_json WO-U 1 LOT-U 5 1.0.0 $ZERO "$T/../../etc/passwd")"; n=$((n+1)); expect_reject $n "allowed_urls"
publish -m "$(order_json WO-W 1 LOT-W 5 1.0.0 $ZERO "$GOOD" | sed 's#file://#https://example.com#')"; n=$((n+1))
expect_reject $n "not under"
! grep -q "$PASSWD_SHA" "$T/results.jsonl" || fail "a rejection told the digest of /etc/passwd"
pass "file:///etc/passwd, a link to it, a FIFO, a dot-segment path and a foreign host: refused, no digest told"
publish -m "$(order_json WO-V 1 LOT-V 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","TEST"]')"; n=$((n+1)); expect_reject $n "verif"
publish -m "$(order_json WO-D 1 LOT-D 5 1.0.0 "$GOOD_SHA" "$GOOD" | sed 's/PRODUCTION/DEBUG/')"; n=$((n+1)); expect_reject $n "debug"
publish -m "$(order_json WO-L 1 LOT-L 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","TEST"]')"; n=$((n+1)); expect_reject $n "no LOCK"
publish -m '{"orderId":"WO-M","revision":1,"lotId":"LOT-M","product":"P","quantity":5,"flow":["WRITE","VERIFY"]}'; n=$((n+1)); expect_reject $n "firmware"
publish -m "$(order_json WO-H 1 LOT-H 5 1.0.0 $ZERO "$GOOD")"; n=$((n+1)); expect_reject $n "sha256 mismatch"
publish -m "$(order_json WO-F 1 LOT-F 5 1.0.0 "$GOOD_SHA" "$T/nope.bin")"; n=$((n+1)); expect_reject $n "nope.bin"
publish -m "$(order_json WO-P 1 LOT-P 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","PROVISION","LOCK"]')"; n=$((n+1)); expect_reject $n "provision"
head -c $((1024 * 1024 + 10)) /dev/zero | tr '\0' ' ' >"$T/big.json"
publish -f "$T/big.json"; n=$((n+1)); expect_reject $n "exceeds"

# a good order as protobuf binary, then stale revisions of it
cat >"$T/order.txt" <<TXT
order_id: "WO-G" revision: 2 lot_id: "LOT-G" product: "PCBA-100" quantity: 5
firmware { version: "1.0.0" sha256: "$GOOD_SHA" url: "file://$GOOD" build: PRODUCTION }
flow: WRITE flow: VERIFY flow: TEST flow: LOCK
TXT
protoc --encode=lineagent.v1.JobOrder -I"$SRC/proto" "$SRC/proto/lineagent/v1/job_order.proto" <"$T/order.txt" >"$T/order.bin"
publish -f "$T/order.bin"; n=$((n+1))
wait_for 20 "protobuf order result" results_at_least $n
[ "$(sed -n "${n}p" "$T/results.jsonl" | jq -r .accepted)" = true ] || fail "protobuf order not accepted: $(sed -n "${n}p" "$T/results.jsonl")"
pass "protobuf JobOrder accepted"
publish -m "$(order_json WO-G 2 LOT-G 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","TEST","LOCK"]')"; n=$((n+1)); expect_reject $n "ignored"
publish -m "$(order_json WO-G 1 LOT-G 5 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","TEST","LOCK"]')"; n=$((n+1)); expect_reject $n "ignored"
# same lot id under another order
publish -m "$(order_json WO-G2 1 LOT-G 5 1.0.0 "$GOOD_SHA" "$GOOD")"; n=$((n+1)); expect_reject $n "LOT-G"
wait_log "lot LOT-G completed" 30
# one version is one image: 1.0.0 under another digest is refused, naming both
make_firmware other 1.0.0
publish -m "$(order_json WO-O 1 LOT-O 1 1.0.0 "$FW_SHA" "$FW_PATH" '["WRITE","VERIFY","TEST","LOCK"]')"; n=$((n+1))
expect_reject $n "released as sha256 $GOOD_SHA; this order names sha256 $FW_SHA"
# a cached image that no longer re-hashes to its digest is fetched again, never
# written: its first chunk is zeroed; afterwards the chunks are the image again
sqlite3 "$T/spool.db" "PRAGMA busy_timeout = 5000; UPDATE firmware_chunk SET data = zeroblob(length(data))
  WHERE sha256 = '$GOOD_SHA' AND idx = 0" >/dev/null
publish -m "$(order_json WO-C 1 LOT-C 1 1.0.0 "$GOOD_SHA" "$GOOD" '["WRITE","VERIFY","TEST","LOCK"]')"; n=$((n+1))
wait_log "lot LOT-C completed" 30
grep -q "firmware ${GOOD_SHA:0:16}... in the spool re-hashes to" "$AGENT_LOG" || fail "corrupted cached image not noticed"
[ "$(sqlite3 "$T/spool.db" "SELECT hex(data) FROM firmware_chunk WHERE sha256 = '$GOOD_SHA' ORDER BY idx" | tr -d '\n')" \
  = "$(od -An -v -tx1 "$GOOD" | tr -d ' \n' | tr a-f A-F)" ] || fail "cached image not replaced by the fetched one"
pass "cached image re-hashed, found corrupt, fetched again; LOT-C ran"
kill -0 "$AGENT_PID" || fail "agent died"
stop_agent
pass "agent kept running; lots LOT-G and LOT-C completed"

consume $((n - 2 + 1 + 1 + 5 * 4 + 1 + 1 + 1 + 4 + 1))
check_integrity
rej=$(count_type order_rejected)
[ "$rej" -eq $((n - 2)) ] || fail "order_rejected events: $rej, want $((n - 2))"
[ "$(count_type unit_completed)" -eq 6 ] || fail "LOT-G and LOT-C units: $(count_type unit_completed)"
pass "$rej order_rejected events in Kafka; LOT-G's 5 units and LOT-C's one complete"
