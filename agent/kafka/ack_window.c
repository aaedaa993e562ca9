/* SPDX-License-Identifier: Apache-2.0 */
/* ack_window.c - a ring bitmap of acknowledged seqs above the watermark;
 * see ack_window.h. */
#include "ack_window.h"

#include <stdlib.h>

struct ack_window {
    uint64_t base;
    uint32_t size;
    uint8_t bits[]; /* bit (seq % size), for base <= seq < base + size */
};

ack_window *ack_window_new(uint64_t base, uint32_t size)
{
    ack_window *w = calloc(1, sizeof *w + size / 8);
    if (!w) return NULL;
    w->base = base;
    w->size = size;
    return w;
}

void ack_window_free(ack_window *w) { free(w); }

uint64_t ack_window_base(const ack_window *w) { return w->base; }

int ack_window_has_room(const ack_window *w, uint64_t seq) { return seq < w->base + w->size; }

static int bit_get(const ack_window *w, uint64_t seq)
{
    uint64_t b = seq % w->size;
    return w->bits[b / 8] >> (b % 8) & 1;
}

int ack_window_is_acked(const ack_window *w, uint64_t seq) { return seq < w->base || bit_get(w, seq); }

void ack_window_ack(ack_window *w, uint64_t seq)
{
    if (seq < w->base || !ack_window_has_room(w, seq)) return;
    uint64_t b = seq % w->size;
    w->bits[b / 8] |= (uint8_t)(1u << (b % 8));
    /* Clearing as the base passes leaves the slot free for seq + size. */
    while (bit_get(w, w->base)) {
        b = w->base % w->size;
        w->bits[b / 8] &= (uint8_t)~(1u << (b % 8));
        w->base++;
    }
}
