/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.c - tracestore's logger (ts_log.h). One fprintf per line, so lines
 * from the consumer and the HTTP thread never interleave mid-line. */
#include "ts_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static int ts_log_max = TS_LOG_INFO;
static const char *const ts_log_names[] = {"error", "warn", "info", "debug"};

void ts_log_set_level(int level) { ts_log_max = level; }

int ts_log_level_parse(const char *name)
{
    for (int i = 0; i <= TS_LOG_DEBUG; i++)
        if (strcmp(name, ts_log_names[i]) == 0) return i;
    return -1;
}

void ts_log(int level, const char *fmt, ...)
{
    if (level > ts_log_max) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03dZ %s %s\n", when, (int)(tv.tv_usec / 1000), ts_log_names[level], msg);
}
