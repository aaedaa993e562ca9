/* SPDX-License-Identifier: Apache-2.0 */
/* trace_reader.c - `lineagent trace`: reads the traceability topic from the
 * beginning and prints every TraceEvent as a JSON line, or a per-lot summary
 * for a quality engineer followed by integrity checks (duplicate deliveries,
 * conflicting event ids, per-agent seq gaps).
 *
 * It assigns partitions itself instead of subscribing, so it joins no consumer
 * group and commits nothing: it never disturbs the real consumers' offsets.
 *
 * Exit codes: 0 done; 1 Kafka failure, or timeout before --expect events;
 * 2 usage; 3 (summary) integrity failure. */
#include "trace_reader.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "clock.h"
#include "lineagent/v1/trace_event.pb-c.h"
#include "log.h"
#include "proto_json.h"

typedef Lineagent__V1__TraceEvent TraceEvent;

#define TRACE_READER_EXAMPLES   3  /* example boards shown per failure group */
#define TRACE_READER_REJECTED   20 /* rejected orders listed (all are counted) */
#define TRACE_READER_GAP_RANGES 8  /* missing seq ranges listed per agent */

enum { BOARD_PASSED = 1, BOARD_FAILED = 2 };

/* Open-addressing map from a 64-bit hash (0: empty slot) to a 64-bit value.
 * Ids are kept as hashes, 16 bytes an entry instead of the strings: two of a
 * million ids colliding in 64 bits has odds around 1e-8, fine for a report. */
typedef struct trace_reader_map {
    uint64_t *keys, *vals;
    size_t cap, n;
} trace_reader_map;

typedef struct trace_reader_version {
    char *version;
    unsigned units, passed;
} trace_reader_version;
typedef struct trace_reader_failure {
    int step;
    char *mode;
    unsigned count, n_examples;
    char *examples[TRACE_READER_EXAMPLES];
} trace_reader_failure;
/* Failures per fixture (station and site), so a bad probe or socket shows. */
typedef struct trace_reader_fixture {
    char *station;
    uint32_t site;
    unsigned count;
} trace_reader_fixture;

typedef struct trace_reader_lot {
    char *lot_id, *order_id, *product;
    uint32_t quantity, revision;
    int64_t started_ms, completed_ms;                             /* 0: not seen */
    uint32_t reported_quantity, reported_passed, reported_failed; /* lot_completed */
    trace_reader_map boards;                                      /* board id -> BOARD_ flags */
    trace_reader_version *versions;
    size_t n_versions;
    trace_reader_failure *failures;
    size_t n_failures;
    trace_reader_fixture *fixtures;
    size_t n_fixtures;
    TraceEvent **changeovers; /* kept whole: few, and every field is printed */
    size_t n_changeovers;
    unsigned provisioned;              /* unit_provisioned events */
    char *serial_min, *serial_max;     /* the range of serials issued */
} trace_reader_lot;

/* seq is per agent; a line agent is identified by site and line. */
typedef struct trace_reader_agent {
    char *site, *line;
    uint64_t *seqs;
    size_t n;
} trace_reader_agent;

typedef struct trace_reader_state {
    int jsonl;
    uint64_t records, undecodable, duplicates, conflicts, no_id;
    trace_reader_map ids; /* event id -> hash of the record's value */
    trace_reader_lot *lots;
    size_t n_lots;
    trace_reader_agent *agents;
    size_t n_agents;
    TraceEvent *rejected[TRACE_READER_REJECTED];
    size_t n_rejected;
} trace_reader_state;

/* A reader tool has nothing to save when memory runs out: say so and stop. */
static void *trace_reader_alloc(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) n = SIZE_MAX; /* let realloc refuse */
    void *q = realloc(p, n && size ? n * size : 1);
    if (!q) {
        log_error("trace: out of memory");
        exit(1);
    }
    return q;
}

static char *trace_reader_strdup(const char *s)
{
    size_t len = strlen(s) + 1;
    return memcpy(trace_reader_alloc(NULL, len, 1), s, len);
}

