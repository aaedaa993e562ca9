/* SPDX-License-Identifier: Apache-2.0 */
/* ts_consumer.h - `tracestore run`'s consumer: the group's share of the
 * trace and field topics into PostgreSQL, batch by batch, until *stop. */
#ifndef TS_CONSUMER_H
#define TS_CONSUMER_H

#include <signal.h>

#include "ts_config.h"

/* Returns 0 after a clean stop, 1 when Kafka cannot be set up. */
int ts_consumer_run(const ts_config *cfg, volatile sig_atomic_t *stop);

#endif
