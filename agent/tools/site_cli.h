/* SPDX-License-Identifier: Apache-2.0 */
/* site_cli.h - `lineagent site resume`: an operator clears a paused fixture
 * site from the command line, through the agent's MQTT command topic. */
#ifndef LINEAGENT_SITE_CLI_H
#define LINEAGENT_SITE_CLI_H

/* argv[0] is "site". Returns the process exit code. */
int site_cli_main(int argc, char **argv);

#endif
