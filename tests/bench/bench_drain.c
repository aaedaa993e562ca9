/* SPDX-License-Identifier: Apache-2.0 */
/* bench_drain.c - scenario 2, backlog drain: a spool holding N undelivered
 * events is drained to Kafka by the agent's forwarder (idempotent producer,
 * acks=all, marked delivered from delivery reports), against a bare
 * librdkafka producer sending the same payloads with the same settings.
 * Kafka is the mock cluster in its own process (tests/tools/kafka_mock), so
 * the peak RSS measured is the forwarder's alone. Each side runs four
 * times, agent, bare, bare, agent, twice over (see bench_util.h).
 * Usage: bench_drain KAFKA_MOCK DIR [EVENTS] */
#include <dirent.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_util.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "kafka_out.h"
#include "log.h"
#include "spool.h"

static pid_t mock_pid;

/* The bare producer's thread, named for top -H, perf and its CPU figure. */
#define BARE_THREAD "bench-bare"

/* nice +5 for the calling thread only (Linux: nice is per thread). */
static void bench_nice(void)
{
    id_t tid = (id_t)syscall(SYS_gettid);
    if (setpriority(PRIO_PROCESS, tid, getpriority(PRIO_PROCESS, tid) + 5) != 0) perror("setpriority");
}

static char *start_mock(const char *exe)
{
    int in[2], out[2];
    if (pipe(in) || pipe(out)) exit(1);
    mock_pid = fork();
    if (mock_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* no orphaned cluster if the bench exits early */
        bench_nice();
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(exe, exe, (char *)NULL);
        _exit(127);
    }
    close(in[0]); /* its stdin stays open through in[1] until we exit */
    close(out[1]);
    FILE *f = fdopen(out[0], "r");
    static char line[256];
    if (!fgets(line, sizeof line, f) || strncmp(line, "bootstrap=", 10) != 0) {
        fprintf(stderr, "kafka_mock did not start\n");
        exit(1);
    }
    line[strcspn(line, "\n")] = 0;
    return line + 10;
}

static void fill(const char *path, int n)
{
    spool *sp;
    char err[256];
    spool_options so = {"NORMAL", 0};
    if (spool_open(&sp, path, &so, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    for (int i = 0; i < n;) {
        spool_begin(sp);
        for (int b = 0; b < 50000 && i < n; b++, i++) {
            uint8_t *buf;
            size_t len = bench_sample_event((uint64_t)i, &buf);
            /* As the agent writes them (event.c): a real time, which the
             * forwarder passes on as the record's timestamp. */
            char id[37];
            int64_t now = clock_wall_ms();
            event_uuid7(id, now);
            spool_event ev = {spool_next_seq(sp), id, "LOT-BENCH", "unit_written", now, buf, len};
            if (spool_append_event(sp, &ev)) {
                fprintf(stderr, "fill: %s\n", spool_errmsg(sp));
                exit(1);
            }
            free(buf);
        }
        spool_commit(sp);
    }
    spool_close(sp);
}

/* CPU seconds used so far by this process's thread named comm, or -1. Both
 * sides are measured this way: the forwarder's thread is the agent's, not
 * ours to ask directly. */
static double thread_cpu_named(const char *comm)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    double cpu = -1;
    while (d && cpu < 0 && (e = readdir(d))) {
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        int match = fgets(buf, sizeof buf, f) && strncmp(buf, comm, strlen(comm)) == 0 && buf[strlen(comm)] == '\n';
        fclose(f);
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        unsigned long ut, st;
        char *p;
        if (match && (f = fopen(path, "r"))) {
            /* fields 14 and 15, after the parenthesised name */
            if (fgets(buf, sizeof buf, f) && (p = strrchr(buf, ')')) &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                cpu = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
            fclose(f);
        }
    }
    if (d) closedir(d);
    return cpu;
}

/* Each side's busiest thread: the forwarder, and the bare producer's loop.
 * Their CPU per run says what bounds the rates (see the README). */
static double cpu_agent, cpu_bare;

static double drain_with_agent(const char *path, const char *bootstrap, int n)
{
    config cfg = {0};
    kv_pair props[] = {{"bootstrap.servers", (char *)bootstrap}, {"acks", "all"}};
    cfg.spool_path = (char *)path;
    cfg.spool_synchronous = "FULL";
    cfg.kafka_topic = "lineagent.trace.v1";
    cfg.kafka_queue_high_water = 10000;
    cfg.kafka_props = props;
    cfg.n_kafka_props = 2;
    spool *sp;
    char err[256];
    spool_options so = {"FULL", 0};
    spool_open(&sp, path, &so, err, sizeof err);
    double t0 = bench_now();
    kafka_out *ko = kafka_out_start(&cfg, err, sizeof err);
    if (!ko) {
        fprintf(stderr, "kafka_out: %s\n", err);
        exit(1);
    }
    int64_t left = kafka_out_drain(ko, sp, 600000);
    double dt = bench_now() - t0;
    cpu_agent += thread_cpu_named("la-forwarder");
    kafka_out_stop(ko);
    spool_close(sp);
    if (left) {
        fprintf(stderr, "drain: %lld events left\n", (long long)left);
        exit(1);
    }
    return n / dt;
}

static void dr_count(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err) fprintf(stderr, "baseline delivery: %s\n", rd_kafka_err2str(m->err));
    (*(long *)opaque)++;
}

/* A spool of its own for each run, filled just before it: a backlog left
 * alone a minute may be paged out by the VM's memory reclaim. */
static double fill_and_drain(const char *dir, int run, const char *bootstrap, int n, long *rss_after_fill)
{
    char path[512];
    snprintf(path, sizeof path, "%s/drain%d.db", dir, run);
    fill(path, n);
    /* Written back now, not by the kernel's flusher during the timed run. */
    sync();
    if (rss_after_fill) *rss_after_fill = bench_peak_rss_kb();
    double rate = drain_with_agent(path, bootstrap, n);
    unlink(path);
    return rate;
}

/* Timed from creating the producer, as the agent's run is timed from
 * starting its forwarder: both connect and fetch metadata in the run. */
static double drain_bare_run(const char *bootstrap, int n)
{
    char err[256];
    bench_samples sm;
    bench_samples_make(&sm, n);
    double cpu0 = thread_cpu_named(BARE_THREAD), t0 = bench_now();
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    long delivered = 0;
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set(conf, "acks", "all", err, sizeof err);
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_count);
    rd_kafka_conf_set_opaque(conf, &delivered);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    for (int i = 0; i < n;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC("lineagent.trace.v1"), RD_KAFKA_V_KEY("LOT-BENCH", 9),
            RD_KAFKA_V_VALUE(sm.payload[i], sm.len[i]), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER("event_type", "unit_written", -1), RD_KAFKA_V_HEADER("event_id", sm.ids[i], -1),
            RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(rk, 10);
        else i++;
        rd_kafka_poll(rk, 0);
    }
    rd_kafka_flush(rk, 600000);
    double dt = bench_now() - t0;
    cpu_bare += thread_cpu_named(BARE_THREAD) - cpu0;
    rd_kafka_destroy(rk);
    bench_samples_free(&sm);
    if (delivered != n) fprintf(stderr, "baseline: %ld of %d delivered\n", delivered, n);
    return n / dt;
}

