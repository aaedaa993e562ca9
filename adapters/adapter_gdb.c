/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_gdb.c - a programming station that drives any GDB server (OpenOCD,
 * J-Link GDB Server, pyOCD, Black Magic Probe, QEMU -gdb) over the GDB
 * Remote Serial Protocol (gdb_rsp.c), with no gdb binary in between.
 *
 * WRITE halts the target and writes the image at the load address (flash
 * commands when the server's memory map has flash there, memory writes
 * otherwise). VERIFY reports the target's qCRC, or the SHA-256 of the image
 * read back, for the agent to compare with the release; then it starts the target
 * (`monitor reset run`, else SP and PC from the image's vector table) and,
 * with a console configured, checks the boot banner reports the release's
 * version. PROVISION writes the identity record (gdb_identity.h) at
 * gdb.identity_address and reads it back for the agent to compare. LOCK
 * writes the configured option/fuse word and reads it back.
 *
 * Each step opens its own connection and closes it: a board is a new
 * target, and a connection that failed once is never trusted again. Every
 * exchange has a timeout, so a vanished server fails the unit instead of
 * hanging the station. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "digest.h"
#include "gdb_identity.h"
#include "gdb_rsp.h"
#include "log.h"

#define GDB_UID_MAX 32
#define GDB_REG_SP 13
#define GDB_REG_PC 15
#define GDB_REG_XPSR 25   /* the m-profile feature's xPSR number (QEMU, OpenOCD) */
#define GDB_XPSR_THUMB 0x01000000u

typedef struct gdb_state {
    char station[ADAPTER_ID_MAX];
    uint32_t site;
    char *host;
    int port;
    int has_load_address;
    uint64_t load_address;
    int has_uid;
    uint64_t uid_address;
    size_t uid_length;
    char *console;         /* host:port, parsed into console_host and console_port */
    char console_host[256];
    int console_port;      /* 0: no boot check */
    int timeout_ms;
    int boot_timeout_ms;
    char *banner;          /* the version follows this text in the boot banner */
    const char *start;     /* auto | monitor | vector | none */
    int has_lock;
    uint64_t lock_address;
    uint32_t lock_value;
    int has_identity;
    uint64_t identity_address;
    /* The board id could not be read: the board is named by its arrival
     * index and its first step here fails with this, so a dead probe fails
     * units instead of stalling the line. */
    char pending_board[ADAPTER_ID_MAX];
    adapter_result pending;
} gdb_state;

static const char *const gdb_starts[] = {"auto", "monitor", "vector", "none", NULL};

static const conf_key gdb_keys[] = {
    {"host", CONF_STRING, "127.0.0.1", CONF_AT(gdb_state, host), .desc = "GDB server host"},
    {"port", CONF_INT, NULL, 1, 65535, .flags = CONF_REQUIRED, CONF_AT(gdb_state, port),
     .desc = "GDB server port; site k of a gang station uses port + k (and the console port + k)"},
    {"load_address", CONF_HEX, NULL, CONF_AT(gdb_state, load_address),
     .desc = "where the image goes; overrides the release's loadAddress"},
    {"uid_address", CONF_HEX, NULL, CONF_AT(gdb_state, uid_address),
     .desc = "board id: read uid_length bytes here (the MCU's unique-ID register); none: <lot>-B<index>"},
    {"uid_length", CONF_INT, NULL, 1, GDB_UID_MAX, CONF_AT(gdb_state, uid_length),
     .desc = "bytes of the unique ID, shown in hex"},
    {"console", CONF_STRING, NULL, CONF_AT(gdb_state, console),
     .desc = "host:port of the target's UART for the boot check (none: no boot check)"},
    {"timeout_ms", CONF_INT, "5000", 100, 600000, CONF_AT(gdb_state, timeout_ms),
     .desc = "every exchange with the server (erase and qCRC get 10x / 4x)"},
    {"boot_timeout_ms", CONF_INT, "5000", 100, 600000, CONF_AT(gdb_state, boot_timeout_ms),
     .desc = "how long to wait for the boot banner"},
    {"banner", CONF_STRING, "version ", CONF_AT(gdb_state, banner),
     .desc = "text the version follows in the boot banner"},
    {"start", CONF_ENUM, "auto", .choices = gdb_starts, CONF_AT(gdb_state, start),
     .desc = "how VERIFY starts the target: monitor reset run, the vector table, either, or not at all"},
    {"identity_address", CONF_HEX, NULL, CONF_AT(gdb_state, identity_address),
     .desc = "PROVISION: RAM or flash address of the identity record (none: the station cannot provision)"},
    {"lock_address", CONF_HEX, NULL, CONF_AT(gdb_state, lock_address),
     .desc = "LOCK: the option/fuse word to write (none: the station cannot lock)"},
    {"lock_value", CONF_HEX, NULL, CONF_AT(gdb_state, lock_value),
     .desc = "LOCK: the 32-bit value written there, then read back"},
    {0}};

extern const adapter adapter_gdb;

/* "host:port" (host may be empty for loopback). */
static int gdb_hostport(const char *v, char *host, size_t host_len, int *port)
{
    const char *colon = strrchr(v, ':');
    if (!colon) return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || p < 1 || p > 65535) return -1;
    size_t n = (size_t)(colon - v);
    if (n >= host_len) return -1;
    memcpy(host, v, n);
    host[n] = 0;
    if (!host[0]) snprintf(host, host_len, "127.0.0.1");
    *port = (int)p;
    return 0;
}

