/* SPDX-License-Identifier: Apache-2.0 */
/* line.h - the line coordinator: owns lots, units and stations, turns every
 * station result and order decision into spool records and trace events in
 * one group-committed transaction, and only then moves boards on, answers
 * the MES and wakes the Kafka forwarder. Runs on the agent's main thread. */
#ifndef LINEAGENT_LINE_H
#define LINEAGENT_LINE_H

#include <jansson.h>

#include "config.h"
#include "intake.h"
#include "spool.h"

typedef struct line line;

typedef struct line_hooks {
    void (*publish_result)(void *ud, const char *json); /* after commit */
    void (*events_committed)(void *ud);                 /* after commit */
    void *ud;
    /* Optional. A fixture_site_suspect alarm went up or down (after commit). */
    void (*sites_changed)(void *ud);
    /* Optional. A retained live document for <prefix>/<subtopic>
     * ("stations/<name>"); 0 when taken, else it is offered again later. */
    int (*publish_live)(void *ud, const char *subtopic, const char *json);
} line_hooks;

/* Starts the stations and resumes the lots and units the spool holds. */
line *line_start(const config *cfg, spool *sp, const line_hooks *hooks, char *err, size_t err_len);
/* Intake decisions arrive here (any thread; ownership passes). */
void line_post_decision(line *ln, intake_decision *d);
/* Waits up to timeout_ms for work, then commits everything that arrived in
 * one transaction and acts on it. -1 on a spool failure (the caller exits:
 * the spool is the truth and a restart resumes from it). LINE_BUSY when the
 * spool's write lock could not be had within its busy timeout: nothing was
 * applied and everything stays queued for the next call, which waits for
 * the lock again (and loads no new board meanwhile). */
#define LINE_BUSY 1
int line_step(line *ln, int timeout_ms);
/* No new boards from now on; boards on the line finish. */
void line_stop_feeding(line *ln);
/* Back-pressure: while paused no new boards are loaded (boards on the line
 * finish); unpausing resumes loading. */
void line_set_paused(line *ln, int paused);
/* An operator clears fixture_site_suspect at a station's site (site < 0:
 * every site) and the site loads boards again. Any thread. */
void line_site_resume(line *ln, const char *name, int site);
/* fixture_site_suspect alarms up now, and one status entry each appended
 * to the JSON array alarms. Coordinator's thread. */
int line_site_alarms(line *ln, json_t *alarms);
/* Lots held at start (firmware_corrupt alarms); their entries come after
 * the site alarms in line_site_alarms. */
int line_held_lots(line *ln);
/* Boards on the line (loaded or being loaded, not yet finished). */
int line_in_flight(line *ln);
void line_stop(line *ln);

#endif
