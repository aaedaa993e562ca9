/* line.h - the line coordinator: owns lots, units and stations, turns every
 * station result and order decision into spool records and trace events in
 * one group-committed transaction, and only then moves boards on, answers
 * the MES and wakes the Kafka forwarder. Runs on the agent's main thread. */
#ifndef LINEAGENT_LINE_H
#define LINEAGENT_LINE_H

#include "config.h"
#include "intake.h"
#include "spool.h"

typedef struct line line;

typedef struct line_hooks {
    void (*publish_result)(void *ud, const char *json); /* after commit */
    void (*events_committed)(void *ud);                 /* after commit */
    void *ud;
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
/* Boards on the line (loaded or being loaded, not yet finished). */
int line_in_flight(line *ln);
void line_stop(line *ln);

#endif
