/* SPDX-License-Identifier: Apache-2.0 */
/* gdb_rsp.h - a client for the GDB Remote Serial Protocol over TCP, enough to
 * program and check a target through any GDB server (OpenOCD, J-Link GDB
 * Server, pyOCD, Black Magic Probe, QEMU -gdb): packet framing with checksum
 * and +/- acks, binary escaping, run-length decoding, qSupported PacketSize,
 * memory read/write (X, falling back to M), flash commands (vFlash*), qCRC,
 * registers, monitor commands, halt and continue.
 *
 * Every exchange has a deadline, so a silent or vanished server costs at most
 * the configured timeout; errors are reported as a code plus a sentence in
 * gdb_rsp_error(). One connection is used by one thread at a time. */
#ifndef LINEAGENT_GDB_RSP_H
#define LINEAGENT_GDB_RSP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gdb_rsp gdb_rsp;

enum {
    GDB_OK = 0,
    GDB_UNSUPPORTED = 1, /* the server answered with an empty packet */
    GDB_EREPLY = -1,     /* the server answered Exx */
    GDB_ETIMEOUT = -2,   /* no (complete) answer within the timeout */
    GDB_ECLOSED = -3,    /* the connection is gone (refused, reset, EOF) */
    GDB_EPROTO = -4,     /* garbage, repeated bad checksums, oversized reply */
};

/* Connects and reads the server's qSupported answer. NULL on failure, with
 * *code one of the negative codes above and a sentence in err. */
gdb_rsp *gdb_rsp_connect(const char *host, int port, int timeout_ms, int *code, char *err, size_t err_len);
/* The session on an already connected fd (taken over: closed on failure):
 * qSupported exchanged. The fuzz harness feeds replies through it. */
gdb_rsp *gdb_rsp_open_fd(int fd, int timeout_ms, int *code, char *err, size_t err_len);
/* A TCP connection to host:port within timeout_ms, non-blocking or not;
 * the fd, or -1 with err set in every case. */
int gdb_tcp_connect(const char *host, int port, int timeout_ms, int nonblock, char *err, size_t err_len);
void gdb_rsp_close(gdb_rsp *g);
/* The last failure, for people. */
const char *gdb_rsp_error(const gdb_rsp *g);
/* The PacketSize the server announced (default 400 when it did not). */
size_t gdb_rsp_packet_size(const gdb_rsp *g);
/* 1 when the server announced qXfer:memory-map:read+ (flash commands). */
int gdb_rsp_has_memory_map(const gdb_rsp *g);

/* Sends one command (already encoded) and reads its reply into reply
 * (NUL-terminated, binary-safe length in *reply_len), skipping console
 * output packets. Returns GDB_OK, GDB_UNSUPPORTED for an empty reply,
 * GDB_EREPLY for Exx, or a negative transport error. */
int gdb_rsp_command(gdb_rsp *g, const char *cmd, size_t cmd_len, char *reply, size_t reply_cap, size_t *reply_len);

/* Stops the target (interrupt, then '?'). */
int gdb_rsp_halt(gdb_rsp *g);
/* Writes len bytes at addr: X packets, or M when the server lacks X. */
int gdb_rsp_write_mem(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len);
/* Reads len bytes at addr with m packets. */
int gdb_rsp_read_mem(gdb_rsp *g, uint64_t addr, uint8_t *out, size_t len);
/* Programs flash with vFlashErase/vFlashWrite/vFlashDone when the server's
 * memory map has a flash region at addr. GDB_UNSUPPORTED when it does not
 * (the caller then writes memory directly). */
int gdb_rsp_flash(gdb_rsp *g, uint64_t addr, const uint8_t *data, size_t len);
/* The target's CRC over [addr, addr+len) via qCRC; GDB_UNSUPPORTED if the
 * server has no qCRC. */
int gdb_rsp_crc(gdb_rsp *g, uint64_t addr, size_t len, uint32_t *crc);
/* Writes a 32-bit register with P (little-endian target). */
int gdb_rsp_write_reg32(gdb_rsp *g, unsigned regno, uint32_t value);
/* "monitor CMD" (qRcmd); the server's console output goes to out. */
int gdb_rsp_monitor(gdb_rsp *g, const char *cmd, char *out, size_t out_len);
/* Resumes the target; does not wait for it to stop again. */
int gdb_rsp_continue(gdb_rsp *g);

#endif
