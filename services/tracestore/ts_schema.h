/* SPDX-License-Identifier: Apache-2.0 */
/* ts_schema.h - the schema's migrations (ts_schema.c). */
#ifndef TS_SCHEMA_H
#define TS_SCHEMA_H

typedef struct ts_migration {
    int version; /* 1, 2, ... without holes */
    const char *name;
    const char *sql;
} ts_migration;

extern const ts_migration ts_migrations[];
extern const int ts_n_migrations;

#endif
