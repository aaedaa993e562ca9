/* SPDX-License-Identifier: Apache-2.0 */
/* service.h - living as a system service: the user the agent runs as (a
 * warning when that is root, the drop to [agent] user), and the systemd
 * notify protocol (READY, STATUS, WATCHDOG). Without $NOTIFY_SOCKET (not
 * started by systemd) the notify calls do nothing. Main thread only. */
#ifndef LINEAGENT_SERVICE_H
#define LINEAGENT_SERVICE_H

#include <stddef.h>
#include <stdint.h>

/* Started as root: with user set, switches to that user (its groups, then
 * gid, then uid, checking root cannot be regained), as Mosquitto does once
 * it has opened its listeners; without it, logs a warning and stays. Not
 * root: nothing changes. 0, or -1 with err. */
int service_drop_privileges(const char *user, char *err, size_t err_len);

typedef struct service_notify {
    int64_t watchdog_ms; /* WatchdogSec as systemd passed it; 0: none */
    int64_t next_ms;     /* next STATUS / WATCHDOG (monotonic) */
} service_notify;

/* Reads the watchdog interval and sends READY=1 with a first status. */
void service_ready(service_notify *n, const char *status);
/* From the main loop, each turn: at most once a second (and at half the
 * watchdog interval) sends STATUS and, when alive, WATCHDOG=1. A loop that
 * stops turning, or a caller that says not alive, sends no heartbeat, and
 * systemd restarts the service when WatchdogSec runs out. */
void service_tick(service_notify *n, int64_t now_ms, int alive, const char *status);
void service_stopping(void);

#endif
