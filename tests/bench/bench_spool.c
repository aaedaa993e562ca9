/* SPDX-License-Identifier: Apache-2.0 */
/* bench_spool.c - scenario 1, spool ingest: trace events committed durably
 * per second through the agent's path (event_commit: stamp, encode, append,
 * group commit of batch_max events per transaction), against raw SQLite
 * inserts of the same rows batched the same way with the same pragmas and
 * the same table and indexes, each twice (A B B A, see bench_util.h).
 * Usage: bench_spool DIR [EVENTS] */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "event.h"
#include "spool.h"

#define BATCH 2048 /* [spool] batch_max default */

static double run_agent_path(const char *path, int n)
{
    spool *sp;
    char err[256];
    spool_options so = {"FULL", 0};
    if (spool_open(&sp, path, &so, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    /* Named before the clock starts, as the baseline's rows are encoded
     * before its clock starts: formatting them is the harness's work (about
     * 1,000 instructions an event), not the agent's. */
    char(*boards)[64] = malloc((size_t)n * sizeof *boards);
    if (!boards) exit(1);
    for (int i = 0; i < n; i++) bench_board_id((uint64_t)i, boards[i]);
    double t0 = bench_now();
    for (int i = 0; i < n;) {
        spool_begin(sp);
        for (int b = 0; b < BATCH && i < n; b++, i++) {
            TraceEvent ev;
            Lineagent__V1__UnitWritten w;
            bench_sample_fill(&ev, &w, boards[i]);
            if (event_commit(sp, "plant1", "smt3", &ev)) {
                fprintf(stderr, "append: %s\n", spool_errmsg(sp));
                exit(1);
            }
        }
        if (spool_commit(sp)) {
            fprintf(stderr, "commit: %s\n", spool_errmsg(sp));
            exit(1);
        }
    }
    double dt = bench_now() - t0;
    spool_close(sp);
    free(boards);
    return n / dt;
}

/* The same rows, pre-encoded (the baseline does no protobuf work), into the
 * same schema with the same pragmas. */
static double run_raw_sqlite(const char *path, int n)
{
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE,"
                 " key TEXT NOT NULL, type TEXT NOT NULL, time_ms INTEGER NOT NULL, payload BLOB NOT NULL);",
                 NULL, NULL, NULL);
    bench_samples sm;
    bench_samples_make(&sm, n);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "INSERT INTO events(seq, event_id, key, type, time_ms, payload) VALUES(?,?,?,?,?,?)", -1,
                       &st, NULL);
    double t0 = bench_now();
    for (int i = 0; i < n;) {
        sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (int b = 0; b < BATCH && i < n; b++, i++) {
            sqlite3_bind_int64(st, 1, i + 1);
            sqlite3_bind_text(st, 2, sm.ids[i], 36, SQLITE_STATIC);
            sqlite3_bind_text(st, 3, "LOT-BENCH", -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 4, "unit_written", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, 1700000000000LL + i);
            sqlite3_bind_blob(st, 6, sm.payload[i], (int)sm.len[i], SQLITE_STATIC);
            if (sqlite3_step(st) != SQLITE_DONE) {
                fprintf(stderr, "raw insert: %s\n", sqlite3_errmsg(db));
                exit(1);
            }
            sqlite3_reset(st);
        }
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    double dt = bench_now() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    bench_samples_free(&sm);
    return n / dt;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_spool DIR [EVENTS]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200000;
    char path[4][512];
    for (int i = 0; i < 4; i++) snprintf(path[i], sizeof path[i], "%s/run%d.db", argv[1], i);
    double raw1 = run_raw_sqlite(path[0], n);
    double agent1 = run_agent_path(path[1], n);
    double agent2 = run_agent_path(path[2], n);
    double raw2 = run_raw_sqlite(path[3], n);
    double raw = bench_rate_of_runs((double[]){raw1, raw2}, 2), agent = bench_rate_of_runs((double[]){agent1, agent2}, 2);
    char note[128];
    snprintf(note, sizeof note, "%d events, %d per transaction, synchronous=FULL; runs raw, agent, agent, raw", n, BATCH);
    bench_report("spool ingest", agent, "events/s", raw, ">= 50000/s, ratio >= 0.8", note);
    return 0;
}
