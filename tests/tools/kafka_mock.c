/* SPDX-License-Identifier: Apache-2.0 */
/* kafka_mock.c - a Kafka-protocol broker on loopback for the integration
 * tests: librdkafka's mock cluster hosted in a process of its own, so a test
 * can kill and restart the agent while the cluster and its data live on.
 *
 *   kafka_mock [--brokers N] [--topic T]... [--partitions P]
 *
 * Each --topic (default lineagent.trace.v1) is created with P partitions.
 * Prints "bootstrap=HOST:PORT[,...]" once the cluster is up, then obeys one
 * command per stdin line, answering "ok <command>" (or "err <command>: why"):
 *   down ID | up ID          take a broker down / bring it back (ID 0 or
 *                            "all": every broker; brokers are 1..N)
 *   error PRODUCE CNT CODE   fail the next CNT Produce requests with the
 *                            numeric Kafka error CODE (ApiKey may be a number)
 *   quit
 * After stdin closes it keeps serving until SIGINT or SIGTERM. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static volatile sig_atomic_t kafka_mock_stop;

static void kafka_mock_on_signal(int sig)
{
    (void)sig;
    kafka_mock_stop = 1;
}

static int kafka_mock_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Applies set_down or set_up to one broker, or to all when id is 0. */
static rd_kafka_resp_err_t kafka_mock_updown(rd_kafka_mock_cluster_t *mc, int brokers, int up,
                                             long id)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (long b = id ? id : 1; b <= (id ? id : brokers) && !err; b++)
        err = up ? rd_kafka_mock_broker_set_up(mc, (int32_t)b)
                 : rd_kafka_mock_broker_set_down(mc, (int32_t)b);
    return err;
}

/* Runs one command line; returns 1 for quit. Replies on stdout. */
static int kafka_mock_command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
    char *words[5];
    int n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r", &save); w && n < 5; w = strtok_r(NULL, " \t\r", &save))
        words[n++] = w;
    if (n == 0) return 0;
    char cmd[256]; /* the command echoed back, blanks normalised, for tests to match */
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof cmd; i++)
        len += (size_t)snprintf(cmd + len, sizeof cmd - len, "%s%s", i ? " " : "", words[i]);
    const char *why = NULL;
    long id, api, cnt, code;
    if (strcmp(words[0], "quit") == 0 && n == 1) {
        printf("ok %s\n", cmd);
        fflush(stdout);
        return 1;
    } else if ((strcmp(words[0], "down") == 0 || strcmp(words[0], "up") == 0) && n == 2) {
        if (strcasecmp(words[1], "all") == 0) id = 0;
        else if (kafka_mock_int(words[1], 0, brokers, &id) != 0) why = "no such broker";
        if (!why) {
            rd_kafka_resp_err_t err = kafka_mock_updown(mc, brokers, words[0][0] == 'u', id);
            if (err) why = rd_kafka_err2str(err);
        }
    } else if (strcmp(words[0], "error") == 0 && n == 4) {
        if (strcasecmp(words[1], "PRODUCE") == 0) api = 0; /* ApiKey Produce */
        else if (kafka_mock_int(words[1], 0, INT16_MAX, &api) != 0) why = "unknown request type";
        if (!why && kafka_mock_int(words[2], 1, 1000000, &cnt) != 0) why = "bad count";
        if (!why && kafka_mock_int(words[3], INT16_MIN, INT16_MAX, &code) != 0)
            why = "bad error code";
        if (!why) {
            rd_kafka_resp_err_t *errs = malloc((size_t)cnt * sizeof *errs);
            if (!errs) why = "out of memory";
            for (long i = 0; errs && i < cnt; i++) errs[i] = (rd_kafka_resp_err_t)code;
            if (errs) rd_kafka_mock_push_request_errors_array(mc, (int16_t)api, (size_t)cnt, errs);
            free(errs);
        }
    } else {
        why = "unknown command (down ID|all, up ID|all, error PRODUCE CNT CODE, quit)";
    }
    if (why) printf("err %s: %s\n", cmd, why);
    else printf("ok %s\n", cmd);
    fflush(stdout);
    return 0;
}

static int kafka_mock_usage(void)
{
    fprintf(stderr, "usage: kafka_mock [--brokers N] [--topic T]... [--partitions P]\n");
    return 2;
}

int main(int argc, char **argv)
{
    long brokers = 1, partitions = 4;
    const char *topics[8] = {"lineagent.trace.v1"};
    int n_topics = 0;
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) return kafka_mock_usage();
        if (strcmp(argv[i], "--brokers") == 0) {
            if (kafka_mock_int(val, 1, 64, &brokers) != 0) return kafka_mock_usage();
        } else if (strcmp(argv[i], "--partitions") == 0) {
            if (kafka_mock_int(val, 1, 10000, &partitions) != 0) return kafka_mock_usage();
        } else if (strcmp(argv[i], "--topic") == 0) {
            if (n_topics == 8) return kafka_mock_usage();
            topics[n_topics++] = val;
        } else {
            return kafka_mock_usage();
        }
    }

    /* No SA_RESTART: a signal interrupts poll() so the loop sees the flag at once. */
    struct sigaction sa = {.sa_handler = kafka_mock_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a test that stops reading our replies must not kill the cluster */

    /* The handle only hosts the mock cluster's thread; it never produces. */
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Silences the notice that this handle has no bootstrap.servers. */
    rd_kafka_conf_set(conf, "log_level", "4", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_mock: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "kafka_mock: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int t = 0;
    for (; t < (n_topics ? n_topics : 1) && !err; t++)
        err = rd_kafka_mock_topic_create(mc, topics[t], (int)partitions, brokers < 3 ? (int)brokers : 3);
    if (err) {
        fprintf(stderr, "kafka_mock: topic %s: %s\n", topics[t - 1], rd_kafka_err2str(err));
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    /* stdin is read with read(), not stdio, so poll() sees every unread byte. */
    char buf[4096];
    size_t have = 0;
    int stdin_open = 1, quit = 0;
    while (!kafka_mock_stop && !quit) {
        /* A bounded wait: a signal landing just before poll() is still seen. */
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        if (poll(&pfd, stdin_open ? 1 : 0, 200) <= 0) continue;
        ssize_t got = read(STDIN_FILENO, buf + have, sizeof buf - 1 - have);
        if (got <= 0) {
            if (got < 0 && errno == EINTR) continue;
            stdin_open = 0;
            got = 0;
        }
        have += (size_t)got;
        char *start = buf, *nl;
        while (!quit && (nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
            *nl = '\0';
            quit = kafka_mock_command(mc, (int)brokers, start);
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        /* A line longer than the buffer, or a last line without newline. */
        if (have == sizeof buf - 1 || (!stdin_open && have)) {
            buf[have] = '\0';
            quit = quit || kafka_mock_command(mc, (int)brokers, buf);
            have = 0;
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