/* Appends one zeroed element to the array *arr_p of *n elements; capacity is
 * implied by n (grows at each power of two), so small lists cost nothing. */
static void *trace_reader_push(void *arr_p, size_t *n, size_t size)
{
    void **arr = arr_p;
    if ((*n & (*n - 1)) == 0) *arr = trace_reader_alloc(*arr, *n ? 2 * *n : 1, size);
    char *elem = (char *)*arr + (*n)++ * size;
    return memset(elem, 0, size);
}

static uint64_t trace_reader_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a, then a finalizer so low bits spread */
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h ? h : 1; /* 0 marks an empty slot */
}

static const char *trace_reader_time(int64_t ms, char buf[32])
{
    if (ms <= 0) return "-";
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, 32 - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

static const char *trace_reader_step_name(int step)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&lineagent__v1__step__descriptor, step);
    return v ? v->name : "STEP_UNKNOWN";
}

/* The value slot of key in m, inserting it (value 0) if new; *found says
 * whether it was there. The table is kept at most half full. */
static uint64_t *trace_reader_map_get(trace_reader_map *m, uint64_t key, int *found)
{
    if (2 * (m->n + 1) > m->cap) {
        trace_reader_map old = *m;
        m->cap = old.cap ? 2 * old.cap : 64;
        m->n = 0;
        m->keys = memset(trace_reader_alloc(NULL, m->cap, 8), 0, m->cap * 8);
        m->vals = trace_reader_alloc(NULL, m->cap, 8);
        for (size_t i = 0; i < old.cap; i++)
            if (old.keys[i]) *trace_reader_map_get(m, old.keys[i], found) = old.vals[i];
        free(old.keys);
        free(old.vals);
    }
    size_t j = key & (m->cap - 1);
    while (m->keys[j] && m->keys[j] != key) j = (j + 1) & (m->cap - 1);
    *found = m->keys[j] != 0;
    if (!*found) {
        m->keys[j] = key;
        m->vals[j] = 0;
        m->n++;
    }
    return &m->vals[j];
}

/* Records an event id; 0 when new, 1 for a repeated delivery of the same
 * record, 2 for the same id carrying different bytes. */
static int trace_reader_seen(trace_reader_state *st, const char *id, const void *value, size_t len)
{
    int found;
    uint64_t *slot = trace_reader_map_get(&st->ids, trace_reader_hash(id, strlen(id)), &found);
    uint64_t v = trace_reader_hash(value, len);
    if (!found) *slot = v;
    return !found ? 0 : *slot == v ? 1 : 2;
}

static trace_reader_lot *trace_reader_lot_get(trace_reader_state *st, const char *lot_id)
{
    for (size_t i = st->n_lots; i-- > 0;) /* newest first: events come in runs per lot */
        if (strcmp(st->lots[i].lot_id, lot_id) == 0) return &st->lots[i];
    trace_reader_lot *lot = trace_reader_push(&st->lots, &st->n_lots, sizeof *lot);
    lot->lot_id = trace_reader_strdup(lot_id);
    return lot;
}

static void trace_reader_board_mark(trace_reader_lot *lot, const char *id, unsigned flags)
{
    int found;
    *trace_reader_map_get(&lot->boards, trace_reader_hash(id, strlen(id)), &found) |= flags;
}

static void trace_reader_add_seq(trace_reader_state *st, const TraceEvent *ev)
{
    trace_reader_agent *a = NULL;
    for (size_t i = 0; i < st->n_agents && !a; i++)
        if (strcmp(st->agents[i].site, ev->site) == 0 && strcmp(st->agents[i].line, ev->line) == 0)
            a = &st->agents[i];
    if (!a) {
        a = trace_reader_push(&st->agents, &st->n_agents, sizeof *a);
        a->site = trace_reader_strdup(ev->site);
        a->line = trace_reader_strdup(ev->line);
    }
    *(uint64_t *)trace_reader_push(&a->seqs, &a->n, sizeof *a->seqs) = ev->seq;
}

