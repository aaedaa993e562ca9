/* SPDX-License-Identifier: Apache-2.0 */
/* site_watch.c - per-site outcome counts, the fixture_site_suspect rules
 * and their JSON. The window is a ring of the last outcomes per site. */
#include "site_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct sw_site {
    uint64_t passed, failed;
    uint32_t run;         /* failures in a row on run_step */
    Step run_step;
    Step last_step;       /* the last failure's step and mode */
    char last_mode[48];
    uint8_t *ring;        /* 1 = failed, the last window outcomes */
    uint32_t ring_n, ring_pos, ring_failed;
    int raised;
    uint32_t raised_count; /* failures behind the alarm when raised */
    int by_rate;
} sw_site;

typedef struct sw_station {
    char name[65];
    uint32_t n_sites;
    sw_site *sites;
} sw_station;

struct site_watch {
    site_watch_conf c;
    size_t n;
    sw_station *st;
};

site_watch *site_watch_new(const site_watch_conf *c, size_t n, const char *const *names, const uint32_t *sites)
{
    site_watch *w = calloc(1, sizeof *w);
    w->c = *c;
    if (w->c.window < 1) w->c.window = 1;
    w->n = n;
    w->st = calloc(n ? n : 1, sizeof *w->st);
    for (size_t i = 0; i < n; i++) {
        snprintf(w->st[i].name, sizeof w->st[i].name, "%s", names[i]);
        w->st[i].n_sites = sites[i] ? sites[i] : 1;
        w->st[i].sites = calloc(w->st[i].n_sites, sizeof *w->st[i].sites);
        for (uint32_t k = 0; k < w->st[i].n_sites; k++) w->st[i].sites[k].ring = calloc((size_t)w->c.window, 1);
    }
    return w;
}

void site_watch_free(site_watch *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        for (uint32_t k = 0; k < w->st[i].n_sites; k++) free(w->st[i].sites[k].ring);
        free(w->st[i].sites);
    }
    free(w->st);
    free(w);
}

static sw_site *sw_get(const site_watch *w, size_t st, uint32_t site)
{
    return st < w->n && site < w->st[st].n_sites ? &w->st[st].sites[site] : NULL;
}

static void sw_start_over(sw_site *s, int window)
{
    s->run = 0;
    s->ring_n = s->ring_pos = s->ring_failed = 0;
    memset(s->ring, 0, (size_t)window);
}

int site_watch_board(site_watch *w, size_t st, uint32_t site, int passed, Step step, const char *mode)
{
    sw_site *s = sw_get(w, st, site);
    if (!s) return SITE_WATCH_SAME;
    uint32_t win = (uint32_t)w->c.window;
    if (s->ring_n == win) s->ring_failed -= s->ring[s->ring_pos];
    else s->ring_n++;
    s->ring[s->ring_pos] = (uint8_t)!passed;
    s->ring_failed += !passed;
    s->ring_pos = (s->ring_pos + 1) % win;
    if (passed) {
        s->passed++;
        s->run = 0;
        if (s->raised && !w->c.pause) {
            s->raised = 0;
            sw_start_over(s, w->c.window);
            return SITE_WATCH_CLEARED;
        }
        return SITE_WATCH_SAME;
    }
    s->failed++;
    s->run = s->run && s->run_step == step ? s->run + 1 : 1;
    s->run_step = step;
    s->last_step = step;
    snprintf(s->last_mode, sizeof s->last_mode, "%s", mode ? mode : "");
    if (s->raised) return SITE_WATCH_SAME;
    int by_run = w->c.consecutive > 0 && s->run >= (uint32_t)w->c.consecutive;
    int by_rate = w->c.rate > 0 && s->ring_n == win && (double)s->ring_failed / win > w->c.rate;
    if (!by_run && !by_rate) return SITE_WATCH_SAME;
    s->raised = 1;
    s->by_rate = !by_run;
    s->raised_count = by_run ? s->run : s->ring_failed;
    return SITE_WATCH_RAISED;
}

