# SPDX-License-Identifier: Apache-2.0
# pg_lib.sh - a private PostgreSQL server for the tracestore tests, the demo
# and the bench: initdb into a directory of the caller's, a free loopback
# port, no Unix socket, a random password (SCRAM) in a 0600 file. PostgreSQL
# refuses to run as root, so as root the server runs as user postgres, which
# is given the directory. Sourced, not run. Sets PG_DIR, PG_PORT,
# PG_PASSWORD_FILE and PG_CONNINFO (libpq, without the password); pg_psql
# runs psql on the database. The caller stops the server with pg_stop (its
# EXIT trap should call pg_stop_quiet).
# PG_TLS=on (tests only: it needs lib.sh's pki_ca and pki_issue): TCP over
# TLS 1.2 or later only, and a client certificate of the server's CA naming
# the user (clientcert=verify-full) besides the password; PG_TLS_DIR holds
# pgca.pem, the server's server.pem/.key (for 127.0.0.1 and localhost) and
# the client's tracestore.pem/.key, and PG_CONNINFO has sslmode=verify-full
# (the files go beside it: a config line is too short for all of them).
# shellcheck source=ports.sh
. "$(dirname "${BASH_SOURCE[0]}")/ports.sh"
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -n "$PG_BIN" ] || PG_BIN=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
for tool in initdb pg_ctl postgres; do
  [ -x "$PG_BIN/$tool" ] || { echo "FAIL: PostgreSQL's $tool is not installed (deploy/deps.sh test installs postgresql)"; exit 1; }
done
command -v psql >/dev/null || { echo "FAIL: psql is not installed (deploy/deps.sh test installs postgresql-client)"; exit 1; }
PG_USER=""
if [ "$(id -u)" -eq 0 ]; then
  PG_USER=postgres
  id -u "$PG_USER" >/dev/null 2>&1 || { echo "FAIL: running as root needs a user \"postgres\" to run the server"; exit 1; }
  command -v runuser >/dev/null || { echo "FAIL: running as root needs runuser (util-linux)"; exit 1; }
fi
pg_as() { if [ -n "$PG_USER" ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

# pg_init DIR [fsync on|off]: a new cluster with database and user tracestore, started.
pg_init() {
  PG_DIR=$1
  PG_TLS_DIR=""
  local fsync=${2:-on}
  mkdir -p "$PG_DIR"
  PG_PASSWORD_FILE=$PG_DIR/password
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$PG_PASSWORD_FILE")
  if [ -n "$PG_USER" ]; then
    chown -R "$PG_USER" "$PG_DIR"
    # the server's user must reach its directory through ours
    local d=$PG_DIR
    while d=$(dirname "$d"); [ "$d" != / ]; do chmod o+x "$d"; done
  fi
  pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U tracestore --pwfile="$PG_PASSWORD_FILE" -A scram-sha-256 \
    -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log"; echo "FAIL: initdb"; exit 1; }
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = $fsync
synchronous_commit = $fsync
shared_buffers = 128MB
max_wal_size = 2GB
CONF
  [ "${PG_TLS:-off}" != on ] || pg_tls_setup
  # A port found free can be taken before the server binds it (tests run in
  # parallel): another port then, a few times.
  local try
  for try in 1 2 3 4 5; do
    PG_PORT=$(free_port)
    rm -f "$PG_DIR/server.log"
    pg_start_once && break
    grep -q "Address already in use" "$PG_DIR/server.log" && [ "$try" -lt 5 ] \
      || { tail -20 "$PG_DIR/server.log"; echo "FAIL: PostgreSQL did not start"; exit 1; }
  done
  (umask 077; echo "127.0.0.1:$PG_PORT:*:tracestore:$(cat "$PG_PASSWORD_FILE")" >"$PG_DIR/pgpass")
  PG_CONNINFO="host=127.0.0.1 port=$PG_PORT dbname=tracestore user=tracestore connect_timeout=5"
  [ -z "$PG_TLS_DIR" ] || PG_CONNINFO="$PG_CONNINFO sslmode=verify-full"
  pg_psql_to "${PG_CONNINFO/dbname=tracestore/dbname=postgres}" -c "CREATE DATABASE tracestore" >/dev/null \
    || { echo "FAIL: createdb"; exit 1; }
}

# The PKI, the server's TLS settings and pg_hba.conf for PG_TLS=on.
pg_tls_setup() {
  declare -F pki_issue >/dev/null || { echo "FAIL: PG_TLS=on needs pki_ca and pki_issue (source lib.sh)"; exit 1; }
  PG_TLS_DIR=$PG_DIR/tls
  mkdir -p "$PG_TLS_DIR"
  (
    cd "$PG_TLS_DIR"
    pki_ca pgca
    pki_issue server pgca "subjectAltName=IP:127.0.0.1,DNS:localhost"
    pki_issue tracestore pgca "extendedKeyUsage=clientAuth" # CN = the user, for verify-full
    chmod 600 ./*.key
  )
  # Each key 0600 and owned by who reads it, or the server and libpq refuse it.
  [ -z "$PG_USER" ] || chown "$PG_USER" "$PG_TLS_DIR/server.key"
  cat >>"$PG_DIR/data/postgresql.conf" <<CONF
ssl = on
ssl_cert_file = '$PG_TLS_DIR/server.pem'
ssl_key_file = '$PG_TLS_DIR/server.key'
ssl_ca_file = '$PG_TLS_DIR/pgca.pem'
ssl_min_protocol_version = 'TLSv1.2'
CONF
  # There is no Unix socket: TCP over TLS with both password and certificate is the only way in.
  echo "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-full" >"$PG_DIR/data/pg_hba.conf"
}

pg_start_once() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null; }
pg_start() { pg_start_once || { tail -20 "$PG_DIR/server.log"; echo "FAIL: PostgreSQL did not start"; exit 1; }; }

pg_stop() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null; }
pg_stop_quiet() { [ -z "${PG_DIR:-}" ] || [ ! -f "$PG_DIR/data/postmaster.pid" ] || pg_stop 2>/dev/null || true; }

# pg_psql_to CONNINFO ARGS...: psql with the password and, under PG_TLS=on, the client's TLS files.
pg_psql_to() {
  local conn=$1
  shift
  [ -z "$PG_TLS_DIR" ] || conn="$conn sslrootcert=$PG_TLS_DIR/pgca.pem sslcert=$PG_TLS_DIR/tracestore.pem \
sslkey=$PG_TLS_DIR/tracestore.key"
  PGPASSFILE=$PG_DIR/pgpass psql -d "$conn" -XAtq "$@"
}
pg_psql() { pg_psql_to "$PG_CONNINFO" -v ON_ERROR_STOP=1 "$@"; }
