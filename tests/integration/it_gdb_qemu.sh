#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The gdb adapter on a real emulated MCU: a Cortex-M3 firmware built here
# with arm-none-eabi-gcc, QEMU's lm3s6965evb halted at reset (-S) with its
# gdbstub and UART0 on loopback ports, and the agent programming it over the
# GDB Remote Serial Protocol. Between the agent and QEMU sits
# tests/tools/gdb_fault_proxy, which passes traffic untouched or injects one
# fault, chosen per lot through its mode file. Five lots of one board each:
#   pass     write at 0x0 (QEMU's gdbstub writes its flash), verify by
#            read-back, start from the vector table, boot banner = order's
#            version, lock word written and read back -> passed; board id
#            read from the part's DID0/DID1
#   corrupt  one bit flipped in the write on its way -> verify_mismatch
#   pass     order says 1.1.0 but the image boots as 1.0.0 -> version_mismatch
#   drop     the probe connection vanishes mid-write -> gdb_disconnected
#   stall    the probe never answers -> gdb_timeout within gdb.timeout_ms
# and, after the first, a lot that provisions the board against provisiond:
# the identity record (adapters/README.md) written to QEMU's RAM at
# gdb.identity_address, read back, parsed and compared by the agent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/pv_lib.sh"
PROXY=$(need_bin GDB_FAULT_PROXY_BIN)

for tool in qemu-system-arm arm-none-eabi-gcc arm-none-eabi-objcopy; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done

# firmware: prints "lineagent-fw boot version 1.0.0" on UART0
FW_SRC=$SRC/tests/firmware
arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -Os -ffreestanding -nostdlib -DFW_VERSION='"1.0.0"' \
  -T "$FW_SRC/boot_banner.ld" -o "$T/fw.elf" "$FW_SRC/boot_banner.c" || fail "firmware build"
arm-none-eabi-objcopy -O binary "$T/fw.elf" "$T/fw-1.0.0.bin"
FW=$T/fw-1.0.0.bin
FW_SHA=$(sha256sum "$FW" | cut -d' ' -f1)
pass "firmware built: $(stat -c %s "$FW") bytes, sha256 ${FW_SHA:0:16}..."

GDB_PORT=$(free_port); UART_PORT=$(free_port); PROXY_PORT=$(free_port)
while [ "$UART_PORT" = "$GDB_PORT" ]; do UART_PORT=$(free_port); done
while [ "$PROXY_PORT" = "$GDB_PORT" ] || [ "$PROXY_PORT" = "$UART_PORT" ]; do PROXY_PORT=$(free_port); done
qemu-system-arm -M lm3s6965evb -S -nographic -monitor none \
  -gdb "tcp:127.0.0.1:$GDB_PORT" -serial "tcp:127.0.0.1:$UART_PORT,server,nowait" >"$T/qemu.log" 2>&1 &
PIDS+=($!)
wait_for 10 "qemu gdbstub on $GDB_PORT" port_open "$GDB_PORT"
echo pass >"$T/proxy.mode"
"$PROXY" "$PROXY_PORT" "$GDB_PORT" "$T/proxy.mode" >"$T/proxy.out" 2>&1 &
PIDS+=($!)
wait_for 10 "gdb_fault_proxy" grep -q listening "$T/proxy.out"

make_pki "$T/pki"
write_pv_config "$T/pv.conf" 1
start_provisiond "$T/pv.conf"
start_mosquitto
start_kafka
P=$T/pki
write_config "$T/agent.conf" "[provisioning]
url = https://127.0.0.1:$PV_PORT
ca_file = $P/tlsca.pem
cert_file = $P/station1.pem
key_file = $P/station1.key
timeout_ms = 2000
[station prog1]
adapter = gdb
steps = write, verify, provision, lock
gdb.identity_address = 0x20001000
gdb.host = 127.0.0.1
gdb.port = $PROXY_PORT
gdb.load_address = 0x0
gdb.uid_address = 0x400FE000
gdb.uid_length = 8
gdb.console = 127.0.0.1:$UART_PORT
gdb.timeout_ms = 1500
gdb.boot_timeout_ms = 3000
gdb.lock_address = 0x20008000
gdb.lock_value = 0x4C4F434B"
start_agent "$T/agent.conf"

