/* SPDX-License-Identifier: Apache-2.0 */
/* site_watch.h - fixture-site health: per station and site, the boards
 * passed and failed there, failures in a row, and the outcomes of the last
 * window boards; from them the alarm fixture_site_suspect (a site failing
 * boards in a row on one step, or too many of its last boards), cleared by
 * the site's next pass in warn mode or only by an operator in pause mode,
 * where the site takes no more boards meanwhile. Also the JSON for
 * <prefix>/stations/<name> and the alarm entries of <prefix>/status.
 * No I/O and no threads: the line coordinator feeds it. */
#ifndef LINEAGENT_SITE_WATCH_H
#define LINEAGENT_SITE_WATCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "order.h"

typedef struct site_watch_conf {
    int consecutive; /* 0: off */
    double rate;     /* 0: off */
    int window;      /* >= 1 */
    int pause;       /* 1: pause the site while raised; 0: warn */
} site_watch_conf;

typedef struct site_watch site_watch;

enum { SITE_WATCH_SAME, SITE_WATCH_RAISED, SITE_WATCH_CLEARED };

/* n stations, names[i] with sites[i] sites each. */
site_watch *site_watch_new(const site_watch_conf *c, size_t n, const char *const *names, const uint32_t *sites);
void site_watch_free(site_watch *w);
/* A board's job at station st, site ended: passed, or failed at step with
 * mode. SITE_WATCH_RAISED when this raises the site's alarm,
 * SITE_WATCH_CLEARED when it clears it (warn mode, a pass), else SAME.
 * Out-of-range st or site: SAME, nothing counted. */
int site_watch_board(site_watch *w, size_t st, uint32_t site, int passed, Step step, const char *mode);
/* An operator cleared the site (site < 0: every site of st): the alarm
 * goes down, the site loads again, its counts of failures in a row and in
 * the window start over. The number of alarms it cleared. */
int site_watch_resume(site_watch *w, size_t st, int site);
/* 1 while the site must not take boards (pause mode, alarm up). */
int site_watch_paused(const site_watch *w, size_t st, uint32_t site);
/* Alarms up now. */
int site_watch_raised(const site_watch *w);
/* The station's index by name, or -1. */
int site_watch_find(const site_watch *w, const char *name);
/* "station fct1 site 0: 5 boards failed in a row at TEST (vdd_low)". */
void site_watch_describe(const site_watch *w, size_t st, uint32_t site, char *buf, size_t len);
/* Appends one status entry per alarm up: {alarm, detail, station, site,
 * step, mode, count, paused}. */
void site_watch_alarms_json(const site_watch *w, json_t *alarms);
/* <prefix>/stations/<name>: state idle|busy|paused|faulted, and per site
 * its state, board (boards[site], NULL or "" when none), passed, failed,
 * consecutiveFailures and suspect. Malloc'ed; NULL when out of memory. */
char *site_watch_station_json(const site_watch *w, size_t st, const char *const *boards, int64_t now_ms);

#endif
