/* SPDX-License-Identifier: Apache-2.0 */
/* ack_window.h - which seqs Kafka has acknowledged, for the delivery
 * watermark. Partitions acknowledge independently, so acknowledgements
 * arrive out of seq order; the window remembers those above the lowest
 * unacknowledged seq (its base) and moves the base over every run that
 * becomes contiguous. Everything below the base is delivered. */
#ifndef LINEAGENT_ACK_WINDOW_H
#define LINEAGENT_ACK_WINDOW_H

#include <stdint.h>

typedef struct ack_window ack_window;

/* A window of size seqs (a multiple of 8) starting at base; NULL when out
 * of memory. It costs size / 8 bytes. */
ack_window *ack_window_new(uint64_t base, uint32_t size);
void ack_window_free(ack_window *w);
/* The lowest seq not yet acknowledged: the watermark is base - 1. */
uint64_t ack_window_base(const ack_window *w);
/* 1 when seq may be sent: it lies inside the window (seq < base + size). */
int ack_window_has_room(const ack_window *w, uint64_t seq);
/* 1 when seq was acknowledged (below the base, or marked above it). */
int ack_window_is_acked(const ack_window *w, uint64_t seq);
/* Records an acknowledgement; one below the base (a resend acknowledged
 * twice) changes nothing. seq must have had room. */
void ack_window_ack(ack_window *w, uint64_t seq);

#endif
