/* SPDX-License-Identifier: Apache-2.0 */
/* adapter_sim.h - what the simulated station tells tests beyond the adapter
 * interface: the order in which its boards were written. */
#ifndef LINEAGENT_ADAPTER_SIM_H
#define LINEAGENT_ADAPTER_SIM_H

#include <stddef.h>

#include "adapter.h"

typedef struct adapter_sim_write {
    char board_id[ADAPTER_ID_MAX];
    char sha256[65]; /* digest of what the write left in the board's flash */
} adapter_sim_write;

/* The writes of boards whose id starts with prefix, in the order they
 * happened (oldest first, among the last SIM_FLASH_SLOTS of all boards);
 * at most max into out; their count. */
size_t adapter_sim_writes(const char *prefix, adapter_sim_write *out, size_t max);

#endif
