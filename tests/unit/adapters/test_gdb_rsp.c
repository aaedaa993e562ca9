/* SPDX-License-Identifier: Apache-2.0 */
/* test_gdb_rsp.c - the GDB Remote Serial Protocol client and the gdb
 * adapter against a fake GDB server in a thread: a 64 KiB memory target
 * whose features (X, qCRC, flash memory map, PacketSize, run-length replies,
 * a NAK on the first packet, silence) each test switches on. QEMU in
 * it_gdb_qemu.sh covers the M/m path of a real server; this covers the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "adapter.h"
#include "digest.h"
#include "gdb_identity.h"
#include "gdb_rsp.h"
#include "clock.h"

#define MEM 65536

typedef struct fake {
    int x, crc, flash, rle, nak_first, silent, packet_size, corrupt, refuse_write;
    uint8_t mem[MEM];
    int n_x, n_m, n_flash_write, n_erase, n_crc, n_done, n_reg;
    size_t max_pkt; /* longest packet payload received */
    int ls, port;
    pthread_t th;
} fake;

static const char hx[] = "0123456789abcdef";

static void fk_send(int fd, const char *payload)
{
    char buf[70000];
    unsigned sum = 0;
    size_t n = strlen(payload);
    buf[0] = '$';
    memcpy(buf + 1, payload, n);
    for (size_t i = 0; i < n; i++) sum += (unsigned char)payload[i];
    snprintf(buf + n + 1, 4, "#%c%c", hx[(sum >> 4) & 15], hx[sum & 15]);
    if (write(fd, buf, n + 4) < 0) return;
}

/* Reads one packet (unescaped) into out; returns its length or -1. */
static long fk_recv(fake *f, int fd, uint8_t *out, int *first)
{
    char c;
    do {
        if (read(fd, &c, 1) != 1) return -1;
    } while (c != '$');
    long n = 0;
    int esc = 0;
    for (;;) {
        if (read(fd, &c, 1) != 1) return -1;
        if (c == '#') break;
        if (esc) out[n++] = (uint8_t)(c ^ 0x20), esc = 0;
        else if (c == '}') esc = 1;
        else out[n++] = (uint8_t)c;
    }
    char cs[2];
    if (read(fd, cs, 2) != 2) return -1;
    if ((size_t)n > f->max_pkt) f->max_pkt = (size_t)n;
    if (*first && f->nak_first) {
        *first = 0;
        if (write(fd, "-", 1) != 1) return -1;
        return fk_recv(f, fd, out, first);
    }
    *first = 0;
    if (write(fd, "+", 1) != 1) return -1;
    out[n] = 0;
    return n;
}

static uint32_t rd_hex(const char **p)
{
    return (uint32_t)strtoul(*p, (char **)p, 16);
}

static void fk_hexmem(fake *f, char *out, uint32_t a, uint32_t n)
{
    size_t o = 0;
    for (uint32_t i = 0; i < n; i++) {
        out[o++] = hx[f->mem[a + i] >> 4];
        out[o++] = hx[f->mem[a + i] & 15];
    }
    out[o] = 0;
    if (f->rle) { /* run-length encode runs of '0': "0*<n+29>" */
        char *tmp = strdup(out);
        size_t i = 0, w = 0;
        while (tmp[i]) {
            size_t r = 1;
            while (tmp[i + r] == tmp[i] && r < 40) r++;
            if (r >= 4 && r - 1 + 29 != '#' && r - 1 + 29 != '$' && r - 1 + 29 != '+' && r - 1 + 29 != '-') {
                out[w++] = tmp[i];
                out[w++] = '*';
                out[w++] = (char)(r - 1 + 29);
            } else {
                memcpy(out + w, tmp + i, r);
                w += r;
            }
            i += r;
        }
        out[w] = 0;
        free(tmp);
    }
}

