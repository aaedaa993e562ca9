/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_gdb_rsp.c - libFuzzer harness: what a GDB server (a probe, OpenOCD,
 * QEMU) sends, as the gdb adapter's RSP client reads it: the input is the
 * server's whole byte stream (acks, packets, noise) behind a socketpair,
 * then qSupported, a memory read, qCRC, a monitor command and a flash
 * write (memory-map XML) run against it. */
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "gdb_rsp.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 100000) return 0; /* fits the socket buffer: written before reading */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return 0;
    int sz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    for (size_t off = 0; off < size;) {
        ssize_t w = write(sv[1], data + off, size - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    shutdown(sv[1], SHUT_WR); /* end of input: reads see EOF, not a timeout */
    int code = 0;
    char err[256];
    gdb_rsp *g = gdb_rsp_open_fd(sv[0], 1000, &code, err, sizeof err);
    if (g) {
        uint8_t buf[512];
        uint32_t crc;
        char out[1024] = "";
        static const uint8_t img[64] = {1, 2, 3};
        gdb_rsp_read_mem(g, 0x8000000, buf, sizeof buf);
        gdb_rsp_crc(g, 0x8000000, 4096, &crc);
        gdb_rsp_monitor(g, "reset halt", out, sizeof out);
        gdb_rsp_flash(g, 0x8000000, img, sizeof img);
        gdb_rsp_close(g);
    }
    close(sv[1]);
    return 0;
}
