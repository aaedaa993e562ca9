/* SPDX-License-Identifier: Apache-2.0 */
/* gdb_rsp.c - GDB Remote Serial Protocol client over TCP (see gdb_rsp.h).
 *
 * Wire format: $<payload>#<2 hex checksum>; the receiver answers + or -.
 * In binary payloads (X, vFlashWrite) the bytes # $ } * are escaped as
 * } followed by the byte XOR 0x20; replies may be run-length encoded as
 * <c>*<n> meaning c repeated n-29 more times. */
#include "gdb_rsp.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

#define RSP_DEFAULT_PACKET 400
#define RSP_MAX_PACKET 16384  /* what we ask for and ever send */
#define RSP_MAX_REPLY 65536   /* a longer reply is a protocol error: memory stays bounded */
#define RSP_RETRIES 3         /* resends after a '-' */
#define RSP_MAX_OUTPUT_PKTS 4096

struct gdb_rsp {
    int fd;
    int timeout_ms;
    size_t packet_size;
    int memory_map;
    int no_x;       /* the server answered X with an empty packet */
    int read_xml;   /* the target description was read */
    int broken;
    char err[256];
    uint8_t rx[4096];
    size_t rx_off, rx_len;
    char *tx;       /* frame being sent */
    char *reply;    /* RSP_MAX_REPLY + 1 */
};