static void *fk_main(void *arg)
{
    fake *f = arg;
    static uint8_t pkt[70000];
    static char reply[140000];
    for (;;) {
        int fd = accept(f->ls, NULL, NULL);
        if (fd < 0) return NULL;
        int first = 1;
        long n;
        while ((n = fk_recv(f, fd, pkt, &first)) >= 0) {
            const char *p = (const char *)pkt;
            if (f->silent) continue;
            if (!strncmp(p, "qSupported", 10)) {
                snprintf(reply, sizeof reply, "PacketSize=%x%s", f->packet_size, f->flash ? ";qXfer:memory-map:read+" : "");
            } else if (p[0] == '?') {
                strcpy(reply, "S05");
            } else if (p[0] == 'm') {
                p++;
                uint32_t a = rd_hex(&p);
                p++;
                uint32_t len = rd_hex(&p);
                fk_hexmem(f, reply, a, len);
            } else if (p[0] == 'M') {
                f->n_m++;
                p++;
                uint32_t a = rd_hex(&p);
                p++;
                uint32_t len = rd_hex(&p);
                p++;
                for (uint32_t i = 0; i < len; i++) {
                    char b[3] = {p[2 * i], p[2 * i + 1], 0};
                    f->mem[a + i] = (uint8_t)strtoul(b, NULL, 16);
                }
                strcpy(reply, "OK");
            } else if (p[0] == 'X' && f->refuse_write) {
                strcpy(reply, "E0e");
            } else if (p[0] == 'X') {
                if (!f->x) {
                    reply[0] = 0;
                } else {
                    f->n_x++;
                    p++;
                    uint32_t a = rd_hex(&p);
                    p++;
                    uint32_t len = rd_hex(&p);
                    const uint8_t *d = (const uint8_t *)strchr(p, ':') + 1;
                    memcpy(f->mem + a, d, len);
                    if (f->corrupt && len) f->mem[a] ^= 0x80;
                    strcpy(reply, "OK");
                }
            } else if (!strncmp(p, "qCRC:", 5) && f->crc) {
                f->n_crc++;
                p += 5;
                uint32_t a = rd_hex(&p);
                p++;
                uint32_t len = rd_hex(&p);
                snprintf(reply, sizeof reply, "C%x", digest_crc32_gdb(0xffffffffu, f->mem + a, len));
            } else if (!strncmp(p, "qXfer:memory-map:read::", 23) && f->flash) {
                p += 23;
                uint32_t off = rd_hex(&p);
                const char *map = "l<memory-map><memory type=\"ram\" start=\"0x20000000\" length=\"0x1000\"/>"
                                  "<memory type=\"flash\" start=\"0x0\" length=\"0x8000\">"
                                  "<property name=\"blocksize\">0x400</property></memory></memory-map>";
                snprintf(reply, sizeof reply, "%s", off ? "l" : map);
            } else if (!strncmp(p, "vFlashErase:", 12)) {
                f->n_erase++;
                p += 12;
                uint32_t a = rd_hex(&p);
                p++;
                uint32_t len = rd_hex(&p);
                memset(f->mem + a, 0xff, len);
                strcpy(reply, "OK");
            } else if (!strncmp(p, "vFlashWrite:", 12)) {
                f->n_flash_write++;
                p += 12;
                uint32_t a = rd_hex(&p);
                p++;
                memcpy(f->mem + a, p, (size_t)(n - ((const uint8_t *)p - pkt)));
                strcpy(reply, "OK");
            } else if (!strcmp(p, "vFlashDone")) {
                f->n_done++;
                strcpy(reply, "OK");
            } else if (p[0] == 'P') {
                f->n_reg++;
                strcpy(reply, "OK");
            } else if (!strncmp(p, "qRcmd,", 6)) {
                fk_send(fd, "O756e6b6e6f776e0a"); /* "unknown\n" */
                strcpy(reply, "OK");
            } else if (p[0] == 'c') {
                continue;
            } else {
                reply[0] = 0;
            }
            fk_send(fd, reply);
        }
        close(fd);
    }
}

static fake *fk_start(void)
{
    fake *f = calloc(1, sizeof *f);
    f->packet_size = 0x1000;
    for (int i = 0; i < MEM; i++) f->mem[i] = (uint8_t)(i * 7);
    f->ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->ls, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(f->ls, (struct sockaddr *)&a, &al);
    f->port = ntohs(a.sin_port);
    listen(f->ls, 4);
    pthread_create(&f->th, NULL, fk_main, f);
    return f;
}

