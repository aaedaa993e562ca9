/* SPDX-License-Identifier: Apache-2.0 */
/* station.h - one station of the line: a worker thread that takes boards
 * from its queue and runs the steps it performs through its adapter, posting
 * every step's result back to the line coordinator as it happens. */
#ifndef LINEAGENT_STATION_H
#define LINEAGENT_STATION_H

#include <stdint.h>

#include "adapter.h"
#include "config.h"
#include "latency.h"
#include "order.h"

#define STATION_MAX_FLOW 6

typedef struct station station;

typedef struct station_job {
    void *unit;            /* the coordinator's unit; handed back untouched */
    int load;              /* load the board onto the fixture first */
    char lot_id[ADAPTER_ID_MAX];
    char board_id[ADAPTER_ID_MAX]; /* filled by the load when load is set */
    uint32_t idx;          /* arrival index in the lot, for load */
    Step flow[STATION_MAX_FLOW];
    int n_flow;
    int from;              /* first flow index this station is asked to run */
    uint32_t steps_done;   /* bit (1 << Step) per step already passed */
    const adapter_image *image; /* release bound to the unit, for WRITE/VERIFY */
    /* The order's test items (name, low, high, unit; value unused): TEST
     * measurements are judged against these, and a missing one fails. */
    adapter_measurement limits[ADAPTER_MAX_MEASUREMENTS];
    int n_limits;
    double cal_max_residual; /* CALIBRATE: 0 = no limit */
    int64_t queued_ns;     /* set by station_submit */
    char product[ADAPTER_ID_MAX];  /* for PROVISION */
    char order_id[ADAPTER_ID_MAX]; /* for PROVISION */
    char serial[128];      /* issued at PROVISION; empty before */
} station_job;

enum station_result_kind { STATION_LOADED, STATION_STEP, STATION_DONE };

typedef struct station_result {
    enum station_result_kind kind;
    station *st;
    void *unit;
    char board_id[ADAPTER_ID_MAX];
    Step step;            /* STATION_STEP */
    adapter_result res;   /* STATION_STEP */
    uint32_t site;        /* the fixture site that ran it (gang programming) */
    uint32_t duration_ms; /* STATION_STEP: how long the step took at the station */
    int64_t done_ns;      /* STATION_STEP: when it ended (monotonic): write order across sites */
    int next;             /* STATION_DONE: the flow index to continue at */
    int failed;           /* STATION_DONE: a step failed or the board was refused */
    struct station_result *chain; /* the job's next result */
} station_result;

/* Receives a job's results in order, as a chain ending with STATION_DONE
 * (ownership passes); called on the station's thread. One post per job
 * keeps the coordinator from waking for every step. */
typedef void (*station_post_fn)(void *ud, station_result *first, station_result *last);

/* Opens the adapter and starts the worker. NULL with err on failure. */
station *station_start(const station_config *cfg, station_post_fn post, void *ud, char *err, size_t err_len);
/* Gives each of the station's sites its own client of the provisioning
 * server (one keep-alive connection per site thread); call before submitting
 * jobs.
 * 0, or -1 with err. */
int station_enable_provisioning(station *st, const config *cfg, char *err, size_t err_len);
/* Queues a job (copied). */
void station_submit(station *st, const station_job *job);
/* Jobs queued or running. */
int station_load(station *st);
const char *station_name(const station *st);
/* A paused site finishes its board and takes no other until unpaused; the
 * station's other sites go on. */
void station_pause_site(station *st, uint32_t site, int paused);
/* Sites not paused. */
int station_sites_active(station *st);
uint32_t station_sites(const station *st);
/* The board on the site now ("" when none or still loading). */
void station_site_board(station *st, uint32_t site, char *buf, size_t len);
uint32_t station_steps(const station *st);
/* Finishes the running job, drops queued ones, joins, closes the adapter.
 * When lat is given, adds the station's dispatch latencies (submit until the
 * adapter is called) to it. */
void station_stop(station *st, latency_hist *lat);

/* Route interlock: 1 when every flow step before `from` has passed, so the
 * board may enter a station that starts at flow[from]. */
int station_interlock_ok(const Step *flow, int n_flow, int from, uint32_t steps_done);
/* Judges measurements against their limits; 0 when all pass, else -1 with
 * the first violation described in res->failure_mode / detail. */
int station_judge(adapter_result *res);
/* Judges against the order's items first (their limits replace the
 * station's; a missing item fails with measurement_missing and is recorded
 * with a NaN value), then every measurement as station_judge does. */
int station_judge_items(adapter_result *res, const adapter_measurement *items, int n_items);
/* VERIFY (rule R2): compares what the adapter read back (SHA-256, or a
 * CRC-32 the target computed) with the release image itself, and names the
 * method in res->verify_method. 0 when it matches and the step passed;
 * otherwise -1 with verify_mismatch, or verify_unreported when an adapter
 * that passed reported nothing to compare. */
int station_check_readback(const adapter_image *img, adapter_result *res);
/* Least-squares fit of reference = gain * raw + offset over the points;
 * -1 when fewer than two distinct raw values. *residual is the largest
 * |gain * raw + offset - reference|. */
int station_fit(const adapter_cal_point *pts, int n, double *offset, double *gain, double *residual);

#endif
