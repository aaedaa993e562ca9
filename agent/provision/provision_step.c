/* SPDX-License-Identifier: Apache-2.0 */
/* provision_step.c - the PROVISION step (provision_step.h). */
#include "provision_step.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

#define PROVISION_CSR_MAX 4096

static void prov_fail(adapter_result *res, const char *mode, const char *detail)
{
    res->passed = 0;
    snprintf(res->failure_mode, sizeof res->failure_mode, "%s", mode);
    snprintf(res->detail, sizeof res->detail, "%s", detail);
}

/* The read-back must be exactly what was issued (rule P1: what is in the
 * board is what the ledger says). */
static const char *prov_mismatch(const provision_identity *id, const adapter_result *res)
{
    if (strcmp(res->serial, id->serial)) return "serial";
    if (strcmp(res->device_id, id->device_id)) return "device id";
    if (res->n_macs != id->n_macs) return "MAC count";
    for (int i = 0; i < id->n_macs; i++)
        if (strcmp(res->macs[i], id->macs[i])) return "MAC";
    if (strcmp(res->cert_sha256, id->cert_sha256)) return "certificate";
    return NULL;
}

void provision_step_run(provision_client *pc, const adapter *ad, void *ad_state, const adapter_step_ctx *ctx,
                        const char *order_id, adapter_result *res)
{
    char csr[PROVISION_CSR_MAX] = "";
    int csr_rc = ad->provision_csr ? ad->provision_csr(ad_state, ctx, csr, sizeof csr) : 1;
    if (csr_rc == 1) csr[0] = 0; /* no key generator on the board: the server makes the key */
    else if (csr_rc != 0) {
        prov_fail(res, "provision_csr_failed", "the board could not make a key pair and CSR");
        return;
    }
    provision_identity id;
    char reason[256] = "";
    provision_status st = provision_client_issue(pc, ctx->product ? ctx->product : "", ctx->board_id,
                                                 ctx->lot_id, order_id, ctx->station, csr[0] ? csr : NULL, &id,
                                                 reason, sizeof reason);
    if (st != PROVISION_OK) {
        if (csr[0] && ad->provision_abort) ad->provision_abort(ad_state); /* no identity will come for that CSR */
        log_warn("board %s: provisioning %s: %s", ctx->board_id,
                 st == PROVISION_REFUSED ? "refused" : "unavailable", reason);
        prov_fail(res, st == PROVISION_REFUSED ? "provision_refused" : "provision_unavailable", reason);
        return;
    }
    adapter_identity aid = {id.serial, id.device_id, id.factory_code, id.issued_at, (const char (*)[18])id.macs,
                            id.n_macs, id.certificate, id.ca_chain, id.private_key, id.cert_sha256};
    /* Between here and the write a crash loses nothing: asked again, the
     * server returns this same identity for this board. */
    log_info("board %s: identity %s issued%s, writing it", ctx->board_id, id.serial, id.reused ? " (again)" : "");
    adapter_step_ctx c2 = *ctx;
    c2.identity = &aid;
    ad->provision(ad_state, &c2, res);
    const char *bad = res->passed ? prov_mismatch(&id, res) : NULL;
    if (bad) {
        char d[sizeof res->detail];
        snprintf(d, sizeof d, "%s read back from the board differs from the one issued (serial %.64s)", bad, id.serial);
        prov_fail(res, "provision_mismatch", d);
    }
    if (res->passed) {
        snprintf(res->factory_code, sizeof res->factory_code, "%s", id.factory_code);
        snprintf(res->issued_at, sizeof res->issued_at, "%s", id.issued_at);
        snprintf(res->cert_serial, sizeof res->cert_serial, "%s", id.cert_serial);
        res->identity_reused = id.reused;
    }
    if (res->passed)
        log_info("board %s: provisioned serial %s%s", ctx->board_id, id.serial, id.reused ? " (issued before; reused)" : "");
    provision_identity_clear(&id);
}