static void fk_stop(fake *f)
{
    shutdown(f->ls, SHUT_RDWR);
    close(f->ls);
    pthread_join(f->th, NULL);
    free(f);
}

/* An image full of bytes the protocol must escape. */
static void make_image(uint8_t *img, size_t n)
{
    const uint8_t special[] = {'#', '$', '}', '*', 0, 0xff, '+', '-'};
    for (size_t i = 0; i < n; i++) img[i] = i % 3 ? special[i % sizeof special] : (uint8_t)(i * 13);
}

static gdb_rsp *conn(fake *f, int timeout_ms)
{
    char err[256];
    int code;
    gdb_rsp *g = gdb_rsp_connect("127.0.0.1", f->port, timeout_ms, &code, err, sizeof err);
    assert_non_null(g);
    return g;
}

static void test_x_write_escapes_and_m_reads_back_rle(void **state)
{
    fake *f = fk_start();
    f->x = 1;
    f->rle = 1;
    f->nak_first = 1; /* the first packet is refused once and must be resent */
    f->packet_size = 0x200;
    gdb_rsp *g = conn(f, 2000);
    assert_int_equal(gdb_rsp_packet_size(g), 0x200);
    uint8_t img[5000], back[5000];
    make_image(img, sizeof img);
    memset(img + 1000, 0, 600); /* a long run the server run-length encodes */
    assert_int_equal(gdb_rsp_halt(g), GDB_OK);
    assert_int_equal(gdb_rsp_write_mem(g, 0x100, img, sizeof img), GDB_OK);
    assert_memory_equal(f->mem + 0x100, img, sizeof img);
    assert_true(f->n_x > 1);
    assert_int_equal(f->n_m, 0);
    assert_true(f->max_pkt < 0x200); /* every packet within the server's PacketSize */
    assert_int_equal(gdb_rsp_read_mem(g, 0x100, back, sizeof back), GDB_OK);
    assert_memory_equal(back, img, sizeof img);
    gdb_rsp_close(g);
    fk_stop(f);
}

static void test_m_fallback_without_x(void **state)
{
    fake *f = fk_start();
    gdb_rsp *g = conn(f, 2000);
    uint8_t img[3000];
    make_image(img, sizeof img);
    assert_int_equal(gdb_rsp_write_mem(g, 0x40, img, sizeof img), GDB_OK);
    assert_int_equal(f->n_x, 0);
    assert_true(f->n_m > 1);
    assert_memory_equal(f->mem + 0x40, img, sizeof img);
    gdb_rsp_close(g);
    fk_stop(f);
}

static void test_crc_matches_gdb_algorithm(void **state)
{
    /* CRC-32/MPEG-2 check value: "123456789" -> 0x0376e6e7 */
    assert_int_equal(digest_crc32_gdb(0xffffffffu, (const uint8_t *)"123456789", 9), 0x0376e6e7u);
}

static void test_flash_commands_when_memory_map_has_flash(void **state)
{
    fake *f = fk_start();
    f->flash = 1;
    gdb_rsp *g = conn(f, 2000);
    assert_true(gdb_rsp_has_memory_map(g));
    uint8_t img[3000];
    make_image(img, sizeof img);
    assert_int_equal(gdb_rsp_flash(g, 0x800, img, sizeof img), GDB_OK);
    assert_int_equal(f->n_erase, 1);
    assert_true(f->n_flash_write >= 1);
    assert_int_equal(f->n_done, 1);
    assert_memory_equal(f->mem + 0x800, img, sizeof img);
    assert_int_equal(f->mem[0x800 + 3000], 0xff); /* rest of the erased block */
    /* RAM is not flash: the caller writes it directly */
    assert_int_equal(gdb_rsp_flash(g, 0x20000000, img, 16), GDB_UNSUPPORTED);
    gdb_rsp_close(g);
    fk_stop(f);
}

