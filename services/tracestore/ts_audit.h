/* SPDX-License-Identifier: Apache-2.0 */
/* ts_audit.h - consistency findings over everything stored: a serial or
 * MAC on two boards (across lines and agents, F3), units without an
 * outcome, seq gaps open too long, rejected records, records Kafka deleted
 * before they were stored. */
#ifndef TS_AUDIT_H
#define TS_AUDIT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

/* *out: {"consistent": bool, "findings": [{"kind": ..., ...}]}; 0, or -1
 * with err set. unit_timeout_s and gap_timeout_s as in the config. */
int ts_audit(PGconn *db, long unit_timeout_s, long gap_timeout_s, json_t **out, char *err, size_t err_len);

/* The seq gaps open longer than gap_timeout_s: their number, -1 on error;
 * *list (when not NULL) gets the first of them as findings. */
long ts_audit_gaps(PGconn *db, long gap_timeout_s, json_t **list, char *err, size_t err_len);

#endif
