/* SPDX-License-Identifier: Apache-2.0 */
/* main.c - the lineagent command line: run, check-config, trace, spool, site, --version. */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "site_cli.h"
#include "spool_cli.h"
#include "trace_reader.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: lineagent run -c FILE            run the line agent in the foreground\n"
            "       lineagent check-config -c FILE   validate FILE and print the effective config\n"
            "       lineagent trace --brokers B ...  read trace events back from Kafka (see trace --help)\n"
            "       lineagent spool stats|replay|export -c FILE ...  backlog, re-publish, export (see spool --help)\n"
            "       lineagent site resume --station S [--site N] -c FILE  clear a paused fixture site\n"
            "       lineagent --version\n");
}

static const char *config_arg(int argc, char **argv)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) return argv[i + 1];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("lineagent %s\n", LINEAGENT_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "trace") == 0) return trace_reader_main(argc - 1, argv + 1);
    if (strcmp(cmd, "spool") == 0) return spool_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "site") == 0) return site_cli_main(argc - 1, argv + 1);
    if (strcmp(cmd, "run") != 0 && strcmp(cmd, "check-config") != 0) {
        fprintf(stderr, "lineagent: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    const char *path = config_arg(argc, argv);
    if (!path) {
        fprintf(stderr, "lineagent %s: -c FILE is required\n", cmd);
        return 2;
    }
    config cfg;
    char err[1024];
    if (config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "lineagent: config error: %s\n", err);
        return 2;
    }
    int rc = 0;
    if (strcmp(cmd, "check-config") == 0) {
        config_print(&cfg, stdout);
        fprintf(stderr, "%s: OK\n", path);
    } else {
        rc = agent_run(&cfg);
    }
    config_free(&cfg);
    return rc;
}