static void gdb_close(void *state)
{
    conf_free(gdb_keys, state);
    free(state);
}

static int gdb_open(void **state, const station_config *st, char *err, size_t err_len)
{
    gdb_state *s = calloc(1, sizeof *s);
    if (adapter_conf_load(&adapter_gdb, st, s, NULL, err, err_len) != 0) {
        free(s);
        return -1;
    }
    snprintf(s->station, sizeof s->station, "%s", st->name);
    s->site = st->site;
    s->has_load_address = station_config_get(st, "gdb.load_address") != NULL;
    s->has_uid = station_config_get(st, "gdb.uid_address") != NULL;
    s->has_lock = station_config_get(st, "gdb.lock_address") != NULL;
    s->has_identity = station_config_get(st, "gdb.identity_address") != NULL;
    int rc = -1;
    if (s->has_uid && !s->uid_length)
        snprintf(err, err_len, "[station %s] gdb.uid_address needs gdb.uid_length (1..%d)", st->name, GDB_UID_MAX);
    else if (s->uid_length && !s->has_uid)
        snprintf(err, err_len, "[station %s] gdb.uid_length needs gdb.uid_address", st->name);
    else if ((st->steps_mask & (1u << 3)) && !s->has_identity) /* PROVISION */
        snprintf(err, err_len, "[station %s] provision needs gdb.identity_address", st->name);
    else if (station_config_get(st, "gdb.lock_value") && !s->has_lock)
        snprintf(err, err_len, "[station %s] gdb.lock_value needs gdb.lock_address", st->name);
    else if (s->console && gdb_hostport(s->console, s->console_host, sizeof s->console_host, &s->console_port))
        snprintf(err, err_len, "[station %s] gdb.console must be host:port", st->name);
    /* Gang programming: site k talks to the k-th server after gdb.port (and
     * the k-th console), as multi-probe OpenOCD setups number them. */
    else if (s->port + (long)st->site > 65535 || (s->console_port && s->console_port + (long)st->site > 65535))
        snprintf(err, err_len, "[station %s] site %u: port beyond 65535", st->name, st->site);
    else
        rc = 0;
    if (rc != 0) {
        gdb_close(s);
        return -1;
    }
    s->port += (int)st->site;
    if (s->console_port) s->console_port += (int)st->site;
    *state = s;
    return 0;
}

/* The failure mode for a transport or server error. */
static const char *gdb_mode(int code, const char *what)
{
    switch (code) {
    case GDB_ECLOSED: return "gdb_disconnected";
    case GDB_ETIMEOUT: return "gdb_timeout";
    case GDB_EPROTO: return "gdb_protocol";
    default: return what;
    }
}

/* A halted target, or NULL with the unit failed. */
static gdb_rsp *gdb_session(gdb_state *s, adapter_result *r, const char *board_id)
{
    if (board_id && s->pending_board[0] && strcmp(board_id, s->pending_board) == 0) {
        *r = s->pending;
        s->pending_board[0] = 0;
        return NULL;
    }
    char err[256];
    int code = 0;
    gdb_rsp *g = gdb_rsp_connect(s->host, s->port, s->timeout_ms, &code, err, sizeof err);
    if (!g) {
        adapter_fail(r, gdb_mode(code, "gdb_disconnected"), "%s", err);
        return NULL;
    }
    int rc = gdb_rsp_halt(g);
    if (rc) {
        adapter_fail(r, gdb_mode(rc, "halt_failed"), "cannot halt the target: %s", gdb_rsp_error(g));
        gdb_rsp_close(g);
        return NULL;
    }
    return g;
}