static int rsp_fail(gdb_rsp *g, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rsp_fail(gdb_rsp *g, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    if (code == GDB_ETIMEOUT || code == GDB_ECLOSED || code == GDB_EPROTO) g->broken = 1;
    return code;
}

/* Once an exchange timed out, broke or went out of step, the stream cannot be
 * trusted again: every later call fails the same way. */
static int rsp_unusable(gdb_rsp *g)
{
    char earlier[sizeof g->err]; /* g->err is rsp_fail's destination */
    memcpy(earlier, g->err, sizeof earlier);
    return rsp_fail(g, GDB_ECLOSED, "connection unusable after an earlier failure: %s", earlier);
}

/* ---- bytes ------------------------------------------------------------ */

static int rsp_send_raw(gdb_rsp *g, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    while (len) {
        int wait = (int)(deadline - clock_mono_ms());
        if (wait <= 0) return rsp_fail(g, GDB_ETIMEOUT, "timed out sending to the GDB server");
        struct pollfd pfd = {g->fd, POLLOUT, 0};
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) return rsp_fail(g, GDB_ETIMEOUT, "timed out sending to the GDB server");
        ssize_t n = send(g->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0) return rsp_fail(g, GDB_ECLOSED, "connection to the GDB server lost: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return GDB_OK;
}

/* One byte, or a negative code. */
static int rsp_getc(gdb_rsp *g, int64_t deadline)
{
    while (g->rx_off == g->rx_len) {
        int wait = (int)(deadline - clock_mono_ms());
        if (wait <= 0) return rsp_fail(g, GDB_ETIMEOUT, "no answer from the GDB server within %d ms", g->timeout_ms);
        struct pollfd pfd = {g->fd, POLLIN, 0};
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) continue; /* the loop re-checks the deadline */
        ssize_t n = recv(g->fd, g->rx, sizeof g->rx, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n == 0) return rsp_fail(g, GDB_ECLOSED, "the GDB server closed the connection");
        if (n < 0) return rsp_fail(g, GDB_ECLOSED, "connection to the GDB server lost: %s", strerror(errno));
        g->rx_off = 0;
        g->rx_len = (size_t)n;
    }
    return g->rx[g->rx_off++];
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static const char hexdig[] = "0123456789abcdef";

/* ---- packets ---------------------------------------------------------- */

/* Frames payload (already escaped where binary) and sends it until acked. */
static int rsp_send_packet(gdb_rsp *g, const char *payload, size_t len)
{
    if (len + 4 > RSP_MAX_PACKET + 64)
        return rsp_fail(g, GDB_EPROTO, "internal: packet of %zu bytes exceeds the limit", len);
    uint8_t sum = 0;
    g->tx[0] = '$';
    memcpy(g->tx + 1, payload, len);
    for (size_t i = 0; i < len; i++) sum = (uint8_t)(sum + (uint8_t)payload[i]);
    g->tx[len + 1] = '#';
    g->tx[len + 2] = hexdig[sum >> 4];
    g->tx[len + 3] = hexdig[sum & 15];
    for (int attempt = 0; attempt <= RSP_RETRIES; attempt++) {
        int64_t deadline = clock_mono_ms() + g->timeout_ms;
        int rc = rsp_send_raw(g, g->tx, len + 4, deadline);
        if (rc) return rc;
        for (;;) {
            int c = rsp_getc(g, deadline);
            if (c < 0) return c;
            if (c == '+') return GDB_OK;
            if (c == '-') break; /* resend */
            /* Anything else before the ack (a stale stop reply, noise) is
             * skipped; a reply proper only comes after the ack. */
        }
    }
    return rsp_fail(g, GDB_EPROTO, "the GDB server refused the packet %d times (bad checksum)", RSP_RETRIES + 1);
}

/* Reads one packet, acks it, and decodes escapes and run-lengths into
 * g->reply. Returns its length or a negative code. */
static int rsp_recv_packet(gdb_rsp *g, int64_t deadline, size_t *out_len)
{
    for (int attempt = 0; attempt <= RSP_RETRIES; attempt++) {
        int c;
        do {
            c = rsp_getc(g, deadline);
            if (c < 0) return c;
        } while (c != '$'); /* acks and noise between packets */
        size_t n = 0;
        uint8_t sum = 0;
        int esc = 0, overflow = 0;
        for (;;) {
            c = rsp_getc(g, deadline);
            if (c < 0) return c;
            if (c == '#') break;
            if (c == '$') { /* a new packet started: the old one was cut */
                n = 0;
                sum = 0;
                esc = 0;
                overflow = 0; /* the cut packet's, not this one's */
                continue;
            }
            sum = (uint8_t)(sum + (uint8_t)c);
            if (esc) {
                if (n < RSP_MAX_REPLY) g->reply[n++] = (char)(c ^ 0x20);
                else overflow = 1;
                esc = 0;
            } else if (c == '}') {
                esc = 1;
            } else if (c == '*' && n > 0) {
                int r = rsp_getc(g, deadline);
                if (r < 0) return r;
                sum = (uint8_t)(sum + (uint8_t)r);
                int count = r - 29;
                if (count < 0) count = 0;
                for (int k = 0; k < count; k++) {
                    if (n < RSP_MAX_REPLY) g->reply[n] = g->reply[n - 1], n++;
                    else overflow = 1;
                }
            } else {
                if (n < RSP_MAX_REPLY) g->reply[n++] = (char)c;
                else overflow = 1;
            }
        }
        int h1 = rsp_getc(g, deadline);
        if (h1 < 0) return h1;
        int h2 = rsp_getc(g, deadline);
        if (h2 < 0) return h2;
        if (hexval(h1) < 0 || hexval(h2) < 0 || (uint8_t)(hexval(h1) << 4 | hexval(h2)) != sum) {
            int rc = rsp_send_raw(g, "-", 1, deadline);
            if (rc) return rc;
            continue;
        }
        int rc = rsp_send_raw(g, "+", 1, deadline);
        if (rc) return rc;
        if (overflow) return rsp_fail(g, GDB_EPROTO, "reply longer than %d bytes", RSP_MAX_REPLY);
        g->reply[n] = 0;
        *out_len = n;
        return GDB_OK;
    }
    return rsp_fail(g, GDB_EPROTO, "bad checksum on %d replies in a row", RSP_RETRIES + 1);
}

/* Reads the reply to a command, passing console output ("O<hex>", never
 * the bare "OK") to out when given. */
static int rsp_reply(gdb_rsp *g, char *out, size_t out_len, size_t *got)
{
    int64_t deadline = clock_mono_ms() + g->timeout_ms;
    size_t o = out && out_len ? strlen(out) : 0;
    for (int i = 0; i < RSP_MAX_OUTPUT_PKTS; i++) {
        int rc = rsp_recv_packet(g, deadline, got);
        if (rc) return rc;
        if (g->reply[0] == 'O' && *got > 1 && strcmp(g->reply, "OK") != 0 && (*got % 2) == 1) {
            for (size_t k = 1; k + 1 < *got; k += 2) {
                int hi = hexval(g->reply[k]), lo = hexval(g->reply[k + 1]);
                if (hi < 0 || lo < 0) break;
                if (out && o + 1 < out_len) out[o++] = (char)(hi << 4 | lo), out[o] = 0;
            }
            continue;
        }
        return GDB_OK;
    }
    return rsp_fail(g, GDB_EPROTO, "endless console output from the GDB server");
}

int gdb_rsp_command(gdb_rsp *g, const char *cmd, size_t cmd_len, char *reply, size_t reply_cap, size_t *reply_len)
{
    if (g->broken) return rsp_unusable(g);
    int rc = rsp_send_packet(g, cmd, cmd_len);
    size_t got = 0;
    if (!rc) rc = rsp_reply(g, NULL, 0, &got);
    if (rc) return rc;
    if (reply && reply_cap) {
        size_t n = got < reply_cap - 1 ? got : reply_cap - 1;
        memcpy(reply, g->reply, n);
        reply[n] = 0;
    }
    if (reply_len) *reply_len = got;
    if (got == 0) return GDB_UNSUPPORTED;
    if (got == 3 && g->reply[0] == 'E' && hexval(g->reply[1]) >= 0 && hexval(g->reply[2]) >= 0) {
        /* The command's name for the message; cmd is not NUL-terminated. */
        char cname[16];
        size_t k = 0;
        while (k < cmd_len && k < sizeof cname - 1 && !strchr(":,;", cmd[k])) cname[k] = cmd[k], k++;
        cname[k] = 0;
        return rsp_fail(g, GDB_EREPLY, "the GDB server answered %s to %s", g->reply, cname);
    }
    return GDB_OK;
}

/* ---- connection ------------------------------------------------------- */

static int rsp_qsupported(gdb_rsp *g)
{
    char cmd[64];
    int n = snprintf(cmd, sizeof cmd, "qSupported:swbreak+;hwbreak+");
    char reply[1024];
    int rc = gdb_rsp_command(g, cmd, (size_t)n, reply, sizeof reply, NULL);
    if (rc == GDB_UNSUPPORTED || rc == GDB_EREPLY) return GDB_OK; /* an old server: defaults */
    if (rc) return rc;
    const char *ps = strstr(reply, "PacketSize=");
    if (ps) {
        unsigned long v = strtoul(ps + 11, NULL, 16);
        if (v >= 64) g->packet_size = v > RSP_MAX_PACKET ? RSP_MAX_PACKET : v;
    }
    g->memory_map = strstr(reply, "qXfer:memory-map:read+") != NULL;
    return GDB_OK;
}

int gdb_tcp_connect(const char *host, int port, int timeout_ms, int nonblock, char *err, size_t err_len)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int grc = getaddrinfo(host, portstr, &hints, &ai);
    if (grc) return snprintf(err, err_len, "cannot resolve %.200s: %s", host, gai_strerror(grc)), -1;
    int fd = -1;
    char why[128] = "no address";
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0) {
            snprintf(why, sizeof why, "socket: %s", strerror(errno));
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            snprintf(why, sizeof why, "%s", strerror(errno));
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd pfd = {fd, POLLOUT, 0};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        int r;
        while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR) {
        }
        if (r <= 0) snprintf(why, sizeof why, "connect timed out after %d ms", timeout_ms), soerr = -1;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
            snprintf(why, sizeof why, "%s", strerror(soerr ? soerr : errno)), soerr = -1;
        if (soerr) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) return snprintf(err, err_len, "cannot connect to %.200s:%d: %s", host, port, why), -1;
    if (!nonblock) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