/* Folds one first-seen event into its lot's aggregates. Takes ownership of ev
 * when it keeps it (returns 1). */
static int trace_reader_account(trace_reader_state *st, TraceEvent *ev)
{
    if (ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_REJECTED) {
        if (st->n_rejected == TRACE_READER_REJECTED) return 0;
        st->rejected[st->n_rejected++] = ev;
        return 1;
    }
    trace_reader_lot *lot = trace_reader_lot_get(st, ev->lot_id);
    if (!lot->order_id && ev->order_id[0]) lot->order_id = trace_reader_strdup(ev->order_id);
    const char *board = ev->board_id[0] ? ev->board_id : ev->serial;
    switch (ev->body_case) {
    case LINEAGENT__V1__TRACE_EVENT__BODY_ORDER_ACCEPTED:
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED: {
        int started = ev->body_case == LINEAGENT__V1__TRACE_EVENT__BODY_LOT_STARTED;
        const char *product = started ? ev->lot_started->product : ev->order_accepted->product;
        uint32_t rev = started ? ev->lot_started->order_revision : ev->order_accepted->revision;
        if (!lot->product) lot->product = trace_reader_strdup(product);
        lot->quantity = started ? ev->lot_started->quantity : ev->order_accepted->quantity;
        if (rev > lot->revision) lot->revision = rev;
        if (started && !lot->started_ms) lot->started_ms = ev->time_ms;
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_COMPLETED: {
        const Lineagent__V1__UnitCompleted *uc = ev->unit_completed;
        trace_reader_board_mark(lot, board, uc->passed ? BOARD_PASSED : BOARD_FAILED);
        trace_reader_version *v = NULL;
        for (size_t i = 0; i < lot->n_versions && !v; i++)
            if (strcmp(lot->versions[i].version, uc->firmware_version) == 0) v = &lot->versions[i];
        if (!v) {
            v = trace_reader_push(&lot->versions, &lot->n_versions, sizeof *v);
            v->version = trace_reader_strdup(uc->firmware_version);
        }
        v->units++;
        v->passed += uc->passed != 0;
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_FAILED: {
        const Lineagent__V1__UnitFailed *uf = ev->unit_failed;
        trace_reader_board_mark(lot, board, BOARD_FAILED);
        trace_reader_failure *f = NULL;
        for (size_t i = 0; i < lot->n_failures && !f; i++)
            if (lot->failures[i].step == (int)uf->step &&
                strcmp(lot->failures[i].mode, uf->failure_mode) == 0)
                f = &lot->failures[i];
        if (!f) {
            f = trace_reader_push(&lot->failures, &lot->n_failures, sizeof *f);
            f->step = (int)uf->step;
            f->mode = trace_reader_strdup(uf->failure_mode);
        }
        if (f->n_examples < TRACE_READER_EXAMPLES)
            f->examples[f->n_examples++] = trace_reader_strdup(board);
        f->count++;
        const char *stn = ev->station && ev->station[0] ? ev->station : "-";
        trace_reader_fixture *fx = NULL;
        for (size_t i = 0; i < lot->n_fixtures && !fx; i++)
            if (lot->fixtures[i].site == uf->station_site && strcmp(lot->fixtures[i].station, stn) == 0)
                fx = &lot->fixtures[i];
        if (!fx) {
            fx = trace_reader_push(&lot->fixtures, &lot->n_fixtures, sizeof *fx);
            fx->station = trace_reader_strdup(stn);
            fx->site = uf->station_site;
            fx->count = 0;
        }
        fx->count++;
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_VERSION_CHANGEOVER:
        *(TraceEvent **)trace_reader_push(&lot->changeovers, &lot->n_changeovers,
                                          sizeof *lot->changeovers) = ev;
        return 1;
    case LINEAGENT__V1__TRACE_EVENT__BODY_UNIT_PROVISIONED: {
        const char *sn = ev->unit_provisioned->serial;
        lot->provisioned++;
        if (!lot->serial_min || strcmp(sn, lot->serial_min) < 0) {
            free(lot->serial_min);
            lot->serial_min = trace_reader_strdup(sn);
        }
        if (!lot->serial_max || strcmp(sn, lot->serial_max) > 0) {
            free(lot->serial_max);
            lot->serial_max = trace_reader_strdup(sn);
        }
        break;
    }
    case LINEAGENT__V1__TRACE_EVENT__BODY_LOT_COMPLETED:
        lot->completed_ms = ev->time_ms;
        lot->reported_quantity = ev->lot_completed->quantity;
        lot->reported_passed = ev->lot_completed->passed;
        lot->reported_failed = ev->lot_completed->failed;
        break;
    default: break;
    }
    return 0;
}

/* Keys and header values are free-form bytes: text when valid UTF-8, else base64. */
static json_t *trace_reader_bytes_json(const void *data, size_t len)
{
    if (!data) return json_null();
    json_t *s = json_stringn(data, len);
    return s ? s : proto_json_base64(data, len);
}

/* The event as one JSON object: the event fields, "type" (the set body
 * member) and "kafka" (where the record sat, its key and headers). */
static json_t *trace_reader_event_json(const TraceEvent *ev, const rd_kafka_message_t *m)
{
    json_t *obj = proto_json_from_message(&ev->base);
    if (!obj) return NULL;
    const ProtobufCFieldDescriptor *body =
        protobuf_c_message_descriptor_get_field(ev->base.descriptor, (unsigned)ev->body_case);
    json_t *kafka = json_object(), *headers = json_object();
    json_object_set_new(obj, "type", body ? json_string(body->name) : json_null());
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *value;
        size_t size;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             i++)
            json_object_set_new(headers, name, trace_reader_bytes_json(value, size));
    }
    json_object_set_new(kafka, "partition", json_integer(m->partition));
    json_object_set_new(kafka, "offset", json_integer(m->offset));
    rd_kafka_timestamp_type_t ts_type;
    int64_t ts = rd_kafka_message_timestamp(m, &ts_type);
    json_object_set_new(kafka, "timestamp", ts_type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? json_null() : json_integer(ts));
    json_object_set_new(kafka, "key", trace_reader_bytes_json(m->key, m->key_len));
    json_object_set_new(kafka, "headers", headers);
    json_object_set_new(obj, "kafka", kafka);
    return obj;
}

static void trace_reader_record(trace_reader_state *st, const rd_kafka_message_t *m)
{
    st->records++;
    TraceEvent *ev = lineagent__v1__trace_event__unpack(NULL, m->len, m->payload);
    json_t *line = ev && st->jsonl ? trace_reader_event_json(ev, m) : NULL;
    if (!ev || (st->jsonl && !line)) {
        st->undecodable++;
        log_warn("trace: partition %" PRId32 " offset %" PRId64
                 ": %zu bytes are not a valid TraceEvent",
                 m->partition, m->offset, m->len);
        if (ev) lineagent__v1__trace_event__free_unpacked(ev, NULL);
        return;
    }
    int seen = 0;
    if (!ev->event_id[0]) st->no_id++; /* cannot be de-duplicated; counted as distinct */
    else if ((seen = trace_reader_seen(st, ev->event_id, m->payload, m->len)) == 1)
        st->duplicates++;
    else if (seen == 2) {
        st->conflicts++;
        log_warn("trace: event %s at partition %" PRId32 " offset %" PRId64
                 " differs from its earlier delivery",
                 ev->event_id, m->partition, m->offset);
    }
    if (line) {
        json_dumpf(line, stdout, JSON_COMPACT);
        fputc('\n', stdout);
        json_decref(line);
    } else if (!seen) {
        trace_reader_add_seq(st, ev);
        if (trace_reader_account(st, ev)) return;
    }
    lineagent__v1__trace_event__free_unpacked(ev, NULL);
}

static int trace_reader_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void trace_reader_print_lot(const trace_reader_lot *lot)
{
    char t1[32], t2[32];
    unsigned completed = 0, passed = 0, failed = 0;
    for (size_t i = 0; i < lot->boards.cap; i++) {
        uint64_t fl = lot->boards.keys[i] ? lot->boards.vals[i] : 0;
        completed += fl != 0;               /* has a unit_completed or a unit_failed */
        failed += (fl & BOARD_FAILED) != 0; /* any failure fails the unit */
        passed += fl == BOARD_PASSED;
    }
    printf("lot %s  product %s  order %s rev %" PRIu32 "  quantity %" PRIu32 "\n",
           lot->lot_id[0] ? lot->lot_id : "(none)", lot->product ? lot->product : "?",
           lot->order_id ? lot->order_id : "?", lot->revision, lot->quantity);
    printf("  started %s  completed %s", trace_reader_time(lot->started_ms, t1),
           lot->completed_ms ? trace_reader_time(lot->completed_ms, t2) : "(not yet)");
    if (lot->completed_ms)
        printf(" (reported %" PRIu32 " units, %" PRIu32 " passed, %" PRIu32 " failed)",
               lot->reported_quantity, lot->reported_passed, lot->reported_failed);
    printf("\n  units: %u completed, %u passed, %u failed, yield %.1f%%\n", completed, passed,
           failed, completed ? 100.0 * passed / completed : 0.0);
    if (lot->completed_ms && (lot->reported_passed != passed || lot->reported_failed != failed))
        printf("  NOTE: lot_completed counts differ from the unit events above\n");
    if (lot->provisioned)
        printf("  serials: %u provisioned, %s .. %s\n", lot->provisioned, lot->serial_min, lot->serial_max);
    if (lot->n_versions) printf("  firmware versions (unit_completed):\n");
    for (size_t i = 0; i < lot->n_versions; i++)
        printf("    %-16s %u units, %u passed\n",
               lot->versions[i].version[0] ? lot->versions[i].version : "(not written)",
               lot->versions[i].units, lot->versions[i].passed);
    if (lot->n_changeovers) printf("  version changeovers:\n");
    for (size_t i = 0; i < lot->n_changeovers; i++) {
        const Lineagent__V1__VersionChangeover *c = lot->changeovers[i]->version_changeover;
        printf("    %s -> %s (order rev %" PRIu32 " -> %" PRIu32
               ") at %s: last board on old %s, first board on new %s\n",
               c->from_version, c->to_version, c->from_revision, c->to_revision,
               trace_reader_time(lot->changeovers[i]->time_ms, t1),
               c->last_board_old[0] ? c->last_board_old : "-",
               c->first_board_new[0] ? c->first_board_new : "-");
    }
    if (lot->n_failures) printf("  failures by step and mode:\n");
    for (size_t i = 0; i < lot->n_failures; i++) {
        const trace_reader_failure *f = &lot->failures[i];
        printf("    %-10s %-24s %4u  e.g.", trace_reader_step_name(f->step), f->mode, f->count);
        for (unsigned k = 0; k < f->n_examples; k++) printf(" %s", f->examples[k]);
        printf("\n");
    }
    if (lot->n_fixtures) printf("  failures by station and site:\n");
    for (size_t i = 0; i < lot->n_fixtures; i++)
        printf("    %-20s site %-3" PRIu32 " %4u\n", lot->fixtures[i].station, lot->fixtures[i].site,
               lot->fixtures[i].count);
}

/* Prints seq ranges and gaps per agent; returns the number of integrity faults. */
static uint64_t trace_reader_print_agent(trace_reader_agent *a)
{
    qsort(a->seqs, a->n, sizeof *a->seqs, trace_reader_cmp_u64);
    uint64_t distinct = 0, reused = 0, missing = 0;
    int ranges = 0;
    printf("  agent %s/%s:", a->site, a->line);
    for (size_t i = 0; i < a->n; i++) {
        if (i && a->seqs[i] == a->seqs[i - 1]) {
            reused++; /* two different event ids carry one seq */
            continue;
        }
        distinct++;
        if (i && a->seqs[i] > a->seqs[i - 1] + 1) {
            uint64_t lo = a->seqs[i - 1] + 1, hi = a->seqs[i] - 1;
            missing += hi - lo + 1;
            if (ranges++ < TRACE_READER_GAP_RANGES) {
                if (ranges == 1) printf(" MISSING seq");
                if (lo == hi) printf(" %" PRIu64, lo);
                else printf(" %" PRIu64 "-%" PRIu64, lo, hi);
            }
        }
    }
    if (ranges > TRACE_READER_GAP_RANGES) printf(" ...");
    printf("\n    seq %" PRIu64 "..%" PRIu64 ", %" PRIu64 " distinct, %" PRIu64
           " missing in %d gap(s)",
           a->seqs[0], a->seqs[a->n - 1], distinct, missing, ranges);
    if (reused) printf(", %" PRIu64 " seq(s) reused by different event ids", reused);
    printf("\n");
    return missing + reused;
}

static int trace_reader_print_summary(trace_reader_state *st)
{
    char t[32];
    for (size_t i = 0; i < st->n_lots; i++) trace_reader_print_lot(&st->lots[i]);
    if (st->n_rejected) printf("rejected orders:\n");
    for (size_t i = 0; i < st->n_rejected; i++)
        printf("  %s order %s rev %" PRIu32 " lot %s: %s\n",
               trace_reader_time(st->rejected[i]->time_ms, t), st->rejected[i]->order_id,
               st->rejected[i]->order_rejected->revision,
               st->rejected[i]->lot_id[0] ? st->rejected[i]->lot_id : "-",
               st->rejected[i]->order_rejected->reason);
    uint64_t faults = st->conflicts;
    printf("integrity:\n  records read %" PRIu64 ", undecodable %" PRIu64 "\n", st->records,
           st->undecodable);
    printf("  event ids: %" PRIu64 " distinct, %" PRIu64 " duplicate deliveries, %" PRIu64
           " with conflicting content, %" PRIu64 " without id\n",
           (uint64_t)st->ids.n, st->duplicates, st->conflicts, st->no_id);
    for (size_t i = 0; i < st->n_agents; i++) faults += trace_reader_print_agent(&st->agents[i]);
    printf("  result: %s\n",
           faults ? "INTEGRITY FAILURE (seq gaps, reused seqs or conflicting event ids)" : "OK");
    return faults ? 3 : 0;
}

static void trace_reader_free(trace_reader_state *st)
{
    for (size_t i = 0; i < st->n_lots; i++) {
        trace_reader_lot *lot = &st->lots[i];
        for (size_t k = 0; k < lot->n_versions; k++) free(lot->versions[k].version);
        for (size_t k = 0; k < lot->n_failures; k++) {
            free(lot->failures[k].mode);
            for (unsigned e = 0; e < lot->failures[k].n_examples; e++)
                free(lot->failures[k].examples[e]);
        }
        for (size_t k = 0; k < lot->n_fixtures; k++) free(lot->fixtures[k].station);
        free(lot->fixtures);
        for (size_t k = 0; k < lot->n_changeovers; k++)
            lineagent__v1__trace_event__free_unpacked(lot->changeovers[k], NULL);
        free(lot->serial_min), free(lot->serial_max);
        free(lot->boards.keys), free(lot->boards.vals), free(lot->versions), free(lot->failures),
            free(lot->changeovers);
        free(lot->lot_id), free(lot->order_id), free(lot->product);
    }
    for (size_t i = 0; i < st->n_agents; i++)
        free(st->agents[i].site), free(st->agents[i].line), free(st->agents[i].seqs);
    for (size_t i = 0; i < st->n_rejected; i++)
        lineagent__v1__trace_event__free_unpacked(st->rejected[i], NULL);
    free(st->lots), free(st->agents), free(st->ids.keys), free(st->ids.vals);
}

/* Waits for the topic's metadata and assigns all of its partitions from the
 * beginning. Asks for all topics: a request naming the topic may make a broker
 * (or the mock cluster) auto-create it, and a reader must not create topics.
 * 0 on success; -1 (logged) when the topic is not there by deadline. */
static int trace_reader_assign(rd_kafka_t *rk, const char *topic, int64_t deadline)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    rd_kafka_topic_partition_list_t *parts = NULL;
    for (int64_t left; !parts && (left = deadline - clock_mono_ms()) > 0;) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t merr =
            rd_kafka_metadata(rk, 1, NULL, &md, (int)(left < 2000 ? left : 2000));
        if (merr) {
            err = merr;
        } else {
            for (int t = 0; t < md->topic_cnt; t++) {
                const struct rd_kafka_metadata_topic *mt = &md->topics[t];
                /* A topic being created has no error yet no partitions. */
                if (strcmp(mt->topic, topic) != 0 || mt->err || mt->partition_cnt == 0) continue;
                parts = rd_kafka_topic_partition_list_new(mt->partition_cnt);
                for (int i = 0; i < mt->partition_cnt; i++)
                    rd_kafka_topic_partition_list_add(parts, topic, mt->partitions[i].id)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
            }
            rd_kafka_metadata_destroy(md);
        }
        if (!parts) usleep(200 * 1000);
    }
    if (!parts) {
        log_error("trace: topic %s not available: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    err = rd_kafka_assign(rk, parts);
    if (err) log_error("trace: assign: %s", rd_kafka_err2str(err));
    else log_info("trace: reading %d partition(s) of %s", parts->cnt, topic);
    rd_kafka_topic_partition_list_destroy(parts);
    return err ? -1 : 0;
}

static int trace_reader_usage(int rc)
{
    fprintf(
        rc ? stderr : stdout,
        "usage: lineagent trace --brokers HOST:PORT[,...] [--topic T] [--format jsonl|summary]\n"
        "         [--idle-ms N] [--timeout-ms N] [--expect N] [-X key=value ...]\n"
        "  --topic       default lineagent.trace.v1\n"
        "  --format      summary (default): lots and integrity; jsonl: each record as delivered\n"
        "  --idle-ms     stop after this long without a record (default 3000)\n"
        "  --timeout-ms  give up after this long in all (default 60000)\n"
        "  --expect N    read until N distinct events are seen; fewer by the timeout: exit 1\n"
        "  -X key=value  librdkafka property (security.protocol, ssl.ca.location, ...)\n"
        "exit: 0 ok, 1 Kafka failure or too few events, 2 usage, 3 integrity failure\n");
    return rc;
}

typedef struct trace_reader_opts {
    const char *brokers, *topic, *format;
    long idle_ms, timeout_ms, expect;
} trace_reader_opts;

static int trace_reader_number(const char *opt, const char *s, long *out)
{
    char *end;
    *out = strtol(s, &end, 10);
    if (*s && !*end && *out >= 0) return 0;
    fprintf(stderr, "trace: %s wants a non-negative number, not \"%s\"\n", opt, s);
    return -1;
}

/* Options into o, -X properties into conf. 0 to run, 1 for --help, -1 after
 * reporting a usage error. */
static int trace_reader_parse(int argc, char **argv, trace_reader_opts *o, rd_kafka_conf_t *conf)
{
    char errstr[512];
    for (int i = 1; i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) return 1;
        if (!val) {
            fprintf(stderr, "trace: %s needs a value\n", opt);
            return -1;
        }
        if (strcmp(opt, "--brokers") == 0) o->brokers = val;
        else if (strcmp(opt, "--topic") == 0) o->topic = val;
        else if (strcmp(opt, "--format") == 0) o->format = val;
        else if (strcmp(opt, "--idle-ms") == 0) rc = trace_reader_number(opt, val, &o->idle_ms);
        else if (strcmp(opt, "--timeout-ms") == 0)
            rc = trace_reader_number(opt, val, &o->timeout_ms);
        else if (strcmp(opt, "--expect") == 0) rc = trace_reader_number(opt, val, &o->expect);
        else if (strcmp(opt, "-X") == 0) {
            const char *eq = strchr(val, '=');
            char *key = eq ? strndup(val, (size_t)(eq - val)) : NULL;
            if (!key || rd_kafka_conf_set(conf, key, eq + 1, errstr, sizeof errstr)) {
                fprintf(stderr, "trace: -X %s: %s\n", val, eq ? errstr : "expected key=value");
                rc = -1;
            }
            free(key);
        } else {
            fprintf(stderr, "trace: unknown option %s\n", opt);
            rc = -1;
        }
        if (rc) return rc;
    }
    if (strcmp(o->format, "jsonl") != 0 && strcmp(o->format, "summary") != 0) {
        fprintf(stderr, "trace: --format is jsonl or summary\n");
        return -1;
    }
    if (!o->brokers) {
        fprintf(stderr, "trace: --brokers is required\n");
        return -1;
    }
    if (rd_kafka_conf_set(conf, "bootstrap.servers", o->brokers, errstr, sizeof errstr)) {
        fprintf(stderr, "trace: --brokers: %s\n", errstr);
        return -1;
    }
    return 0;
}

