/* SPDX-License-Identifier: Apache-2.0 */
/* provision_step.h - the PROVISION step as a station runs it: the board makes
 * a CSR (when its adapter can), the provisioning server issues the identity,
 * the adapter writes it and reads it back, and the read-back must match. */
#ifndef LINEAGENT_PROVISION_STEP_H
#define LINEAGENT_PROVISION_STEP_H

#include "adapter.h"
#include "provision_client.h"

/* Runs PROVISION for ctx->board_id; fills res (passed, or failure_mode
 * provision_unavailable / provision_refused / provision_mismatch / ... with
 * the reason in detail). Any private key is wiped before it returns. */
void provision_step_run(provision_client *pc, const adapter *ad, void *ad_state, const adapter_step_ctx *ctx,
                        const char *order_id, adapter_result *res);

#endif
