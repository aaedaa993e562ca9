/* SPDX-License-Identifier: Apache-2.0 */
/* ts_db.h - PostgreSQL connections and schema migrations. */
#ifndef TS_DB_H
#define TS_DB_H

#include <libpq-fe.h>
#include <stddef.h>

#include "ts_config.h"

/* A connection per [postgres] (password from password_file), session time
 * zone UTC; NULL with err set. */
PGconn *ts_db_connect(const ts_config *c, char *err, size_t err_len);

/* Runs sql (one or more statements without parameters); -1 with the
 * server's message in err. */
int ts_db_exec(PGconn *db, const char *sql, char *err, size_t err_len);

/* The failed result's message, one line, with its SQLSTATE:
 * "message (SQLSTATE 23505)"; r may be NULL (then the connection's). */
void ts_db_error(PGconn *db, const PGresult *r, char *err, size_t err_len);

/* Whether err (from ts_db_error) is about the data (SQLSTATE classes 22 data
 * exception, 23 integrity violation): retrying the same rows cannot help. */
int ts_db_data_error(const char *err);

/* Applies the pending migrations up to version `to` (0: all), each in a
 * transaction, logging each; returns how many were applied, or -1 with err
 * set (also when the schema is already past `to`: migrations only go
 * forward). */
int ts_db_migrate(PGconn *db, int to, char *err, size_t err_len);

/* Migrations not yet applied (0: current), or -1 with err set. */
int ts_db_pending(PGconn *db, char *err, size_t err_len);

#endif
