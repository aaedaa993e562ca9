/* SPDX-License-Identifier: Apache-2.0 */
/* ts_db.c - connections and migrations (ts_db.h). Migrations take an
 * advisory lock so two instances started at once do not both apply one. */
#include "ts_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_log.h"
#include "ts_schema.h"

#define TS_MIGRATE_LOCK "SELECT pg_advisory_lock(hashtext('tracestore.migrate'))"

/* Server notices ("relation already exists, skipping") are not news. */
static void ts_db_notice(void *arg, const char *msg) { ts_debug("PostgreSQL: %.*s", (int)strcspn(msg, "\n"), msg); }

PGconn *ts_db_connect(const ts_config *c, char *err, size_t err_len)
{
    /* The conninfo is expanded first; our name, the password and the TLS
     * files follow, so they apply on top of it. */
    const char *keys[7] = {"dbname", "application_name"}, *vals[7] = {c->pg_conninfo, "tracestore"};
    int n = 2;
    if (c->pg_password) keys[n] = "password", vals[n++] = c->pg_password; /* read at load */
    if (c->pg_sslrootcert) keys[n] = "sslrootcert", vals[n++] = c->pg_sslrootcert;
    if (c->pg_sslcert) keys[n] = "sslcert", vals[n++] = c->pg_sslcert;
    if (c->pg_sslkey) keys[n] = "sslkey", vals[n++] = c->pg_sslkey;
    PGconn *db = PQconnectdbParams(keys, vals, 1);
    if (!db || PQstatus(db) != CONNECTION_OK) {
        snprintf(err, err_len, "%s", db ? PQerrorMessage(db) : "out of memory");
        err[strcspn(err, "\n")] = '\0';
        PQfinish(db);
        return NULL;
    }
    PQsetNoticeProcessor(db, ts_db_notice, NULL);
    if (ts_db_exec(db, "SET TimeZone = 'UTC'", err, err_len)) {
        PQfinish(db);
        return NULL;
    }
    return db;
}

void ts_db_error(PGconn *db, const PGresult *r, char *err, size_t err_len)
{
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(db);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (!msg || !*msg) msg = PQerrorMessage(db);
    int n = (int)strcspn(msg, "\n");
    if (state) snprintf(err, err_len, "%.*s (SQLSTATE %s)", n, msg, state);
    else snprintf(err, err_len, "%.*s", n, msg);
}

int ts_db_data_error(const char *err)
{
    const char *s = strstr(err, "(SQLSTATE ");
    return s && (strncmp(s + 10, "22", 2) == 0 || strncmp(s + 10, "23", 2) == 0);
}

int ts_db_exec(PGconn *db, const char *sql, char *err, size_t err_len)
{
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok) ts_db_error(db, r, err, err_len);
    PQclear(r);
    return ok ? 0 : -1;
}

static int ts_db_version(PGconn *db, char *err, size_t err_len)
{
    if (ts_db_exec(db,
                   "CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   err, err_len))
        return -1;
    PGresult *r = PQexec(db, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    int v = PQresultStatus(r) == PGRES_TUPLES_OK ? atoi(PQgetvalue(r, 0, 0)) : -1;
    if (v < 0) snprintf(err, err_len, "%s", PQerrorMessage(db));
    PQclear(r);
    return v;
}

int ts_db_pending(PGconn *db, char *err, size_t err_len)
{
    int v = ts_db_version(db, err, err_len);
    return v < 0 ? -1 : ts_n_migrations - v;
}

int ts_db_migrate(PGconn *db, int to, char *err, size_t err_len)
{
    if (to < 0 || to > ts_n_migrations) {
        snprintf(err, err_len, "no migration %d (this tracestore knows 1 to %d)", to, ts_n_migrations);
        return -1;
    }
    if (ts_db_exec(db, TS_MIGRATE_LOCK, err, err_len)) return -1;
    int applied = 0, v = ts_db_version(db, err, err_len);
    if (to && v > to) {
        snprintf(err, err_len, "the schema is at migration %d, past %d: migrations only go forward", v, to);
        v = -1;
    }
    for (int i = 0; v >= 0 && i < ts_n_migrations; i++) {
        const ts_migration *m = &ts_migrations[i];
        if (m->version <= v || (to && m->version > to)) continue;
        if (ts_db_exec(db, "BEGIN", err, err_len) || ts_db_exec(db, m->sql, err, err_len)) {
            v = -1;
            break;
        }
        char ver[16];
        snprintf(ver, sizeof ver, "%d", m->version);
        const char *params[] = {ver, m->name};
        PGresult *r = PQexecParams(db, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, NULL,
                                   params, NULL, NULL, 0);
        int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) snprintf(err, err_len, "%s", PQerrorMessage(db));
        PQclear(r);
        if (!ok || ts_db_exec(db, "COMMIT", err, err_len)) {
            v = -1;
            break;
        }
        ts_info("migration %d applied: %s", m->version, m->name);
        applied++;
    }
    char unlock_err[64];
    if (v < 0) ts_db_exec(db, "ROLLBACK", unlock_err, sizeof unlock_err);
    ts_db_exec(db, "SELECT pg_advisory_unlock_all()", unlock_err, sizeof unlock_err);
    return v < 0 ? -1 : applied;
}
