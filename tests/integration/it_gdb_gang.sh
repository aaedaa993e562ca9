#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Gang programming on emulated MCUs: one gdb station with sites = 2 drives two
# QEMU lm3s6965evb boards, site k on gdb.port + k with its UART on the
# console port + k. A lot of 4 boards is written, verified by read-back,
# started and boot-checked, with both sites programming boards.
source "$(dirname "$0")/lib.sh"

for tool in qemu-system-arm arm-none-eabi-gcc arm-none-eabi-objcopy; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done
FW_SRC=$SRC/tests/firmware
arm-none-eabi-gcc -mcpu=cortex-m3 -mthumb -Os -ffreestanding -nostdlib -DFW_VERSION='"2.4.0"' \
  -T "$FW_SRC/boot_banner.ld" -o "$T/fw.elf" "$FW_SRC/boot_banner.c" || fail "firmware build"
arm-none-eabi-objcopy -O binary "$T/fw.elf" "$T/fw.bin"
FW_SHA=$(sha256sum "$T/fw.bin" | cut -d' ' -f1)

pair_port() { # a free port whose successor is free too
  local p
  for _ in $(seq 100); do
    p=$(free_port)
    port_open $((p + 1)) || { echo "$p"; return; }
  done
  fail "no two consecutive free ports"
}
GDB_PORT=$(pair_port)
UART_PORT=$(pair_port)
while [ $((UART_PORT - GDB_PORT)) -ge -1 ] && [ $((UART_PORT - GDB_PORT)) -le 1 ]; do UART_PORT=$(pair_port); done
for k in 0 1; do
  qemu-system-arm -M lm3s6965evb -S -nographic -monitor none -gdb "tcp:127.0.0.1:$((GDB_PORT + k))" \
    -serial "tcp:127.0.0.1:$((UART_PORT + k)),server,nowait" >"$T/qemu$k.log" 2>&1 &
  PIDS+=($!)
  wait_for 10 "qemu $k gdbstub on $((GDB_PORT + k))" port_open $((GDB_PORT + k))
done

start_mosquitto
start_kafka
LOG_LEVEL=debug write_config "$T/agent.conf" "[station prog1]
adapter = gdb
steps = write, verify, lock
sites = 2
gdb.port = $GDB_PORT
gdb.console = 127.0.0.1:$UART_PORT
gdb.timeout_ms = 3000
gdb.lock_address = 0x20008000
gdb.lock_value = 0x4C4F434B"
start_agent "$T/agent.conf"
publish -m "$(order_json WO-GANG 1 LOT-GANG 4 2.4.0 "$FW_SHA" "$T/fw.bin" '["WRITE","VERIFY","LOCK"]')"
wait_log "lot LOT-GANG completed" 90
stop_agent

consume $((1 + 1 + 4 * 3 + 1))
check_integrity
E=$T/events.jsonl
[ "$(jq -s 'map(select(.type=="unit_completed" and .unitCompleted.passed)) | length' "$E")" -eq 4 ] \
  || fail "not every board passed: $(jq -c 'select(.type=="unit_failed")' "$E")"
jq -e -s 'map(select(.type=="unit_written")) | length == 4 and all(.unitWritten.readbackSha256 == .unitWritten.sha256)' "$E" >/dev/null \
  || fail "unit_written"
s0=$(grep -c "station prog1 site 0: wrote" "$AGENT_LOG" || true)
s1=$(grep -c "station prog1 site 1: wrote" "$AGENT_LOG" || true)
grep -q "site 1: wrote .* via 127.0.0.1:$((GDB_PORT + 1))" "$AGENT_LOG" || fail "site 1 did not use gdb.port + 1"
[ "$s0" -ge 1 ] && [ "$s1" -ge 1 ] && [ $((s0 + s1)) -eq 4 ] || fail "sites: $s0 + $s1 boards"
pass "gang of 2 emulated MCUs: 4 boards written, read back and boot-checked as 2.4.0 (site 0: $s0, site 1: $s1)"
