/* SPDX-License-Identifier: Apache-2.0 */
/* ts_log.h - tracestore's log lines on stderr: UTC time, level, message.
 * Kept apart from the agent's logger so the service links no agent code. */
#ifndef TS_LOG_H
#define TS_LOG_H

enum { TS_LOG_ERROR, TS_LOG_WARN, TS_LOG_INFO, TS_LOG_DEBUG };

/* Lines above this level are dropped; set once at start-up. */
void ts_log_set_level(int level);
int ts_log_level_parse(const char *name); /* -1 if unknown */

void ts_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define ts_error(...) ts_log(TS_LOG_ERROR, __VA_ARGS__)
#define ts_warn(...) ts_log(TS_LOG_WARN, __VA_ARGS__)
#define ts_info(...) ts_log(TS_LOG_INFO, __VA_ARGS__)
#define ts_debug(...) ts_log(TS_LOG_DEBUG, __VA_ARGS__)

#endif