gdb_rsp *gdb_rsp_open_fd(int fd, int timeout_ms, int *code, char *err, size_t err_len)
{
    gdb_rsp *g = calloc(1, sizeof *g);
    if (!g || !(g->tx = malloc(RSP_MAX_PACKET + 128)) || !(g->reply = malloc(RSP_MAX_REPLY + 1))) {
        if (g) free(g->tx);
        free(g);
        close(fd);
        snprintf(err, err_len, "out of memory");
        *code = GDB_ECLOSED;
        return NULL;
    }
    g->fd = fd;
    g->timeout_ms = timeout_ms;
    g->packet_size = RSP_DEFAULT_PACKET;
    int rc = rsp_qsupported(g);
    if (rc) {
        snprintf(err, err_len, "%s", g->err);
        *code = rc;
        gdb_rsp_close(g);
        return NULL;
    }
    return g;
}

gdb_rsp *gdb_rsp_connect(const char *host, int port, int timeout_ms, int *code, char *err, size_t err_len)
{
    char why[400];
    int fd = gdb_tcp_connect(host, port, timeout_ms, 1, why, sizeof why);
    if (fd < 0) {
        snprintf(err, err_len, "GDB server: %.200s", why);
        *code = GDB_ECLOSED;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    gdb_rsp *g = gdb_rsp_open_fd(fd, timeout_ms, code, why, sizeof why);
    if (!g) snprintf(err, err_len, "GDB server %.100s:%d: %.200s", host, port, why);
    return g;
}

void gdb_rsp_close(gdb_rsp *g)
{
    if (!g) return;
    close(g->fd);
    free(g->tx);
    free(g->reply);
    free(g);
}

const char *gdb_rsp_error(const gdb_rsp *g) { return g->err; }
size_t gdb_rsp_packet_size(const gdb_rsp *g) { return g->packet_size; }
int gdb_rsp_has_memory_map(const gdb_rsp *g) { return g->memory_map; }

/* ---- operations ------------------------------------------------------- */

int gdb_rsp_halt(gdb_rsp *g)
{
    if (g->broken) return rsp_unusable(g);
    /* A running target answers the interrupt byte with a stop reply; a
     * halted one says nothing. Either way '?' then reports the stop. */
    int64_t deadline = clock_mono_ms() + g->timeout_ms;
    int rc = rsp_send_raw(g, "\x03", 1, deadline);
    if (rc) return rc;
    int short_ms = g->timeout_ms < 300 ? g->timeout_ms : 300;
    size_t got;
    rc = rsp_recv_packet(g, clock_mono_ms() + short_ms, &got);
    if (rc == GDB_ETIMEOUT) g->broken = 0; /* no stop reply: it was halted already */
    else if (rc) return rc;
    char reply[128];
    rc = gdb_rsp_command(g, "?", 1, reply, sizeof reply, NULL);
    if (rc) return rc == GDB_UNSUPPORTED ? rsp_fail(g, GDB_EPROTO, "empty answer to '?'") : rc;
    if (reply[0] != 'S' && reply[0] != 'T')
        return rsp_fail(g, GDB_EPROTO, "target did not report a stop after halt (answered %.16s)", reply);
    /* A slow server's stop reply to the interrupt may have arrived after the
     * short wait and been taken for the answer to '?': drop the one left over
     * so it is never read as the answer to the next command. */
    for (int i = 0; i < 4; i++) {
        size_t n;
        rc = rsp_recv_packet(g, clock_mono_ms() + 50, &n);
        if (rc == GDB_ETIMEOUT) {
            g->broken = 0;
            break;
        }
        if (rc) return rc;
        if (g->reply[0] != 'S' && g->reply[0] != 'T')
            return rsp_fail(g, GDB_EPROTO, "unexpected packet after halt: %.16s", g->reply);
    }
    return GDB_OK;
}

static size_t rsp_escape(const uint8_t *in, size_t len, char *out, size_t cap, size_t *consumed)
{
    size_t o = 0, i = 0;
    for (; i < len; i++) {
        uint8_t c = in[i];
        int esc = c == '#' || c == '$' || c == '}' || c == '*';
        if (o + (esc ? 2 : 1) > cap) break;
        if (esc) {
            out[o++] = '}';
            out[o++] = (char)(c ^ 0x20);
        } else {
            out[o++] = (char)c;
        }
    }
    *consumed = i;
    return o;
}

/* Room for data in one packet after a header of hdr bytes. */
static size_t rsp_room(const gdb_rsp *g, size_t hdr)
{
    size_t ps = g->packet_size - 1; /* some servers count the NUL */
    return ps > hdr + 8 ? ps - hdr - 8 : 16;
}

static int rsp_write_chunk_m(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len, size_t *done)
{
    char *cmd = malloc(RSP_MAX_PACKET + 64);
    int h = snprintf(cmd, 64, "M%llx,", (unsigned long long)addr);
    size_t room = rsp_room(g, (size_t)h + 10) / 2;
    size_t n = len < room ? len : room;
    h += snprintf(cmd + h, 64, "%zx:", n);
    for (size_t i = 0; i < n; i++) {
        cmd[h + 2 * i] = hexdig[data[i] >> 4];
        cmd[h + 2 * i + 1] = hexdig[data[i] & 15];
    }
    char reply[64];
    int rc = gdb_rsp_command(g, cmd, (size_t)h + 2 * n, reply, sizeof reply, NULL);
    free(cmd);
    if (rc == GDB_OK && strcmp(reply, "OK") != 0)
        rc = rsp_fail(g, GDB_EPROTO, "unexpected answer to M: %.16s", reply);
    if (rc == GDB_UNSUPPORTED) rc = rsp_fail(g, GDB_EPROTO, "the GDB server cannot write memory (M)");
    *done = n;
    return rc;
}

/* One binary-data packet "<prefix><escaped data>"; the length field, when
 * the packet has one, is filled in once the data that fits is known. */
static int rsp_write_chunk_x(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len, size_t *done)
{
    char *cmd = malloc(RSP_MAX_PACKET + 64);
    size_t room = rsp_room(g, 32);
    char hdr[48];
    size_t consumed;
    /* Escape first to learn how many bytes fit, then write the header. */
    char *body = malloc(room);
    size_t blen = rsp_escape(data, len, body, room, &consumed);
    int h = snprintf(hdr, sizeof hdr, "X%llx,%zx:", (unsigned long long)addr, consumed);
    memcpy(cmd, hdr, (size_t)h);
    memcpy(cmd + h, body, blen);
    free(body);
    char reply[64];
    int rc = gdb_rsp_command(g, cmd, (size_t)h + blen, reply, sizeof reply, NULL);
    free(cmd);
    if (rc == GDB_OK && strcmp(reply, "OK") != 0)
        rc = rsp_fail(g, GDB_EPROTO, "unexpected answer to X: %.16s", reply);
    *done = consumed;
    return rc;
}

int gdb_rsp_write_mem(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len) {
        size_t done = 0;
        int rc;
        if (!g->no_x) {
            rc = rsp_write_chunk_x(g, addr + off, data + off, len - off, &done);
            if (rc == GDB_UNSUPPORTED) { /* no X on this server: M from here on */
                g->no_x = 1;
                continue;
            }
        } else {
            rc = rsp_write_chunk_m(g, addr + off, data + off, len - off, &done);
        }
        if (rc) return rc;
        off += done;
    }
    return GDB_OK;
}

