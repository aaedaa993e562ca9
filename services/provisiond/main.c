/* SPDX-License-Identifier: Apache-2.0 */
/* main.c - provisiond: the factory's provisioning server. Issues serials,
 * MACs, device ids and device certificates online at write time and keeps
 * the issuance ledger (pv_ledger.h); `audit` checks that ledger, `init-ca`
 * creates a factory CA for trials, `config` prints the effective
 * configuration. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "pv_ca.h"
#include "pv_config.h"
#include "pv_http.h"
#include "pv_ledger.h"

#ifndef LINEAGENT_VERSION
#define LINEAGENT_VERSION "dev"
#endif

static int usage(void)
{
    fprintf(stderr, "usage: provisiond serve -c FILE    run the server (SIGINT/SIGTERM stop it)\n"
                    "       provisiond audit -c FILE    check the ledger; exit 0 when consistent\n"
                    "       provisiond init-ca -c FILE  create a trial factory CA at [ca] cert/key\n"
                    "       provisiond config -c FILE   print every key with its effective value\n"
                    "       provisiond --version\n");
    return 2;
}

static int serve(const pv_config *cfg)
{
    char err[512];
    pv_ca *ca = pv_ca_load(cfg->ca_cert, cfg->ca_key, err, sizeof err);
    pv_ledger *l = ca ? pv_ledger_open(cfg->ledger_path, err, sizeof err) : NULL;
    /* Block the stop signals in every thread; this one waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pv_server *s = l ? pv_http_start(cfg, l, ca, err, sizeof err) : NULL;
    if (!s) {
        fprintf(stderr, "provisiond: %s\n", err);
        pv_ledger_close(l);
        pv_ca_free(ca);
        return 1;
    }
    fprintf(stderr, "provisiond: listening on %s:%d (%s), ledger %s\n", cfg->listen.host, pv_http_port(s),
            cfg->tls_cert ? "HTTPS, client certificates required" : "plain HTTP, loopback only",
            cfg->ledger_path);
    sd_notify(0, "READY=1\nSTATUS=serving"); /* Type=notify; nothing without $NOTIFY_SOCKET */
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "provisiond: stopping (signal %d)\n", sig);
    sd_notify(0, "STOPPING=1");
    pv_http_stop(s);
    pv_ledger_close(l);
    pv_ca_free(ca);
    return 0;
}

static int audit(const pv_config *cfg)
{
    char err[512];
    pv_ca *ca = pv_ca_load(cfg->ca_cert, cfg->ca_key, err, sizeof err);
    pv_ledger *l = ca ? pv_ledger_open(cfg->ledger_path, err, sizeof err) : NULL;
    if (!l) {
        fprintf(stderr, "provisiond: %s\n", err);
        pv_ca_free(ca);
        return 1;
    }
    long n = pv_ledger_audit(l, cfg, ca, stdout);
    pv_ledger_close(l);
    pv_ca_free(ca);
    if (n == 0) printf("audit: ledger %s is consistent\n", cfg->ledger_path);
    else if (n > 0) printf("audit: %ld finding(s) in %s\n", n, cfg->ledger_path);
    return n == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--version") == 0) return printf("provisiond %s\n", LINEAGENT_VERSION), 0;
    if (argc != 4 || strcmp(argv[2], "-c")) return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") && strcmp(cmd, "audit") && strcmp(cmd, "init-ca") && strcmp(cmd, "config"))
        return usage();
    pv_config cfg;
    char err[512];
    if (pv_config_load(&cfg, argv[3], err, sizeof err)) {
        fprintf(stderr, "provisiond: %s\n", err);
        return 2;
    }
    int rc;
    if (strcmp(cmd, "serve") == 0) rc = serve(&cfg);
    else if (strcmp(cmd, "audit") == 0) rc = audit(&cfg);
    else if (strcmp(cmd, "config") == 0) rc = (pv_config_print(&cfg, stdout), 0);
    else {
        rc = pv_ca_init(cfg.ca_cert, cfg.ca_key, "provisiond factory CA", err, sizeof err) ? 1 : 0;
        if (rc) fprintf(stderr, "provisiond: %s\n", err);
        else printf("init-ca: wrote %s and %s (key mode 0600)\n", cfg.ca_cert, cfg.ca_key);
    }
    pv_config_free(&cfg);
    return rc;
}