/* Reads until --expect is met and the topic has been idle for --idle-ms, or
 * until the timeout. 0, or 1 when it timed out short of --expect. */
static int trace_reader_consume(rd_kafka_t *rk, const trace_reader_opts *o, trace_reader_state *st,
                                int64_t deadline)
{
    /* Idle time counts from the assignment, so an empty topic ends too. */
    for (int64_t last = clock_mono_ms();;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        int64_t now = clock_mono_ms();
        if (m && m->err) log_warn("trace: %s", rd_kafka_message_errstr(m));
        else if (m) {
            trace_reader_record(st, m);
            last = now;
        }
        if (m) rd_kafka_message_destroy(m);
        uint64_t events = st->ids.n + st->no_id;
        if (events >= (uint64_t)o->expect && now - last >= o->idle_ms) return 0;
        if (now < deadline) continue;
        if (events >= (uint64_t)o->expect) return 0;
        log_error("trace: timed out after %ld ms with %" PRIu64 " of %ld expected events",
                  o->timeout_ms, events, o->expect);
        return 1;
    }
}

int trace_reader_feed(const void *const *values, const size_t *lens, size_t n)
{
    trace_reader_state st = {0};
    for (size_t i = 0; i < n; i++) {
        rd_kafka_message_t m = {.payload = (void *)values[i], .len = lens[i], .offset = (int64_t)i};
        trace_reader_record(&st, &m);
    }
    int rc = trace_reader_print_summary(&st);
    fflush(stdout);
    trace_reader_free(&st);
    return rc;
}

