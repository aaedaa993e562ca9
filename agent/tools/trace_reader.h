/* SPDX-License-Identifier: Apache-2.0 */
/* trace_reader.h - `lineagent trace`: reads the traceability topic back from
 * Kafka (all partitions, from the beginning) and prints every event as a JSON
 * line, or a lot summary: units per firmware version, changeovers, failures
 * by step and failure mode, and sequence/event-id integrity. */
#ifndef LINEAGENT_TRACE_READER_H
#define LINEAGENT_TRACE_READER_H

/* argv[0] is "trace". Returns the process exit code. */
int trace_reader_main(int argc, char **argv);

#include <stddef.h>
/* The summary path without Kafka: decodes and accounts n record values as
 * `trace` does, prints the summary to stdout, returns what the summary
 * returns (0, or 3 on integrity faults). For tests and the fuzz harness. */
int trace_reader_feed(const void *const *values, const size_t *lens, size_t n);

#endif
