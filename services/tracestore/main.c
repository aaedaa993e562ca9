/* SPDX-License-Identifier: Apache-2.0 */
/* main.c - the tracestore command line: one table of commands, the options
 * they share (-c FILE, --json) and their own. Exit codes: 0 answered (or
 * clean stop); 1 not found, findings or discrepancies; 2 usage; 3
 * configuration or database error. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ts_audit.h"
#include "ts_cli.h"
#include "ts_config.h"
#include "ts_consumer.h"
#include "ts_db.h"
#include "ts_http.h"
#include "ts_log.h"
#include "ts_prune.h"
#include "ts_query.h"
#include "ts_sample.h"

typedef struct ts_args {
    const char *config, *positional, *firmware, *product, *lot, *file, *before, *to;
    int json, current, yes;
} ts_args;

typedef struct ts_command {
    const char *name, *usage;
    int need_positional;
    int (*run)(const ts_config *cfg, PGconn *db, const ts_args *a); /* db NULL: the command connects itself */
    int wants_db;
} ts_command;

static volatile sig_atomic_t ts_stop;
static void ts_on_signal(int sig) { (void)sig; ts_stop = 1; }

/* Prints an answer or says why there is none. */
static int ts_answer(int rc, json_t *v, const ts_args *a, const char *what, const char *err)
{
    if (rc == 0) {
        ts_cli_print(stdout, v, a->json);
        json_decref(v);
        return 0;
    }
    if (rc == 1) fprintf(stderr, "tracestore: no %s %s\n", what, a->positional);
    else fprintf(stderr, "tracestore: %s\n", err);
    return rc == 1 ? 1 : 3;
}

static int ts_cmd_unit(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    char err[512];
    json_t *v;
    int rc = ts_query_unit(db, a->positional, &v, err, sizeof err);
    return ts_answer(rc, v, a, "unit", err);
}

static int ts_cmd_lot(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    char err[512];
    json_t *v;
    int rc = ts_query_lot(db, a->positional, &v, err, sizeof err);
    return ts_answer(rc, v, a, "lot", err);
}

static int ts_cmd_find(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    if (!a->firmware) {
        fprintf(stderr, "tracestore find: --firmware VERSION is required\n");
        return 2;
    }
    char err[512];
    json_t *v;
    int rc = ts_query_find(db, a->firmware, a->product, a->current, &v, err, sizeof err);
    return ts_answer(rc, v, a, "firmware", err);
}

static int ts_cmd_audit(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    char err[512];
    json_t *v;
    if (ts_audit(db, cfg->unit_timeout_s, cfg->gap_timeout_s, &v, err, sizeof err)) {
        fprintf(stderr, "tracestore audit: %s\n", err);
        return 3;
    }
    int consistent = json_is_true(json_object_get(v, "consistent"));
    ts_cli_print(stdout, v, a->json);
    json_decref(v);
    return consistent ? 0 : 1;
}

static int ts_cmd_sample_check(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    if (!a->lot || !a->file) {
        fprintf(stderr, "tracestore sample-check: --lot LOT_ID and --file FILE.csv are required\n");
        return 2;
    }
    char err[512];
    json_t *v;
    if (ts_sample_check(db, a->lot, a->file, &v, err, sizeof err)) {
        fprintf(stderr, "tracestore sample-check: %s\n", err);
        return 3;
    }
    int passed = json_is_true(json_object_get(v, "passed"));
    ts_cli_print(stdout, v, a->json);
    json_decref(v);
    return passed ? 0 : 1;
}

static int ts_cmd_prune(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    if (!a->before) {
        fprintf(stderr, "tracestore prune: --before YYYY-MM is required\n");
        return 2;
    }
    char err[512];
    json_t *v;
    int usage;
    if (ts_prune(db, a->before, a->yes, &v, &usage, err, sizeof err)) {
        fprintf(stderr, "tracestore prune: %s\n", err);
        return usage ? 2 : 3;
    }
    ts_cli_print(stdout, v, a->json);
    if (!a->yes && json_array_size(json_object_get(v, "partitions")))
        fprintf(stderr, "tracestore prune: nothing dropped; --yes drops the partitions listed\n");
    json_decref(v);
    return 0;
}

static int ts_cmd_migrate(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    char err[512], *end = NULL;
    long to = a->to ? strtol(a->to, &end, 10) : 0;
    if (a->to && (*end || end == a->to || to < 1 || to > INT_MAX)) {
        fprintf(stderr, "tracestore migrate: --to takes a migration number, not \"%s\"\n", a->to);
        return 2;
    }
    int n = ts_db_migrate(db, (int)to, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "tracestore migrate: %s\n", err);
        return 3;
    }
    if (to) printf("schema at migration %ld (%d migration%s applied now)\n", to, n, n == 1 ? "" : "s");
    else printf("schema current (%d migration%s applied now)\n", n, n == 1 ? "" : "s");
    return 0;
}