static void test_silent_server_times_out(void **state)
{
    fake *f = fk_start();
    f->silent = 1;
    char err[256];
    int code = 0;
    gdb_rsp *g = gdb_rsp_connect("127.0.0.1", f->port, 300, &code, err, sizeof err);
    assert_null(g);
    assert_int_equal(code, GDB_ETIMEOUT);
    assert_non_null(strstr(err, "300 ms"));
    fk_stop(f);
}

static void test_refused_connection(void **state)
{
    fake *f = fk_start();
    int port = f->port;
    fk_stop(f);
    char err[256];
    int code = 0;
    assert_null(gdb_rsp_connect("127.0.0.1", port, 500, &code, err, sizeof err));
    assert_int_equal(code, GDB_ECLOSED);
}

/* A packet cut by a '$' restart: the overflow of the cut one is not held
 * against the whole one that follows. */
static void test_restart_resets_overflow(void **state)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int sz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    size_t big = 70000; /* over the 65536-byte reply limit */
    char *junk = malloc(big + 1);
    junk[0] = '$';
    assert_int_equal(write(sv[1], "+", 1), 1); /* the ack of qSupported */
    memset(junk + 1, 'a', big);
    for (size_t off = 0; off < big + 1;) {
        ssize_t w = write(sv[1], junk + off, big + 1 - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    free(junk);
    fk_send(sv[1], "PacketSize=1000;qXfer:memory-map:read+");
    char err[256];
    int code = 0;
    gdb_rsp *g = gdb_rsp_open_fd(sv[0], 2000, &code, err, sizeof err);
    if (!g) fail_msg("restarted packet refused: %s", err);
    assert_int_equal(gdb_rsp_packet_size(g), 0x1000);
    assert_true(gdb_rsp_has_memory_map(g));
    gdb_rsp_close(g);
    close(sv[1]);
}

/* A console or GDB server that never completes the handshake times out;
 * every failure, socket() included, says why. */
static void test_tcp_connect_bounded_and_explained(void **state)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 0), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int port = ntohs(a.sin_port);
    /* Fill the accept queue: further SYNs are dropped and connect() hangs. */
    int fill[4], n = 0;
    char err[512];
    for (int i = 0; i < 4; i++) fill[n++] = gdb_tcp_connect("127.0.0.1", port, 200, 0, err, sizeof err);
    int64_t t0 = clock_mono_ms();
    int fd = gdb_tcp_connect("127.0.0.1", port, 300, 0, err, sizeof err);
    int64_t ms = clock_mono_ms() - t0;
    assert_int_equal(fd, -1);
    assert_true(ms < 2000);
    assert_non_null(strstr(err, "timed out after 300 ms"));
    for (int i = 0; i < n; i++)
        if (fill[i] >= 0) close(fill[i]);
    close(l);
    /* no descriptor left for socket(): the reason says so */
    struct rlimit old, none;
    getrlimit(RLIMIT_NOFILE, &old);
    none = old;
    none.rlim_cur = 0;
    strcpy(err, "stale");
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &none), 0);
    fd = gdb_tcp_connect("127.0.0.1", port, 300, 0, err, sizeof err);
    setrlimit(RLIMIT_NOFILE, &old);
    assert_int_equal(fd, -1);
    assert_non_null(strstr(err, "socket: "));
}

/* ---- the adapter ----------------------------------------------------- */

static void *gdb_open_port(fake *f, const char *extra_key, const char *extra_val)
{
    char port[16];
    snprintf(port, sizeof port, "%d", f->port);
    kv_pair kv[] = {{"gdb.port", port}, {"gdb.timeout_ms", "1000"}, {"gdb.load_address", "0x1000"},
                      {(char *)extra_key, (char *)extra_val}};
    station_config st = {.name = "g1", .adapter = "gdb", .keys = kv, .n_keys = extra_key ? 4 : 3};
    void *s = NULL;
    char err[256];
    assert_int_equal(adapter_find("gdb")->open(&s, &st, err, sizeof err), 0);
    return s;
}