int trace_reader_main(int argc, char **argv)
{
    trace_reader_opts o = {
        .topic = "lineagent.trace.v1", .format = "summary", .idle_ms = 3000, .timeout_ms = 60000};
    char errstr[512], group[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* assign() still wants a group.id, but no group is joined and nothing is
     * committed. Set before parsing so -X can override. */
    snprintf(group, sizeof group, "lineagent-trace-%ld", (long)getpid());
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", NULL, 0);
    int parsed = trace_reader_parse(argc, argv, &o, conf);
    if (parsed) {
        rd_kafka_conf_destroy(conf);
        return trace_reader_usage(parsed > 0 ? 0 : 2);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        log_error("trace: kafka: %s", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    trace_reader_state st = {.jsonl = strcmp(o.format, "jsonl") == 0};
    int64_t deadline = clock_mono_ms() + o.timeout_ms;
    int rc = trace_reader_assign(rk, o.topic, deadline)
                 ? 1
                 : trace_reader_consume(rk, &o, &st, deadline);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    /* A short read still gets its summary: it shows what did arrive. */
    if (!st.jsonl && (rc == 0 || st.records > 0)) {
        int integrity = trace_reader_print_summary(&st);
        if (!rc) rc = integrity;
    }
    fflush(stdout);
    trace_reader_free(&st);
    return rc;
}