static int ts_cmd_config(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    ts_config_print(cfg, stdout);
    return 0;
}

static int ts_cmd_run(const ts_config *cfg, PGconn *db, const ts_args *a)
{
    struct sigaction sa = {.sa_handler = ts_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    char err[512];
    PGconn *probe = ts_db_connect(cfg, err, sizeof err);
    if (probe) {
        int pending = ts_db_pending(probe, err, sizeof err);
        PQfinish(probe);
        if (pending != 0) {
            fprintf(stderr, "tracestore run: %s\n",
                    pending > 0 ? "the schema is not current: run tracestore migrate first" : err);
            return 3;
        }
    } else {
        ts_warn("PostgreSQL not reachable at start (%s); waiting for it", err);
    }
    ts_http *http = NULL;
    if (cfg->http_listen && !(http = ts_http_start(cfg, err, sizeof err))) {
        fprintf(stderr, "tracestore run: %s\n", err);
        return 3;
    }
    int rc = ts_consumer_run(cfg, &ts_stop) ? 3 : 0;
    ts_http_stop(http);
    return rc;
}

static const ts_command ts_commands[] = {
    {"run", "run -c FILE", 0, ts_cmd_run, 0},
    {"migrate", "migrate -c FILE [--to N]   (N: stop after migration N, for a staged upgrade)", 0, ts_cmd_migrate, 1},
    {"unit", "unit SERIAL_OR_BOARD_ID -c FILE [--json]", 1, ts_cmd_unit, 1},
    {"lot", "lot LOT_ID -c FILE [--json]", 1, ts_cmd_lot, 1},
    {"find", "find --firmware VERSION [--product P] [--current] -c FILE [--json]", 0, ts_cmd_find, 1},
    {"audit", "audit -c FILE [--json]   (exit 1 on findings)", 0, ts_cmd_audit, 1},
    {"sample-check", "sample-check --lot LOT_ID --file FILE.csv -c FILE [--json]   (exit 1 on discrepancies)", 0,
     ts_cmd_sample_check, 1},
    {"prune", "prune --before YYYY-MM -c FILE [--yes] [--json]   (raw events of the months before; lists without --yes)",
     0, ts_cmd_prune, 1},
    {"config", "config -c FILE   (every key with its effective value)", 0, ts_cmd_config, 0},
};
#define TS_N_COMMANDS (sizeof ts_commands / sizeof ts_commands[0])

static int ts_usage(void)
{
    fprintf(stderr, "usage:\n");
    for (size_t i = 0; i < TS_N_COMMANDS; i++) fprintf(stderr, "  tracestore %s\n", ts_commands[i].usage);
    return 2;
}

static int ts_parse_args(int argc, char **argv, ts_args *a)
{
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char **slot = strcmp(o, "-c") == 0            ? &a->config
                            : strcmp(o, "--firmware") == 0  ? &a->firmware
                            : strcmp(o, "--product") == 0   ? &a->product
                            : strcmp(o, "--lot") == 0       ? &a->lot
                            : strcmp(o, "--file") == 0      ? &a->file
                            : strcmp(o, "--before") == 0    ? &a->before
                            : strcmp(o, "--to") == 0        ? &a->to
                                                            : NULL;
        if (slot) {
            if (i + 1 >= argc) return -1;
            *slot = argv[++i];
        } else if (strcmp(o, "--json") == 0) a->json = 1;
        else if (strcmp(o, "--current") == 0) a->current = 1;
        else if (strcmp(o, "--yes") == 0) a->yes = 1;
        else if (o[0] != '-' && !a->positional) a->positional = o;
        else return -1;
    }
    return a->config ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) return ts_usage();
    const ts_command *cmd = NULL;
    for (size_t i = 0; i < TS_N_COMMANDS; i++)
        if (strcmp(argv[1], ts_commands[i].name) == 0) cmd = &ts_commands[i];
    ts_args a = {0};
    if (!cmd || ts_parse_args(argc, argv, &a) || !!a.positional != cmd->need_positional) return ts_usage();
    ts_config cfg;
    char err[512];
    if (ts_config_load(&cfg, a.config, err, sizeof err)) {
        fprintf(stderr, "tracestore: %s\n", err);
        return 3;
    }
    ts_log_set_level(ts_log_level_parse(cfg.log_level));
    PGconn *db = NULL;
    if (cmd->wants_db && !(db = ts_db_connect(&cfg, err, sizeof err))) {
        fprintf(stderr, "tracestore: PostgreSQL: %s\n", err);
        ts_config_free(&cfg);
        return 3;
    }
    int rc = cmd->run(&cfg, db, &a);
    PQfinish(db);
    ts_config_free(&cfg);
    return rc;
}