int gdb_rsp_read_mem(gdb_rsp *g, uint64_t addr, uint8_t *out, size_t len)
{
    size_t chunk = rsp_room(g, 0) / 2;
    if (chunk > 4096) chunk = 4096;
    char *reply = malloc(2 * chunk + 64);
    int rc = GDB_OK;
    for (size_t off = 0; off < len && !rc;) {
        size_t n = len - off < chunk ? len - off : chunk;
        char cmd[64];
        int c = snprintf(cmd, sizeof cmd, "m%llx,%zx", (unsigned long long)(addr + off), n);
        size_t got = 0;
        rc = gdb_rsp_command(g, cmd, (size_t)c, reply, 2 * chunk + 64, &got);
        if (rc == GDB_UNSUPPORTED) rc = rsp_fail(g, GDB_EPROTO, "empty answer to m at 0x%llx", (unsigned long long)(addr + off));
        if (rc) break;
        /* A server may return fewer bytes than asked (end of a region). */
        size_t have = got / 2;
        if (have == 0 || have > n) {
            rc = rsp_fail(g, GDB_EPROTO, "bad answer to m at 0x%llx (%zu hex digits)", (unsigned long long)(addr + off), got);
            break;
        }
        for (size_t i = 0; i < have; i++) {
            int hi = hexval(reply[2 * i]), lo = hexval(reply[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                rc = rsp_fail(g, GDB_EPROTO, "non-hex answer to m at 0x%llx", (unsigned long long)(addr + off));
                break;
            }
            out[off + i] = (uint8_t)(hi << 4 | lo);
        }
        off += have;
    }
    free(reply);
    return rc;
}

/* The flash region containing [addr, addr+len) in the server's memory map,
 * with its erase block size. 1 if found. */
static int rsp_flash_region(gdb_rsp *g, uint64_t addr, size_t len, uint64_t *start, uint64_t *size, uint64_t *block)
{
    /* The map is fetched in pieces (qXfer:...:read::off,len; 'l' = last). */
    size_t cap = 32768, have = 0;
    char *xml = malloc(cap + 1);
    int rc = GDB_OK;
    for (;;) {
        char cmd[96];
        size_t chunk = rsp_room(g, 0) > 2048 ? 2048 : rsp_room(g, 0);
        int c = snprintf(cmd, sizeof cmd, "qXfer:memory-map:read::%zx,%zx", have, chunk);
        size_t got = 0;
        rc = gdb_rsp_command(g, cmd, (size_t)c, NULL, 0, &got);
        if (rc) break;
        if (g->reply[0] != 'l' && g->reply[0] != 'm') break;
        size_t n = got - 1;
        if (have + n > cap) n = cap - have;
        memcpy(xml + have, g->reply + 1, n);
        have += n;
        if (g->reply[0] == 'l' || have == cap || n == 0) break;
    }
    xml[have] = 0;
    int found = 0;
    for (const char *m = strstr(xml, "<memory"); m && !found; m = strstr(m + 1, "<memory")) {
        const char *end = strstr(m, "</memory>");
        const char *tag_end = strchr(m, '>');
        if (!tag_end) break;
        const char *type = strstr(m, "type=\"flash\"");
        if (!type || type > tag_end) continue;
        const char *s = strstr(m, "start=\""), *l = strstr(m, "length=\"");
        if (!s || !l || s > tag_end || l > tag_end) continue;
        uint64_t st = strtoull(s + 7, NULL, 0), ln = strtoull(l + 8, NULL, 0);
        uint64_t bs = 0;
        const char *b = strstr(m, "name=\"blocksize\"");
        if (b && (!end || b < end)) {
            const char *v = strchr(b, '>');
            if (v) bs = strtoull(v + 1, NULL, 0);
        }
        if (addr >= st && addr + len <= st + ln && bs) {
            *start = st;
            *size = ln;
            *block = bs;
            found = 1;
        }
    }
    free(xml);
    if (rc < 0 && rc != GDB_EREPLY) return rc;
    return found;
}

int gdb_rsp_flash(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len)
{
    if (!g->memory_map) return GDB_UNSUPPORTED;
    uint64_t start, size, block;
    int f = rsp_flash_region(g, addr, len, &start, &size, &block);
    if (f < 0) return f;
    if (!f) return GDB_UNSUPPORTED;
    /* Erase whole blocks covering the image. */
    uint64_t e0 = start + (addr - start) / block * block;
    uint64_t e1 = start + (addr + len - start + block - 1) / block * block;
    char cmd[96], reply[64];
    int c = snprintf(cmd, sizeof cmd, "vFlashErase:%llx,%llx", (unsigned long long)e0, (unsigned long long)(e1 - e0));
    int saved = g->timeout_ms;
    g->timeout_ms = saved * 10; /* erasing a large part takes a while */
    int rc = gdb_rsp_command(g, cmd, (size_t)c, reply, sizeof reply, NULL);
    g->timeout_ms = saved;
    if (rc) return rc;
    char *pkt = malloc(RSP_MAX_PACKET + 64);
    for (size_t off = 0; off < len && !rc;) {
        int h = snprintf(pkt, 64, "vFlashWrite:%llx:", (unsigned long long)(addr + off));
        size_t consumed;
        size_t blen = rsp_escape(data + off, len - off, pkt + h, rsp_room(g, (size_t)h), &consumed);
        rc = gdb_rsp_command(g, pkt, (size_t)h + blen, reply, sizeof reply, NULL);
        if (rc == GDB_OK && strcmp(reply, "OK") != 0) rc = rsp_fail(g, GDB_EREPLY, "vFlashWrite answered %.16s", reply);
        off += consumed;
    }
    free(pkt);
    if (rc) return rc == GDB_UNSUPPORTED ? rsp_fail(g, GDB_EPROTO, "the GDB server has no vFlashWrite") : rc;
    g->timeout_ms = saved * 10;
    rc = gdb_rsp_command(g, "vFlashDone", 10, reply, sizeof reply, NULL);
    g->timeout_ms = saved;
    return rc == GDB_UNSUPPORTED ? rsp_fail(g, GDB_EPROTO, "the GDB server has no vFlashDone") : rc;
}

int gdb_rsp_crc(gdb_rsp *g, uint64_t addr, size_t len, uint32_t *crc)
{
    char cmd[64], reply[64];
    int c = snprintf(cmd, sizeof cmd, "qCRC:%llx,%zx", (unsigned long long)addr, len);
    int saved = g->timeout_ms;
    g->timeout_ms = saved * 4; /* the target walks the whole image */
    int rc = gdb_rsp_command(g, cmd, (size_t)c, reply, sizeof reply, NULL);
    g->timeout_ms = saved;
    if (rc) return rc;
    if (reply[0] != 'C' || !reply[1]) return rsp_fail(g, GDB_EPROTO, "unexpected answer to qCRC: %.16s", reply);
    *crc = (uint32_t)strtoul(reply + 1, NULL, 16);
    return GDB_OK;
}

/* Reads the target description, as gdb does on attach. Some servers (QEMU)
 * number registers for P only for a client that has read it. */
static int rsp_read_target_xml(gdb_rsp *g)
{
    size_t off = 0;
    for (int i = 0; i < 64; i++) {
        char cmd[96];
        int c = snprintf(cmd, sizeof cmd, "qXfer:features:read:target.xml:%zx,%zx", off, rsp_room(g, 0));
        size_t got = 0;
        int rc = gdb_rsp_command(g, cmd, (size_t)c, NULL, 0, &got);
        if (rc) return rc;
        if (g->reply[0] != 'm' || got <= 1) return GDB_OK;
        off += got - 1;
    }
    return GDB_OK;
}

int gdb_rsp_write_reg32(gdb_rsp *g, unsigned regno, uint32_t value)
{
    char cmd[48], reply[64];
    int c = snprintf(cmd, sizeof cmd, "P%x=%02x%02x%02x%02x", regno, value & 0xff, (value >> 8) & 0xff,
                     (value >> 16) & 0xff, value >> 24);
    int rc = gdb_rsp_command(g, cmd, (size_t)c, reply, sizeof reply, NULL);
    if (rc == GDB_UNSUPPORTED && !g->read_xml) {
        g->read_xml = 1;
        rc = rsp_read_target_xml(g);
        if (rc == GDB_OK || rc == GDB_UNSUPPORTED || rc == GDB_EREPLY)
            rc = gdb_rsp_command(g, cmd, (size_t)c, reply, sizeof reply, NULL);
    }
    if (rc == GDB_UNSUPPORTED) return rsp_fail(g, GDB_EPROTO, "the GDB server cannot write registers (P)");
    if (rc == GDB_OK && strcmp(reply, "OK") != 0) return rsp_fail(g, GDB_EPROTO, "unexpected answer to P: %.16s", reply);
    return rc;
}

int gdb_rsp_monitor(gdb_rsp *g, const char *mcmd, char *out, size_t out_len)
{
    char cmd[300];
    int c = snprintf(cmd, sizeof cmd, "qRcmd,");
    for (const char *p = mcmd; *p && c + 3 < (int)sizeof cmd; p++) {
        cmd[c++] = hexdig[(unsigned char)*p >> 4];
        cmd[c++] = hexdig[(unsigned char)*p & 15];
    }
    if (out && out_len) out[0] = 0;
    if (g->broken) return rsp_unusable(g);
    int rc = rsp_send_packet(g, cmd, (size_t)c);
    size_t got = 0;
    if (!rc) rc = rsp_reply(g, out, out_len, &got);
    if (rc) return rc;
    if (got == 0) return GDB_UNSUPPORTED;
    if (g->reply[0] == 'E') return rsp_fail(g, GDB_EREPLY, "monitor %s: %s", mcmd, g->reply);
    return GDB_OK;
}

int gdb_rsp_continue(gdb_rsp *g)
{
    if (g->broken) return rsp_unusable(g);
    return rsp_send_packet(g, "c", 1);
}
