/* SPDX-License-Identifier: Apache-2.0 */
/* log.h - leveled, timestamped logging to stderr, safe from any thread. */
#ifndef LINEAGENT_LOG_H
#define LINEAGENT_LOG_H

enum log_level { LL_DEBUG = 0, LL_INFO, LL_WARN, LL_ERROR };

void log_set_level(enum log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 on anything else. */
int log_level_parse(const char *name);
void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LL_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LL_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LL_ERROR, __VA_ARGS__)

#endif
