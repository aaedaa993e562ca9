/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_config.c - libFuzzer harness: an INI file through the agent's
 * config_load, provisiond's pv_config_load and tracestore's ts_config_load
 * (the input is written to a temporary file, as all three read a path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pv_config.h"
#include "ts_config.h"

static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    snprintf(path, sizeof path, "/tmp/fuzz_config_%ld.ini", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char err[512];
    config c;
    if (config_load(&c, path, err, sizeof err) == 0) config_free(&c);
    pv_config pc;
    if (pv_config_load(&pc, path, err, sizeof err) == 0) pv_config_free(&pc);
    ts_config tc;
    if (ts_config_load(&tc, path, err, sizeof err) == 0) ts_config_free(&tc);
    unlink(path);
    return 0;
}