static void test_adapter_verifies_by_crc_and_starts(void **state)
{
    fake *f = fk_start();
    f->x = 1;
    f->crc = 1;
    const adapter *ad = adapter_find("gdb");
    void *s = gdb_open_port(f, NULL, NULL);
    uint8_t img[2048];
    make_image(img, sizeof img);
    char sha[65];
    digest_sha256_hex(img, sizeof img, sha);
    adapter_image im = {"1.0.0", sha, img, sizeof img, 0};
    adapter_step_ctx ctx = {.station = "g1", .lot_id = "LOT", .board_id = "B1", .image = &im};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed);
    assert_memory_equal(f->mem + 0x1000, img, sizeof img); /* gdb.load_address overrides the release's 0 */
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_true(r.passed);
    assert_int_equal(f->n_crc, 1);
    assert_int_equal(r.readback_crc, ADAPTER_CRC32_GDB); /* the target's CRC, not the release digest */
    assert_string_equal(r.readback_sha256, "");
    assert_int_equal(r.readback_crc32, digest_crc32_gdb(0xffffffffu, img, sizeof img)); /* the agent compares */
    assert_int_equal(f->n_reg, 3); /* "monitor reset run" unknown: SP, PC, xPSR from the vector table */
    /* the target's content changes: CRC catches it */
    f->mem[0x1000 + 100] ^= 1;
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_int_equal(r.readback_crc, ADAPTER_CRC32_GDB);
    assert_int_not_equal(r.readback_crc32, digest_crc32_gdb(0xffffffffu, img, sizeof img));
    ad->close(s);
    fk_stop(f);
}

static void test_adapter_readback_mismatch_and_lock(void **state)
{
    fake *f = fk_start();
    f->x = 1;
    f->corrupt = 1; /* a programmer that flips a bit and says OK */
    const adapter *ad = adapter_find("gdb");
    void *s = gdb_open_port(f, "gdb.lock_address", "0x2000");
    uint8_t img[512];
    make_image(img, sizeof img);
    char sha[65];
    digest_sha256_hex(img, sizeof img, sha);
    adapter_image im = {"1.0.0", sha, img, sizeof img, 0};
    adapter_step_ctx ctx = {.station = "g1", .lot_id = "LOT", .board_id = "B1", .image = &im};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_true(r.passed);
    memset(&r, 0, sizeof r);
    ad->verify(s, &ctx, &r);
    assert_int_equal(r.readback_crc, ADAPTER_CRC_NONE); /* no qCRC: the bytes read back, hashed */
    assert_string_not_equal(r.readback_sha256, sha);
    assert_string_not_equal(r.readback_sha256, "");
    memset(&r, 0, sizeof r);
    f->corrupt = 0;
    ad->lock(s, &ctx, &r);
    assert_true(r.passed);
    assert_true(r.lock_verified);
    f->corrupt = 1; /* the lock word does not stick */
    memset(&r, 0, sizeof r);
    ad->lock(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "lock_unverified");
    ad->close(s);
    fk_stop(f);
}

static void test_refused_write_is_a_write_error(void **state)
{
    fake *f = fk_start();
    f->x = 1;
    f->refuse_write = 1; /* e.g. the region is protected */
    const adapter *ad = adapter_find("gdb");
    void *s = gdb_open_port(f, NULL, NULL);
    uint8_t img[300];
    make_image(img, sizeof img);
    char sha[65];
    digest_sha256_hex(img, sizeof img, sha);
    adapter_image im = {"1.0.0", sha, img, sizeof img, 0};
    adapter_step_ctx ctx = {.station = "g1", .lot_id = "LOT", .board_id = "B1", .image = &im};
    adapter_result r = {0};
    ad->write(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "write_error");
    assert_non_null(strstr(r.detail, "answered E0e to X1000"));
    ad->close(s);
    fk_stop(f);
}

