/* SPDX-License-Identifier: Apache-2.0 */
/* line_sites.c - the coordinator's side of fixture-site health: outcomes
 * into site_watch, the alarm logged and the site paused or resumed on its
 * station, and <prefix>/stations/<name> built when changed and handed to
 * the publish_live hook (the agent's hands it to the follower thread,
 * which publishes it; the coordinator never calls into Paho). Runs on the
 * coordinator's thread only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "line_int.h"
#include "log.h"

#define LINE_SITES_PUB_MS 500 /* at most twice a second per station */

void line_sites_init(line_sites *ls, const config *cfg, station **stations, size_t n, const line_hooks *hooks)
{
    const char **names = calloc(n + 1, sizeof *names);
    uint32_t *sites = calloc(n + 1, sizeof *sites);
    for (size_t i = 0; i < n; i++) {
        names[i] = station_name(stations[i]);
        sites[i] = station_sites(stations[i]);
    }
    site_watch_conf c = {cfg->site_alarm_consecutive, cfg->site_alarm_rate, cfg->site_alarm_window,
                         cfg->site_alarm_action && strcmp(cfg->site_alarm_action, "pause") == 0};
    ls->sw = site_watch_new(&c, n, names, sites);
    free(names);
    free(sites);
    ls->stations = stations;
    ls->n = n;
    ls->prefix = cfg->topic_prefix;
    ls->dirty = malloc(n + 1);
    memset(ls->dirty, 1, n + 1); /* every station's document once at start */
    ls->pub_ms = calloc(n + 1, sizeof *ls->pub_ms);
    ls->publish_live = hooks->publish_live;
    ls->ud = hooks->ud;
    ls->held_lots = json_array();
}

void line_sites_free(line_sites *ls)
{
    json_decref(ls->held_lots);
    site_watch_free(ls->sw);
    free(ls->dirty);
    free(ls->pub_ms);
    memset(ls, 0, sizeof *ls);
}

void line_sites_outcome(line_sites *ls, station *st, uint32_t site, int passed, Step step, const char *mode)
{
    size_t i = 0;
    while (i < ls->n && ls->stations[i] != st) i++;
    if (i == ls->n) return;
    ls->dirty[i] = 1;
    int rc = site_watch_board(ls->sw, i, site, passed, step, mode);
    if (rc == SITE_WATCH_SAME) return;
    ls->changed = 1;
    if (rc == SITE_WATCH_CLEARED) {
        log_info("alarm fixture_site_suspect cleared: station %s site %u passed a board", station_name(st), site);
        return;
    }
    char detail[256];
    site_watch_describe(ls->sw, i, site, detail, sizeof detail);
    if (site_watch_paused(ls->sw, i, site)) {
        station_pause_site(st, site, 1);
        log_error("ALARM fixture_site_suspect: %s; the site loads no more boards until an operator resumes it "
                  "(%s/command/site/resume)", detail, ls->prefix);
    } else {
        log_error("ALARM fixture_site_suspect: %s; check the fixture's contacts (warn only)", detail);
    }
}

void line_sites_resume(line_sites *ls, const char *name, int site)
{
    int i = site_watch_find(ls->sw, name);
    if (i < 0 || (site >= 0 && (uint32_t)site >= station_sites(ls->stations[i]))) {
        log_warn("site resume: no station %s site %d", name, site);
        return;
    }
    int n = site_watch_resume(ls->sw, (size_t)i, site);
    for (uint32_t k = 0; k < station_sites(ls->stations[i]); k++)
        if (site < 0 || (uint32_t)site == k) station_pause_site(ls->stations[i], k, 0);
    ls->dirty[i] = 1;
    ls->changed |= n > 0;
    if (site < 0) log_info("site resume: station %s, every site, by an operator: %d alarm(s) cleared", name, n);
    else log_info("site resume: station %s site %d by an operator: %d alarm(s) cleared", name, site, n);
}

int line_sites_alarms(line_sites *ls, json_t *alarms)
{
    if (alarms) site_watch_alarms_json(ls->sw, alarms);
    if (alarms) json_array_extend(alarms, ls->held_lots);
    return site_watch_raised(ls->sw);
}

void line_sites_publish(line_sites *ls)
{
    if (!ls->publish_live) return;
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < ls->n; i++) {
        if (!ls->dirty[i] || now - ls->pub_ms[i] < LINE_SITES_PUB_MS) continue;
        uint32_t n = station_sites(ls->stations[i]);
        char(*boards)[ADAPTER_ID_MAX] = calloc(n, sizeof *boards);
        const char **ptrs = calloc(n, sizeof *ptrs);
        for (uint32_t k = 0; k < n; k++) {
            station_site_board(ls->stations[i], k, boards[k], sizeof boards[k]);
            ptrs[k] = boards[k];
        }
        char *json = site_watch_station_json(ls->sw, i, ptrs, clock_wall_ms());
        char topic[128];
        snprintf(topic, sizeof topic, "stations/%s", station_name(ls->stations[i]));
        if (json && ls->publish_live(ls->ud, topic, json) == 0) {
            ls->dirty[i] = 0;
            ls->pub_ms[i] = now;
        }
        free(json);
        free(ptrs);
        free(boards);
    }
}