run_lot() { # run_lot N MODE VERSION [FLOW]
  echo "$2" >"$T/proxy.mode"
  publish -m "$(order_json "WO-G$1" 1 "LOT-G$1" 1 "$3" "$FW_SHA" "$FW" "${4:-[\"WRITE\",\"VERIFY\",\"LOCK\"]}")"
  wait_log "lot LOT-G$1 completed" 60
}
run_lot 1 pass 1.0.0
run_lot P pass 1.0.0 '["WRITE","VERIFY","PROVISION","LOCK"]'
run_lot 2 corrupt 1.0.0
run_lot 3 pass 1.1.0
t0=$(date +%s%N)
run_lot 4 drop 1.0.0
run_lot 5 stall 1.0.0
t_fail=$(( ($(date +%s%N) - t0) / 1000000 ))
stop_agent

# 5 x (order_accepted, lot_started, unit_completed, lot_completed) + unit_written + unit_locked + 4 unit_failed
# + LOT-GP: accepted, started, written, provisioned, locked, completed x 2
consume $((5 * 4 + 2 + 4 + 7))
check_integrity
E=$T/events.jsonl
ev() { jq -c --arg l "$1" --arg t "$2" 'select(.lotId==$l and .type==$t)' "$E" | head -1; }

w=$(ev LOT-G1 unit_written)
[ -n "$w" ] || fail "LOT-G1: no unit_written"
[ "$(jq -r .unitWritten.readbackSha256 <<<"$w")" = "$FW_SHA" ] || fail "LOT-G1 read-back: $w"
[ "$(jq -r .unitWritten.version <<<"$w")" = 1.0.0 ] || fail "LOT-G1 version: $w"
c=$(ev LOT-G1 unit_completed)
[ "$(jq -r .unitCompleted.passed <<<"$c")" = true ] || fail "LOT-G1 not passed: $c"
[ "$(jq -r .unitCompleted.firmwareSha256 <<<"$c")" = "$FW_SHA" ] || fail "LOT-G1 digest: $c"
bid=$(jq -r .boardId <<<"$c")
[[ "$bid" =~ ^[0-9A-F]{16}$ ]] && [ "$bid" != 0000000000000000 ] || fail "board id not read from the part: $bid"
[ "$(jq -r .unitLocked.verified <<<"$(ev LOT-G1 unit_locked)")" = true ] || fail "LOT-G1 lock not verified"
pass "LOT-G1: written at 0x0, read back ${FW_SHA:0:16}..., booted as 1.0.0, lock word written and read back, passed (board id $bid from DID0/DID1)"

# LOT-GP: the identity record went to QEMU's RAM and back, what the agent
# read back is what provisiond's ledger issued for this board
pv=$(ev LOT-GP unit_provisioned)
[ -n "$pv" ] || fail "LOT-GP: no unit_provisioned"
[ "$(jq -r .unitCompleted.passed <<<"$(ev LOT-GP unit_completed)")" = true ] || fail "LOT-GP not passed"
serial=$(jq -r .unitProvisioned.serial <<<"$pv")
[ -n "$serial" ] && [ "$serial" != null ] || fail "LOT-GP: no serial: $pv"
[ "$(sqlite3 "$T/ledger.db" "SELECT serial FROM units WHERE board_id = '$bid' AND lot_id = 'LOT-GP'")" = "$serial" ] \
  || fail "LOT-GP: $serial is not what the ledger issued for $bid"
[ "$(jq '.unitProvisioned.macs | length' <<<"$pv")" -ge 1 ] && jq -e '.unitProvisioned.deviceId | length > 0' <<<"$pv" >/dev/null \
  || fail "LOT-GP: MACs or device id missing: $pv"
sqlite3 "$T/ledger.db" "SELECT pem FROM certs c JOIN units u USING(cert_serial) WHERE u.serial = '$serial'" \
  | openssl x509 -outform DER | sha256sum | cut -d' ' -f1 >"$T/fp"
[ "$(jq -r .unitProvisioned.certificateSha256 <<<"$pv")" = "$(cat "$T/fp")" ] || fail "LOT-GP: certificate SHA-256"
grep -q "board $bid: provisioned serial $serial" "$AGENT_LOG" || fail "LOT-GP: not provisioned in the log"
pass "LOT-GP: identity record at 0x20001000 in QEMU's RAM read back and parsed: serial $serial, MACs, device id and certificate SHA-256 as the ledger issued"

expect_fail() { # expect_fail LOT STEP MODE
  local f; f=$(ev "$1" unit_failed)
  [ "$(jq -r .unitFailed.step <<<"$f")" = "$2" ] && [ "$(jq -r .unitFailed.failureMode <<<"$f")" = "$3" ] \
    || fail "$1: want $2/$3, got $f"
  [ "$(jq -r .station <<<"$f")" = prog1 ] || fail "$1: failure without its station: $f"
  [ "$(jq -r .unitCompleted.passed <<<"$(ev "$1" unit_completed)")" = false ] || fail "$1 counted as passed"
  [ -z "$(ev "$1" unit_written)" ] || fail "$1: unit_written for a board that failed"
  pass "$1: $2 failed $3 ($(jq -r .unitFailed.detail <<<"$f"))"
}
expect_fail LOT-G2 VERIFY verify_mismatch
expect_fail LOT-G3 VERIFY version_mismatch
jq -r .unitFailed.detail <<<"$(ev LOT-G3 unit_failed)" | grep -q "reports version 1.0.0" || fail "LOT-G3 detail"
expect_fail LOT-G4 WRITE gdb_disconnected
expect_fail LOT-G5 WRITE gdb_timeout
[ "$t_fail" -lt 20000 ] || fail "dropped and stalled probes took ${t_fail} ms: a station hung"
pass "dropped and stalled probe connections failed their units in ${t_fail} ms; the station went on"