static uint64_t gdb_load_address(const gdb_state *s, const adapter_image *img)
{
    return s->has_load_address ? s->load_address : img->load_address;
}

static int gdb_load_board(void *state, const char *lot_id, uint32_t idx, char *board_id, size_t len)
{
    gdb_state *s = state;
    if (!s->has_uid) {
        snprintf(board_id, len, "%s-B%05u", lot_id, idx + 1);
        return 0;
    }
    adapter_result r = {0};
    gdb_rsp *g = gdb_session(s, &r, NULL);
    uint8_t uid[GDB_UID_MAX];
    int rc = g ? gdb_rsp_read_mem(g, s->uid_address, uid, s->uid_length) : -1;
    if (g && rc) snprintf(r.detail, sizeof r.detail, "%s", gdb_rsp_error(g));
    gdb_rsp_close(g);
    if (rc) {
        log_warn("station %s: cannot read the board id at 0x%llx: %s", s->station,
                 (unsigned long long)s->uid_address, r.detail);
        snprintf(board_id, len, "%s-B%05u", lot_id, idx + 1);
        snprintf(s->pending_board, sizeof s->pending_board, "%s", board_id);
        s->pending = r;
        snprintf(s->pending.detail, sizeof s->pending.detail, "cannot read the board id at 0x%llx: %.200s",
                 (unsigned long long)s->uid_address, r.detail);
        return 0;
    }
    size_t o = 0;
    for (size_t i = 0; i < s->uid_length && o + 3 <= len; i++) o += (size_t)snprintf(board_id + o, len - o, "%02X", uid[i]);
    return 0;
}

static void gdb_write(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    gdb_state *s = state;
    gdb_rsp *g = gdb_session(s, r, ctx->board_id);
    if (!g) return;
    uint64_t addr = gdb_load_address(s, ctx->image);
    int rc = gdb_rsp_flash(g, addr, ctx->image->data, ctx->image->len);
    const char *how = "vFlash";
    if (rc == GDB_UNSUPPORTED) {
        rc = gdb_rsp_write_mem(g, addr, ctx->image->data, ctx->image->len);
        how = "memory write";
    }
    if (rc) {
        char d[300];
        snprintf(d, sizeof d, "%s of %zu bytes at 0x%llx failed: %s", how, ctx->image->len,
                 (unsigned long long)addr, gdb_rsp_error(g));
        adapter_fail(r, gdb_mode(rc, "write_error"), "%s", d);
    } else {
        r->passed = 1;
        log_debug("station %s site %u: wrote %zu bytes at 0x%llx to %s via %s:%d (%s)", s->station, s->site,
                  ctx->image->len, (unsigned long long)addr, ctx->board_id, s->host, s->port, how);
    }
    gdb_rsp_close(g);
}

static int gdb_console_connect(const gdb_state *s, char *err, size_t err_len)
{
    /* Bounded like the GDB connection: a console that never answers the
     * SYN must not hold the station. */
    char why[400];
    int fd = gdb_tcp_connect(s->console_host, s->console_port, s->timeout_ms, 0, why, sizeof why);
    if (fd < 0) snprintf(err, err_len, "console: %.200s", why);
    return fd;
}

/* Reads console lines until one carries the banner text; the word after it
 * is the running firmware's version. */
static void gdb_boot_check(const gdb_state *s, int fd, const adapter_step_ctx *ctx, adapter_result *r)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char line[512];
    size_t n = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = s->boot_timeout_ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0) break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) break;
        char c;
        ssize_t got = recv(fd, &c, 1, 0);
        if (got <= 0) {
            snprintf(r->failure_mode, sizeof r->failure_mode, "boot_no_console");
            snprintf(r->detail, sizeof r->detail, "console %.160s:%d closed before a boot banner", s->console_host,
                     s->console_port);
            return;
        }
        if (c != '\n' && c != '\r') {
            if (n + 1 < sizeof line) line[n++] = isprint((unsigned char)c) ? c : '?';
            continue;
        }
        line[n] = 0;
        n = 0;
        const char *b = strstr(line, s->banner);
        if (!b) continue;
        const char *v = b + strlen(s->banner);
        size_t vl = strcspn(v, " \t");
        if (vl == strlen(ctx->image->version) && strncmp(v, ctx->image->version, vl) == 0) {
            r->passed = 1;
            return;
        }
        snprintf(r->failure_mode, sizeof r->failure_mode, "version_mismatch");
        snprintf(r->detail, sizeof r->detail, "boot banner reports version %.*s, the order's release is %s",
                 (int)(vl > 64 ? 64 : vl), v, ctx->image->version);
        return;
    }
    snprintf(r->failure_mode, sizeof r->failure_mode, "boot_timeout");
    snprintf(r->detail, sizeof r->detail, "no boot banner (\"%.40s<version>\") on %.100s:%d within %d ms", s->banner,
             s->console_host, s->console_port, s->boot_timeout_ms);
}

