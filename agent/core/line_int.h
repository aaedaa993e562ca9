/* SPDX-License-Identifier: Apache-2.0 */
/* line_int.h - what the line coordinator's source files share and no one
 * else sees: the release, lot and unit types (line.c owns and changes them)
 * and the trace events built from them (line_events.c). */
#ifndef LINEAGENT_LINE_INT_H
#define LINEAGENT_LINE_INT_H

#include <stdint.h>

#include <jansson.h>

#include "changeover.h"
#include "event.h"
#include "line.h"
#include "site_watch.h"
#include "spool.h"
#include "station.h"

/* A firmware release as bound to boards: shared by the lot and every unit
 * written with it, freed when the last one lets go (coordinator thread only). */
typedef struct release {
    int refs;
    uint32_t revision;
    char version[SPOOL_ID_MAX];
    char sha256[65];
    uint8_t *data;
    adapter_image img;
} release;

typedef struct lot {
    spool_lot st;
    JobOrder *order; /* the revision in effect */
    release *rel;    /* its firmware, for boards not yet written */
    Step flow[STATION_MAX_FLOW];
    int n_flow;
    uint32_t next_idx; /* arrival index of the next board to load */
    uint32_t taken;    /* boards taken onto the line (loaded, durable or not) */
    uint32_t loading;  /* loads outstanding */
    int dirty;         /* st changed in this transaction; written before commit */
    int64_t last_write_ns; /* write time of st.last_written_board (monotonic; 0 after a restart) */
    int units;         /* units still referring to this lot */
    int completed;     /* off the lot list; freed with its last unit */
    struct lot *next;
} lot;

typedef struct unit {
    lot *lt;
    spool_unit st;
    release *rel; /* bound when the job containing WRITE is dispatched */
    char write_station[SPOOL_ID_MAX];
    char verified_version[SPOOL_ID_MAX];
    char verified_sha256[65];
    int flow_pos;
    int finished; /* outcome committed; waiting for the station to let go */
    int writing;  /* its write was handed out and it is neither verified nor ended yet */
    int64_t write_ns; /* when its WRITE step ended at the station (monotonic) */
    int calibrated, lock_verified; /* for the end-of-line check */
    uint32_t site;                 /* fixture site of the latest step result */
    uint32_t step_ms;              /* that step's duration at the station */
    /* Issued at PROVISION. Not in the spool: a board resumed after a restart
     * runs its flow again and the server returns the same identity. */
    char serial[128];
    struct unit *prev, *next; /* every live unit, so stop can free them */
} unit;

/* ---- line_events.c: one function per trace event ----------------------
 * Each builds its event from the state the coordinator has already set and
 * appends it inside the coordinator's open transaction; 0, or -1 on a spool
 * error. Every event about a provisioned unit carries its serial. */

typedef struct line_emitter {
    spool *sp;
    const char *site, *line; /* stamped into every event */
    int committed;           /* events appended in this transaction */
} line_emitter;

/* The revision now in effect for l (l->order). */
int line_ev_order_accepted(line_emitter *em, const lot *l);
/* o may be NULL (the payload did not decode). */
int line_ev_order_rejected(line_emitter *em, const JobOrder *o, const char *reason);
int line_ev_lot_started(line_emitter *em, const lot *l);
/* With the lot's outcomes per release and its first-pass yield, counted
 * from the spool's unit rows (this transaction's included). */
int line_ev_lot_completed(line_emitter *em, const lot *l);
/* Every test record is kept, passed or not (rule T1). */
int line_ev_unit_tested(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res);
/* The unit's bound release, verified by read-back (res: VERIFY's result,
 * with the method the agent verified it by). */
int line_ev_unit_written(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res);
int line_ev_changeover(line_emitter *em, const unit *u, const char *st_name, const changeover *co);
int line_ev_unit_provisioned(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res);
int line_ev_unit_calibrated(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res);
int line_ev_unit_locked(line_emitter *em, const unit *u, const char *st_name, const adapter_result *res);
int line_ev_unit_failed(line_emitter *em, const unit *u, const char *st_name, Step step, const char *mode,
                        const char *detail);
int line_ev_unit_completed(line_emitter *em, const unit *u, const char *st_name, int passed);

/* ---- line_sites.c: fixture-site health and <prefix>/stations/<name> ---
 * (and the firmware_corrupt alarms of lots held at resume, for the status
 * topic beside the site alarms). Fed by the coordinator with each board's outcome at a station's site;
 * raises and clears fixture_site_suspect (logging it, pausing the site in
 * pause mode) and publishes each changed station's document after commit,
 * at most twice a second. */

typedef struct line_sites {
    site_watch *sw;
    station **stations;
    size_t n;
    const char *prefix; /* <prefix>, for the resume topic in the log */
    int changed;        /* an alarm went up or down since the hook was called */
    uint8_t *dirty;     /* per station: its document to publish */
    int64_t *pub_ms;    /* per station: when it was last published */
    int (*publish_live)(void *ud, const char *subtopic, const char *json);
    void *ud;
    json_t *held_lots; /* firmware_corrupt: lots not resumed (lot_image.h) */
} line_sites;

void line_sites_init(line_sites *ls, const config *cfg, station **stations, size_t n, const line_hooks *hooks);
void line_sites_free(line_sites *ls);
/* A board's job at the site ended: passed, or failed at step with mode. */
void line_sites_outcome(line_sites *ls, station *st, uint32_t site, int passed, Step step, const char *mode);
/* An operator's resume (site < 0: every site of the station). */
void line_sites_resume(line_sites *ls, const char *name, int site);
int line_sites_alarms(line_sites *ls, json_t *alarms);
void line_sites_publish(line_sites *ls);

#endif
