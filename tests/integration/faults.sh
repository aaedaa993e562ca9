# SPDX-License-Identifier: Apache-2.0
# faults.sh - checks shared by the fault tests (label "faults"); sourced
# after lib.sh. Each prints the figures it verified.

# A spool figure from `lineagent spool stats` (pending, next_seq, ...).
spool_field() { "$AGENT" spool stats -c "$1" 2>/dev/null | sed -n "s/^$2: \([0-9-]*\).*/\1/p"; }
spool_field_is() { [ "$(spool_field "$1" "$2")" = "$3" ]; }
# Events the forwarder had to send again (refused, or withdrawn at a stop
# or with a failed producer): it logs them as one line per round, counted.
events_sent_again() {
  { grep -oE "kafka: [0-9]+ events (not delivered|in flight were withdrawn)" "$AGENT_LOG" || true; } |
    awk '{n += $2} END {print n + 0}'
}

# Per lot (Kafka key), the first copy of each event_id in partition order
# comes in seq order: re-sends may repeat an event later, never reorder.
check_lot_order() {
  jq -s -e 'group_by(.kafka.key) | all(
      sort_by(.kafka.offset) |
      [foreach .[] as $e ({seen: {}, out: null};
         if .seen[$e.eventId] then .out = null else .seen[$e.eventId] = true | .out = $e.seq end;
         .out) | select(. != null)] as $s | $s == ($s | sort))' "$T/events.jsonl" >/dev/null ||
    fail "a lot's events are out of order in Kafka"
  pass "order per lot kept ($(jq -s 'map(.kafka.key) | unique | length' "$T/events.jsonl") keys)"
}

# check_units LOT QTY: every board of the lot has each step event, exactly
# one outcome (unit_completed, never two different ones), and the lot
# completed with counts adding up to QTY.
check_units() {
  local lot=$1 qty=$2 t n
  for t in unit_written unit_tested unit_calibrated unit_locked unit_completed; do
    n=$(jq -s --arg l "$lot" --arg t "$t" 'map(select(.lotId == $l and .type == $t)) | unique_by(.boardId) | length' "$T/events.jsonl")
    [ "$n" -eq "$qty" ] || fail "$lot: $t for $n of $qty boards"
  done
  jq -s -e --arg l "$lot" 'map(select(.lotId == $l and .type == "unit_completed")) | group_by(.boardId) |
      all(unique_by(.eventId) | length == 1)' "$T/events.jsonl" >/dev/null ||
    fail "$lot: a board was reported completed twice (different event ids)"
  jq -s -e --arg l "$lot" --argjson q "$qty" 'map(select(.lotId == $l and .type == "lot_completed")) |
      unique_by(.eventId) | length == 1 and (.[0].lotCompleted.passed + .[0].lotCompleted.failed == $q)' \
      "$T/events.jsonl" >/dev/null || fail "$lot: no single lot_completed adding up to $qty"
  pass "$lot: all $qty boards have every step event and exactly one outcome; lot completed"
}

# Duplicates are only re-sends: same event_id -> identical seq, type, board.
check_duplicates() {
  local total distinct
  total=$(wc -l <"$T/events.jsonl")
  distinct=$(jq -s 'unique_by(.eventId) | length' "$T/events.jsonl")
  jq -s -e 'group_by(.eventId) | all(map([.seq, .type, .boardId, .lotId]) | unique | length == 1)' \
    "$T/events.jsonl" >/dev/null || fail "an event_id was reused for different content"
  pass "$total records, $distinct distinct events, $((total - distinct)) duplicates, all re-sends of the same event"
}