/* Starts the verified image. 0 on success, else fails the unit. */
static int gdb_start(const gdb_state *s, gdb_rsp *g, const adapter_step_ctx *ctx, adapter_result *r)
{
    int rc;
    if (!strcmp(s->start, "none")) return 0;
    if (!strcmp(s->start, "auto") || !strcmp(s->start, "monitor")) {
        char out[256];
        rc = gdb_rsp_monitor(g, "reset run", out, sizeof out);
        /* Servers without the command still answer OK and say so on the
         * console (QEMU: "unknown command"); only a quiet OK counts. */
        for (char *p = out; *p; p++) *p = (char)tolower((unsigned char)*p);
        int refused = rc == GDB_UNSUPPORTED || rc == GDB_EREPLY || strstr(out, "unknown") || strstr(out, "invalid") ||
                      strstr(out, "error") || strstr(out, "not ");
        if (rc < 0 && rc != GDB_EREPLY) {
            adapter_fail(r, gdb_mode(rc, "start_failed"), "monitor reset run: %s", gdb_rsp_error(g));
            return -1;
        }
        if (!refused) return 0;
        log_debug("station %s: monitor reset run refused (%s); starting from the vector table", s->station, out);
        if (!strcmp(s->start, "monitor")) {
            adapter_fail(r, "start_failed", "the GDB server refused monitor reset run");
            return -1;
        }
    }
    /* Cortex-M vector table at the image's start: initial SP, reset PC. */
    const uint8_t *d = ctx->image->data;
    if (ctx->image->len < 8) {
        adapter_fail(r, "start_failed", "image too short for a vector table");
        return -1;
    }
    uint32_t sp = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
    uint32_t pc = (uint32_t)d[4] | (uint32_t)d[5] << 8 | (uint32_t)d[6] << 16 | (uint32_t)d[7] << 24;
    rc = gdb_rsp_write_reg32(g, GDB_REG_SP, sp);
    if (!rc) rc = gdb_rsp_write_reg32(g, GDB_REG_PC, pc & ~1u);
    if (!rc) rc = gdb_rsp_write_reg32(g, GDB_REG_XPSR, GDB_XPSR_THUMB);
    if (!rc) rc = gdb_rsp_continue(g);
    if (rc) {
        adapter_fail(r, gdb_mode(rc, "start_failed"), "cannot start from the vector table: %s", gdb_rsp_error(g));
        return -1;
    }
    return 0;
}

static void gdb_verify(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    gdb_state *s = state;
    const adapter_image *img = ctx->image;
    gdb_rsp *g = gdb_session(s, r, ctx->board_id);
    if (!g) return;
    uint64_t addr = gdb_load_address(s, img);
    uint32_t crc = 0;
    int rc = gdb_rsp_crc(g, addr, img->len, &crc);
    if (rc == GDB_OK) {
        /* The agent compares it with the image's own qCRC (rule R2). */
        r->readback_crc32 = crc;
        r->readback_crc = ADAPTER_CRC32_GDB;
    } else if (rc == GDB_UNSUPPORTED || rc == GDB_EREPLY) {
        uint8_t *buf = malloc(img->len ? img->len : 1);
        rc = gdb_rsp_read_mem(g, addr, buf, img->len);
        if (rc) {
            char d[300];
            snprintf(d, sizeof d, "read-back of %zu bytes at 0x%llx failed: %s", img->len, (unsigned long long)addr,
                     gdb_rsp_error(g));
            adapter_fail(r, gdb_mode(rc, "verify_read_error"), "%s", d);
            free(buf);
            gdb_rsp_close(g);
            return;
        }
        digest_sha256_hex(buf, img->len, r->readback_sha256);
        free(buf);
    } else {
        adapter_fail(r, gdb_mode(rc, "verify_read_error"), "qCRC failed: %s", gdb_rsp_error(g));
        gdb_rsp_close(g);
        return;
    }
    /* The console is attached before the start so no banner is missed. */
    char err[256];
    int cfd = -1;
    if (s->console_port && (cfd = gdb_console_connect(s, err, sizeof err)) < 0) {
        adapter_fail(r, "boot_no_console", "%s", err);
        gdb_rsp_close(g);
        return;
    }
    if (gdb_start(s, g, ctx, r) == 0) {
        if (cfd >= 0) gdb_boot_check(s, cfd, ctx, r);
        else r->passed = 1;
    }
    if (cfd >= 0) close(cfd);
    gdb_rsp_close(g);
}

