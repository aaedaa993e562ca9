#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tracestore to PostgreSQL over TLS with client certificates: the private
# server takes TCP over TLS only (pg_lib.sh PG_TLS=on: TLS 1.2 at least,
# password and a client certificate naming the user, clientcert=verify-full).
# A TLS 1.0 and 1.1 handshake with it fail where TLS 1.2 succeeds;
# tracestore with sslmode=verify-full and its certificate migrates and
# stores events, its sessions encrypted and authenticated by the
# certificate (pg_stat_ssl). A wrong CA in sslrootcert, no client
# certificate, a server name that is not the certificate's and a client
# held to TLS 1.1 are each refused: tracestore logs the server and libpq's
# reason, and never the password.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/ts_lib.sh"

start_kafka --topic "$TOPIC"
PG_TLS=on ts_setup
P=$PG_TLS_DIR
tls_floor "$PG_PORT" "$P/pgca.pem" -starttls postgres
pass "PostgreSQL: TLS 1.0 and 1.1 handshakes fail where the same client's TLS 1.2 handshake succeeds"

# --- the good case: ts_setup migrated over TLS (the only way in); a run stores events
start_tracestore "$T/ts.conf"
"$TS_FEED" --brokers "$BOOTSTRAP" events 20 --lot-size 5 --tag tls >/dev/null || fail "ts_feed events"
wait_for 60 "tracestore to store the 20 events" offsets_at "$TOPIC" 20
[ "$(stored_events)" -eq 20 ] || fail "stored $(stored_events) events, fed 20"
sessions=$(ts_sql "SELECT count(*) FILTER (WHERE s.ssl AND s.version IN ('TLSv1.2', 'TLSv1.3')
                    AND s.client_dn = '/CN=tracestore') || ' of ' || count(*)
                   FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'tracestore'")
read -r good _ all <<<"$sessions"
[ "$good" -ge 1 ] && [ "$good" -eq "$all" ] || fail "tracestore's sessions over TLS with its certificate: $sessions"
stop_tracestore "$TS_PID"
pass "sslmode=verify-full with a client certificate: migrated, 20 events stored; tracestore's sessions: $sessions over TLS as CN=tracestore"

# --- refusals: refused WHAT PATTERN SED [ENV...]: with the config edited by
# SED, tracestore run cannot connect and logs the server and the reason
# (PATTERN), without the password.
refused() {
  local what=$1 pattern=$2
  sed -e "$3" "$T/ts.conf" >"$T/bad.conf"
  chmod 600 "$T/bad.conf"
  shift 3
  TS_RUN=$((TS_RUN + 1))
  TS_LOG="$T/tracestore$TS_RUN.log"
  env "$@" "$TRACESTORE" run -c "$T/bad.conf" >"$TS_LOG" 2>&1 &
  TS_PID=$!
  PIDS+=("$TS_PID")
  wait_for 20 "log line for $what" grep -qE -- \
    "PostgreSQL not reachable at start \(connection to server at .*port $PG_PORT failed: $pattern" "$TS_LOG"
  stop_tracestore "$TS_PID"
  ! grep -qF -- "$(cat "$PG_PASSWORD_FILE")" "$TS_LOG" || fail "$what: the password is in the log"
  pass "$what: refused; tracestore logs \"$(sed -n 's/.*not reachable at start (\(.*\)); waiting.*/\1/p' "$TS_LOG" | head -1)\""
}
mkdir -p "$T/rogue"
(cd "$T/rogue" && pki_ca rogueca)
refused "a wrong CA in sslrootcert" "SSL error: certificate verify failed" \
  "s#^sslrootcert = .*#sslrootcert = $T/rogue/rogueca.pem#"
refused "no client certificate" "FATAL: +connection requires a valid client certificate" "/^ssl\(cert\|key\) = /d"
grep -q "connection requires a valid client certificate" "$PG_DIR/server.log" \
  || fail "PostgreSQL did not log the missing client certificate"
refused "a server name not in its certificate" "server certificate for .* does not match host name \"pg.invalid\"" \
  "s#host=127.0.0.1#host=pg.invalid hostaddr=127.0.0.1#"
# Held to TLS 1.1, at security level 0 so that OpenSSL 3 offers it at all.
printf '%s\n' "openssl_conf = init" "[init]" "ssl_conf = ssl" "[ssl]" "system_default = sys" "[sys]" \
  "CipherString = DEFAULT@SECLEVEL=0" >"$T/seclevel0.cnf"
refused "a client held to TLS 1.1" "SSL error: .*(protocol version|unsupported protocol)" \
  "s#^conninfo = .*#& ssl_min_protocol_version=TLSv1 ssl_max_protocol_version=TLSv1.1#" OPENSSL_CONF="$T/seclevel0.cnf"
grep -q "could not accept SSL connection: unsupported protocol" "$PG_DIR/server.log" \
  || fail "PostgreSQL did not log the TLS 1.1 refusal: $(tail -5 "$PG_DIR/server.log")"
pass "PostgreSQL logs the missing client certificate and the TLS 1.1 handshake it refused"