int site_watch_resume(site_watch *w, size_t st, int site)
{
    if (st >= w->n) return 0;
    int cleared = 0;
    for (uint32_t k = 0; k < w->st[st].n_sites; k++) {
        if (site >= 0 && (uint32_t)site != k) continue;
        sw_site *s = &w->st[st].sites[k];
        cleared += s->raised;
        s->raised = 0;
        sw_start_over(s, w->c.window);
    }
    return cleared;
}

int site_watch_paused(const site_watch *w, size_t st, uint32_t site)
{
    const sw_site *s = sw_get(w, st, site);
    return s && w->c.pause && s->raised;
}

int site_watch_raised(const site_watch *w)
{
    int n = 0;
    for (size_t i = 0; i < w->n; i++)
        for (uint32_t k = 0; k < w->st[i].n_sites; k++) n += w->st[i].sites[k].raised;
    return n;
}

int site_watch_find(const site_watch *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->st[i].name, name) == 0) return (int)i;
    return -1;
}

void site_watch_describe(const site_watch *w, size_t st, uint32_t site, char *buf, size_t len)
{
    const sw_site *s = sw_get(w, st, site);
    if (!s) {
        snprintf(buf, len, "no such site");
        return;
    }
    if (s->by_rate)
        snprintf(buf, len, "station %s site %u: %u of its last %d boards failed, the last at %s (%s)",
                 w->st[st].name, site, s->raised_count, w->c.window, order_step_name(s->last_step), s->last_mode);
    else
        snprintf(buf, len, "station %s site %u: %u boards failed in a row at %s (%s)", w->st[st].name, site,
                 s->raised_count, order_step_name(s->last_step), s->last_mode);
}

void site_watch_alarms_json(const site_watch *w, json_t *alarms)
{
    for (size_t i = 0; i < w->n; i++)
        for (uint32_t k = 0; k < w->st[i].n_sites; k++) {
            const sw_site *s = &w->st[i].sites[k];
            if (!s->raised) continue;
            char detail[256];
            site_watch_describe(w, i, k, detail, sizeof detail);
            json_array_append_new(alarms, json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:b}", "alarm",
                                                    "fixture_site_suspect", "detail", detail, "station",
                                                    w->st[i].name, "site", (int)k, "step",
                                                    order_step_name(s->last_step), "mode", s->last_mode, "count",
                                                    (int)s->raised_count, "paused", w->c.pause));
        }
}

char *site_watch_station_json(const site_watch *w, size_t st, const char *const *boards, int64_t now_ms)
{
    if (st >= w->n) return NULL;
    const sw_station *ws = &w->st[st];
    json_t *sites = json_array();
    int busy = 0, paused = 0, faulted = 0;
    for (uint32_t k = 0; k < ws->n_sites; k++) {
        const sw_site *s = &ws->sites[k];
        const char *board = boards && boards[k] && boards[k][0] ? boards[k] : NULL;
        int p = w->c.pause && s->raised;
        busy |= board != NULL;
        paused |= p;
        faulted |= s->raised && !p;
        json_array_append_new(sites, json_pack("{s:i, s:s, s:o, s:I, s:I, s:i, s:b}", "site", (int)k, "state",
                                               p ? "paused" : board ? "busy" : "idle", "board",
                                               board ? json_string(board) : json_null(), "passed",
                                               (json_int_t)s->passed, "failed", (json_int_t)s->failed,
                                               "consecutiveFailures", (int)s->run, "suspect", s->raised));
    }
    const char *state = faulted ? "faulted" : paused ? "paused" : busy ? "busy" : "idle";
    char at[32];
    clock_format_utc(now_ms, at, sizeof at);
    json_t *doc = json_pack("{s:s, s:s, s:o, s:s}", "station", ws->name, "state", state, "sites", sites,
                            "updatedAt", at);
    char *out = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return out;
}
