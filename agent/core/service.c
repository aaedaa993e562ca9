/* SPDX-License-Identifier: Apache-2.0 */
/* service.c - privilege drop and sd_notify (libsystemd). */
#include "service.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"

int service_drop_privileges(const char *user, char *err, size_t err_len)
{
    if (geteuid() != 0) return 0;
    if (!user) {
        log_warn("running as root: the packaged service runs as user lineagent; set [agent] user to drop "
                 "privileges after start-up");
        return 0;
    }
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        snprintf(err, err_len, "[agent] user %s: %s", user, errno ? strerror(errno) : "no such user");
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) || setuid(pw->pw_uid)) {
        snprintf(err, err_len, "cannot become user %s: %s", user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        snprintf(err, err_len, "user %s could become root again; refusing to run", user);
        return -1;
    }
    log_info("running as user %s (uid %u, gid %u)", pw->pw_name, (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
    return 0;
}

void service_ready(service_notify *n, const char *status)
{
    uint64_t usec = 0;
    n->watchdog_ms = sd_watchdog_enabled(0, &usec) > 0 ? (int64_t)(usec / 1000) : 0;
    n->next_ms = 0;
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
    if (n->watchdog_ms) log_info("systemd watchdog: a heartbeat every %lld ms", (long long)n->watchdog_ms / 2);
}

void service_tick(service_notify *n, int64_t now_ms, int alive, const char *status)
{
    if (now_ms < n->next_ms) return;
    int64_t every = n->watchdog_ms && n->watchdog_ms / 2 < 1000 ? n->watchdog_ms / 2 : 1000;
    n->next_ms = now_ms + every;
    if (alive && n->watchdog_ms) sd_notifyf(0, "WATCHDOG=1\nSTATUS=%s", status);
    else sd_notifyf(0, "STATUS=%s", status);
}

void service_stopping(void) { sd_notify(0, "STOPPING=1\nSTATUS=stopping"); }
