/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h - the agent's Prometheus metrics: counters and gauges the
 * modules bump as things happen (relaxed atomic adds: no lock on any hot
 * path), rendered in the Prometheus text format (names prefixed
 * lineagent_) for the HTTP listener's /metrics.
 *
 * One registry per process, private to metrics.c: a process runs one line,
 * and a module deep in the stack (the forwarder's delivery report, the MQTT
 * link's connect callback) bumps a counter without a handle threaded to it.
 * Label values come from bounded sets only: configured stations (at most
 * METRICS_MAX_STATIONS) and their sites, the steps, and the first
 * METRICS_MAX_FAILURES (step, failure mode) pairs, later ones counting under
 * mode "other". Never a board id or a serial. */
#ifndef LINEAGENT_METRICS_H
#define LINEAGENT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_STATIONS 128
#define METRICS_MAX_SITES 64
#define METRICS_MAX_STEPS 8 /* step numbers 0..7 (the proto's Step values) */
#define METRICS_MAX_FAILURES 64

enum metrics_counter {
    METRICS_EVENTS_DELIVERED, /* events acknowledged by Kafka */
    METRICS_KAFKA_ERRORS,     /* delivery reports with an error (resent) */
    METRICS_ORDERS_ACCEPTED,
    METRICS_ORDERS_REJECTED,
    METRICS_N_COUNTERS
};

enum metrics_gauge {
    METRICS_EVENTS_SPOOLED,      /* seq of the last committed event (a counter: never goes back) */
    METRICS_EVENTS_PENDING,      /* events from the oldest undelivered one on */
    METRICS_OLDEST_PENDING_MS,   /* age of the oldest undelivered event */
    METRICS_MQTT_CONNECTED,      /* 1 while connected to the broker */
    METRICS_N_GAUGES
};

/* Alarms the agent raises; the gauge lineagent_alarm{alarm=...} is how many
 * instances of each are up (fixture_site_suspect: one per suspect site). */
enum metrics_alarm {
    METRICS_ALARM_SPOOL_FULL,
    METRICS_ALARM_SPOOL_BUSY,
    METRICS_ALARM_SPOOL_LOW_SPACE,
    METRICS_ALARM_SPOOL_OVER_LIMIT,
    METRICS_ALARM_KAFKA_STALLED,
    METRICS_ALARM_FIXTURE_SITE_SUSPECT,
    METRICS_ALARM_FIRMWARE_CORRUPT, /* one per lot held at start */
    METRICS_N_ALARMS
};

void metrics_add(enum metrics_counter c, uint64_t n);
void metrics_set(enum metrics_gauge g, int64_t v);
void metrics_set_alarm(enum metrics_alarm a, int64_t raised);

/* Registers a station and its site count (idempotent by name: a line
 * restarted after a full disk gets the same index). Returns its index, or
 * -1 when METRICS_MAX_STATIONS are registered (its metrics are then not
 * kept). Not for hot paths: it takes a lock. */
int metrics_station(const char *name, uint32_t sites);
/* Looks a registered station up by name: its index or -1. Lock-free. */
int metrics_station_find(const char *name);
/* The label a step number renders as ("write", ...); set once per step. */
void metrics_name_step(int step, const char *name);

/* A unit's outcome, counted at the station and site that decided it.
 * Out-of-range indices are ignored. */
void metrics_unit(int station, uint32_t site, int passed);
/* One step's duration at a station (the adapter's work), for the
 * lineagent_step_duration_seconds histogram. */
void metrics_step_time(int station, int step, int64_t ns);
/* A failed step by failure mode. Takes a lock only the first time a pair is
 * seen. */
void metrics_step_failed(int step, const char *mode);

/* The whole registry in the Prometheus text exposition format (0.0.4);
 * malloc'ed, NUL-terminated, length in *len. NULL when out of memory. */
char *metrics_render(size_t *len);
/* Tests only: forget every registration and zero every value. */
void metrics_reset(void);

#endif