/* Writes the identity record, then reads back its header and the length
 * it declares, and parses what the target holds: the agent compares it with
 * what was issued. No private key goes to the target this way. */
static void gdb_provision(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    gdb_state *s = state;
    uint8_t rec[GDB_IDENTITY_MAX], back[GDB_IDENTITY_MAX];
    size_t n = 0;
    char err[200];
    if (!ctx->identity || gdb_identity_encode(ctx->identity, rec, sizeof rec, &n, err, sizeof err) != 0) {
        adapter_fail(r, "provision_write_failed", "%s", ctx->identity ? err : "no identity to write");
        return;
    }
    gdb_rsp *g = gdb_session(s, r, ctx->board_id);
    if (!g) return;
    uint64_t a = s->identity_address;
    int rc = gdb_rsp_flash(g, a, rec, n);
    if (rc == GDB_UNSUPPORTED) rc = gdb_rsp_write_mem(g, a, rec, n);
    if (rc) {
        adapter_fail(r, gdb_mode(rc, "provision_write_failed"), "identity record of %zu bytes at 0x%llx: %s", n,
                     (unsigned long long)a, gdb_rsp_error(g));
        gdb_rsp_close(g);
        return;
    }
    long total = -1;
    rc = gdb_rsp_read_mem(g, a, back, GDB_IDENTITY_HEADER);
    if (!rc) total = gdb_identity_total(back, GDB_IDENTITY_HEADER);
    if (!rc && total > 0) rc = gdb_rsp_read_mem(g, a, back, (size_t)total);
    /* A record that does not parse is not what was written: the board does
     * not hold the identity issued. */
    if (rc)
        adapter_fail(r, gdb_mode(rc, "provision_write_failed"), "identity read-back at 0x%llx: %s",
                     (unsigned long long)a, gdb_rsp_error(g));
    else if (total < 0 || gdb_identity_parse(back, (size_t)total, r, err, sizeof err) != GDB_ID_OK)
        adapter_fail(r, "provision_mismatch", "identity record read back at 0x%llx: %s", (unsigned long long)a,
                     total < 0 ? "no valid header (magic, version, length)" : err);
    else
        r->passed = 1;
    gdb_rsp_close(g);
}

static void gdb_lock(void *state, const adapter_step_ctx *ctx, adapter_result *r)
{
    gdb_state *s = state;
    if (!s->has_lock) {
        adapter_fail(r, "lock_unconfigured", "station has no gdb.lock_address: the debug port cannot be closed");
        return;
    }
    gdb_rsp *g = gdb_session(s, r, ctx->board_id);
    if (!g) return;
    uint8_t want[4] = {(uint8_t)s->lock_value, (uint8_t)(s->lock_value >> 8), (uint8_t)(s->lock_value >> 16),
                       (uint8_t)(s->lock_value >> 24)};
    uint8_t got[4] = {0};
    int rc = gdb_rsp_write_mem(g, s->lock_address, want, sizeof want);
    if (!rc) rc = gdb_rsp_read_mem(g, s->lock_address, got, sizeof got);
    if (rc) {
        adapter_fail(r, gdb_mode(rc, "lock_unverified"), "lock write/read-back failed: %s", gdb_rsp_error(g));
    } else if (memcmp(want, got, sizeof want) != 0) {
        snprintf(r->failure_mode, sizeof r->failure_mode, "lock_unverified");
        snprintf(r->detail, sizeof r->detail, "lock word at 0x%llx reads %02x%02x%02x%02x, wrote %08x",
                 (unsigned long long)s->lock_address, got[3], got[2], got[1], got[0], s->lock_value);
    } else {
        r->lock_verified = 1;
        r->passed = 1;
    }
    gdb_rsp_close(g);
}

const adapter adapter_gdb = {
    .name = "gdb",
    .keys = gdb_keys,
    .conf_size = sizeof(gdb_state),
    .open = gdb_open,
    .load_board = gdb_load_board,
    .write = gdb_write,
    .verify = gdb_verify,
    .provision = gdb_provision,
    .lock = gdb_lock,
    .close = gdb_close,
};
