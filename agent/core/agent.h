/* SPDX-License-Identifier: Apache-2.0 */
/* agent.h - `lineagent run`: wires the spool, Kafka forwarder, line, order
 * intake and MQTT link together and runs the main loop until a signal. */
#ifndef LINEAGENT_AGENT_H
#define LINEAGENT_AGENT_H

#include "config.h"

/* Installs SIGINT/SIGTERM handlers (they only set a flag) and runs. Returns
 * the process exit code: 0 after a clean stop. */
int agent_run(const config *cfg);

#endif