typedef struct bare_args {
    const char *bootstrap;
    int n;
    double rate;
} bare_args;

static void *bare_thread(void *arg)
{
    bare_args *a = arg;
    bench_nice();
    prctl(PR_SET_NAME, BARE_THREAD);
    a->rate = drain_bare_run(a->bootstrap, a->n);
    return NULL;
}

/* The agent's forwarder and its librdkafka threads run at nice +5
 * (kafka_out.c), the bench's own threads at the agent's nice; so the bare
 * producer runs on a thread of nice +5, whose librdkafka threads inherit
 * it, and the mock cluster at +5 too: both producers compete with the
 * cluster on equal terms. */
static double drain_bare(const char *bootstrap, int n)
{
    bare_args a = {bootstrap, n, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, bare_thread, &a) != 0) exit(1);
    pthread_join(t, NULL);
    return a.rate;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_drain KAFKA_MOCK DIR [EVENTS]\n");
        return 2;
    }
    int n = argc > 3 ? atoi(argv[3]) : 1000000;
    log_set_level(LL_WARN);
    const char *bootstrap = start_mock(argv[1]);
    /* Two rounds of A B B A: the bare producer's own rate swings by half
     * between back-to-back runs on this machine. */
    enum { ROUNDS = 2, RUNS = 2 * ROUNDS };
    long rss_before = 0, rss = 0;
    double agent_runs[RUNS], bare_runs[RUNS];
    char note[512];
    int off = snprintf(note, sizeof note, "%d events; runs", n);
    for (int r = 0; r < ROUNDS; r++) {
        agent_runs[2 * r] = fill_and_drain(argv[2], 2 * r, bootstrap, n, r == 0 ? &rss_before : NULL);
        /* before the baseline, whose samples are all in memory at once */
        if (r == 0) rss = bench_peak_rss_kb();
        bare_runs[2 * r] = drain_bare(bootstrap, n);
        bare_runs[2 * r + 1] = drain_bare(bootstrap, n);
        agent_runs[2 * r + 1] = fill_and_drain(argv[2], 2 * r + 1, bootstrap, n, NULL);
        off += snprintf(note + off, sizeof note - (size_t)off, " agent %.0f, bare %.0f, bare %.0f, agent %.0f;",
                        agent_runs[2 * r], bare_runs[2 * r], bare_runs[2 * r + 1], agent_runs[2 * r + 1]);
    }
    double agent = bench_rate_of_runs(agent_runs, RUNS), bare = bench_rate_of_runs(bare_runs, RUNS);
    kill(mock_pid, SIGTERM);
    waitpid(mock_pid, NULL, 0);
    snprintf(note + off, sizeof note - (size_t)off,
             " CPU per run: forwarder thread %.2f s, bare producer's thread %.2f s;"
             " peak RSS during drain %.1f MB (target < 64 MB; %.1f MB after fill)",
             cpu_agent / RUNS, cpu_bare / RUNS, rss / 1024.0, rss_before / 1024.0);
    bench_report("backlog drain", agent, "events/s", bare, "ratio >= 0.7, RSS < 64 MB", note);
    printf("{\"scenario\":\"drain peak RSS\",\"figure\":%.1f,\"unit\":\"MB\",\"baseline\":0,\"ratio\":0,"
           "\"target\":\"< 64 MB\",\"note\":\"VmHWM of the draining process\"}\n",
           rss / 1024.0);
    return 0;
}