static void test_adapter_config_errors(void **state)
{
    const adapter *ad = adapter_find("gdb");
    char err[256];
    void *s = NULL;
    kv_pair none[] = {{"gdb.host", "127.0.0.1"}};
    station_config st = {.name = "g1", .adapter = "gdb", .keys = none, .n_keys = 1};
    assert_int_not_equal(ad->open(&s, &st, err, sizeof err), 0);
    assert_non_null(strstr(err, "gdb.port is required"));
    kv_pair bad[] = {{"gdb.port", "3333"}, {"gdb.uid_address", "0x1fff7a10"}};
    st.keys = bad;
    st.n_keys = 2;
    assert_int_not_equal(ad->open(&s, &st, err, sizeof err), 0);
    assert_non_null(strstr(err, "uid_length"));
    kv_pair con[] = {{"gdb.port", "3333"}, {"gdb.console", "nohostport"}};
    st.keys = con;
    assert_int_not_equal(ad->open(&s, &st, err, sizeof err), 0);
    assert_non_null(strstr(err, "gdb.console"));
    kv_pair port[] = {{"gdb.port", "3333"}};
    st.keys = port;
    st.n_keys = 1;
    st.steps_mask = 1u << 3; /* PROVISION without gdb.identity_address */
    assert_int_not_equal(ad->open(&s, &st, err, sizeof err), 0);
    assert_non_null(strstr(err, "gdb.identity_address"));
}

/* PROVISION: the identity record written at gdb.identity_address, read back
 * and parsed into the result; a target that does not keep it is refused. */
static void test_adapter_provisions_identity_record(void **state)
{
    fake *f = fk_start();
    f->x = 1;
    const adapter *ad = adapter_find("gdb");
    void *s = gdb_open_port(f, "gdb.identity_address", "0x3000");
    static const char macs[2][18] = {"02:00:00:00:00:07", "02:00:00:00:00:08"};
    const char *sha = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    adapter_identity id = {.serial = "PCBA-100-F1-000007", .device_id = "dev-7", .factory_code = "F1",
                           .macs = macs, .n_macs = 2, .certificate = "PEM", .private_key = "KEY",
                           .cert_sha256 = sha};
    adapter_step_ctx ctx = {.station = "g1", .lot_id = "LOT", .board_id = "B1", .identity = &id};
    adapter_result r = {0};
    ad->provision(s, &ctx, &r);
    assert_true(r.passed);
    assert_string_equal(r.serial, id.serial);
    assert_string_equal(r.device_id, id.device_id);
    assert_int_equal(r.n_macs, 2);
    assert_string_equal(r.macs[0], macs[0]);
    assert_string_equal(r.macs[1], macs[1]);
    assert_string_equal(r.cert_sha256, sha);
    /* the record is in the target's memory, as documented, without the key */
    assert_memory_equal(f->mem + 0x3000, "LAID\x01\x00", 6);
    size_t total = (size_t)(f->mem[0x3006] | f->mem[0x3007] << 8);
    adapter_result parsed = {0};
    char err[200];
    assert_int_equal(gdb_identity_parse(f->mem + 0x3000, total, &parsed, err, sizeof err), GDB_ID_OK);
    assert_null(memmem(f->mem + 0x3000, total, "KEY", 3));
    /* a target that flips a bit of what it is given: the CRC refuses it */
    f->corrupt = 1;
    memset(&r, 0, sizeof r);
    ad->provision(s, &ctx, &r);
    assert_false(r.passed);
    assert_string_equal(r.failure_mode, "provision_mismatch");
    assert_string_equal(r.serial, "");
    ad->close(s);
    fk_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_x_write_escapes_and_m_reads_back_rle),
        cmocka_unit_test(test_m_fallback_without_x),
        cmocka_unit_test(test_crc_matches_gdb_algorithm),
        cmocka_unit_test(test_flash_commands_when_memory_map_has_flash),
        cmocka_unit_test(test_silent_server_times_out),
        cmocka_unit_test(test_refused_connection),
        cmocka_unit_test(test_restart_resets_overflow),
        cmocka_unit_test(test_tcp_connect_bounded_and_explained),
        cmocka_unit_test(test_adapter_verifies_by_crc_and_starts),
        cmocka_unit_test(test_adapter_readback_mismatch_and_lock),
        cmocka_unit_test(test_refused_write_is_a_write_error),
        cmocka_unit_test(test_adapter_config_errors),
        cmocka_unit_test(test_adapter_provisions_identity_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
