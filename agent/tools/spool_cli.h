/* SPDX-License-Identifier: Apache-2.0 */
/* spool_cli.h - `lineagent spool stats|replay|export`: plant IT's tools on
 * the store-and-forward spool (backlog figures, re-publishing history to
 * Kafka after a downstream outage, JSON lines for people without Kafka). */
#ifndef LINEAGENT_SPOOL_CLI_H
#define LINEAGENT_SPOOL_CLI_H

/* argv[0] is "spool". Returns the process exit code. */
int spool_cli_main(int argc, char **argv);

#endif
