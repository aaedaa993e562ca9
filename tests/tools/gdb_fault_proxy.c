/* SPDX-License-Identifier: Apache-2.0 */
/* gdb_fault_proxy.c - a TCP proxy between the agent and a GDB server that
 * injects one programmer fault, for the gdb adapter's integration test:
 *
 *   gdb_fault_proxy LISTEN_PORT UPSTREAM_PORT MODE_FILE
 *
 * MODE_FILE is read at every new connection and holds one word:
 *   pass     forwards everything untouched.
 *   corrupt  flips one bit of the data in every memory write (X or M packet)
 *            and fixes the checksum, so the server accepts it: a silent
 *            corruption that only the read-back can catch.
 *   drop     closes both sides as soon as the agent sends its first memory
 *            write: the probe vanishes in the middle of programming.
 *   stall    accepts and reads but never answers: a hung probe.
 *
 * Prints "listening" once ready; serves one connection at a time, forever. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char hexdig[] = "0123456789abcdef";

static int special(int c) { return c == '#' || c == '$' || c == '}' || c == '*'; }

/* Changes one data byte of a complete "$...#xx" packet in place. */
static void corrupt(char *pkt, size_t len)
{
    char *colon = memchr(pkt, ':', len);
    if (!colon) return;
    size_t end = len - 3; /* index of '#' */
    if (pkt[1] == 'M') {
        char *d = colon + 1;
        if (d < pkt + end) *d = *d == '0' ? '1' : '0';
    } else {
        for (char *d = colon + 1; d < pkt + end; d++) {
            if (*d == '}') { d++; continue; }
            if (!special(*d ^ 1)) { *d ^= 1; break; }
        }
    }
    unsigned sum = 0;
    for (size_t i = 1; i < end; i++) sum += (unsigned char)pkt[i];
    pkt[end + 1] = hexdig[(sum >> 4) & 15];
    pkt[end + 2] = hexdig[sum & 15];
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* fault: 0 none, 1 corrupt the first write, 2 drop at the first write */
static void serve(int c, int up, int fault)
{
    static char pkt[1 << 17];
    size_t plen = 0;
    int in_pkt = 0, hash = 0;
    struct pollfd p[2] = {{c, POLLIN, 0}, {up, POLLIN, 0}};
    for (;;) {
        if (poll(p, 2, -1) < 0) return;
        char buf[4096];
        if (p[1].revents) {
            ssize_t n = read(up, buf, sizeof buf);
            if (n <= 0 || write(c, buf, (size_t)n) != n) return;
        }
        if (!p[0].revents) continue;
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) return;
        for (ssize_t i = 0; i < n; i++) {
            char ch = buf[i];
            if (!in_pkt) {
                if (ch == '$') {
                    in_pkt = 1;
                    hash = 0;
                    plen = 0;
                    pkt[plen++] = ch;
                } else if (write(up, &ch, 1) != 1) {
                    return;
                }
                continue;
            }
            if (plen < sizeof pkt) pkt[plen++] = ch;
            if (hash) hash++;
            else if (ch == '#') hash = 1;
            if (hash == 3) { /* '#' and two checksum digits */
                in_pkt = 0;
                int is_write = plen > 2 && (pkt[1] == 'X' || pkt[1] == 'M') && memchr(pkt, ':', plen) &&
                               !(pkt[plen - 5] == ':' ); /* not the empty "X addr,0:" probe */
                if (fault == 2 && is_write) return;
                if (fault == 1 && is_write) corrupt(pkt, plen);
                if (write(up, pkt, plen) != (ssize_t)plen) return;
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT MODE_FILE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 4) != 0) {
        perror("gdb_fault_proxy: listen");
        return 1;
    }
    printf("listening\n");
    fflush(stdout);
    for (;;) {
        int c = accept(ls, NULL, NULL);
        if (c < 0) continue;
        char mode[32] = "pass";
        FILE *f = fopen(argv[3], "r");
        if (f) {
            if (fscanf(f, "%31s", mode) != 1) snprintf(mode, sizeof mode, "pass");
            fclose(f);
        }
        if (strcmp(mode, "stall") == 0) {
            char buf[4096];
            while (read(c, buf, sizeof buf) > 0) {
            }
            close(c);
            continue;
        }
        int up = dial(atoi(argv[2]));
        if (up >= 0) {
            serve(c, up, strcmp(mode, "drop") == 0 ? 2 : strcmp(mode, "corrupt") == 0 ? 1 : 0);
            close(up);
        }
        close(c);
    }
}
