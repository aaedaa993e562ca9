/* trace_reader.h - `lineagent trace`: reads the traceability topic back from
 * Kafka (all partitions, from the beginning) and prints every event as a JSON
 * line, or a lot summary: units per firmware version, changeovers, failures
 * by step and failure mode, and sequence/event-id integrity. */
#ifndef LINEAGENT_TRACE_READER_H
#define LINEAGENT_TRACE_READER_H

/* argv[0] is "trace". Returns the process exit code. */
int trace_reader_main(int argc, char **argv);

#endif
