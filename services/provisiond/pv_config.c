/* SPDX-License-Identifier: Apache-2.0 */
/* pv_config.c - provisiond's INI configuration (pv_config.h). */
#include "pv_config.h"

#include <arpa/inet.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pv_ident.h"

typedef struct pv_parse {
    pv_config *c;
    char *err;
    size_t err_len;
    int failed;
} pv_parse;

__attribute__((format(printf, 2, 3))) static int pv_fail(pv_parse *p, const char *fmt, ...)
{
    if (p->failed) return 0;
    p->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, p->err_len, fmt, ap);
    va_end(ap);
    return 0;
}

static int pv_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static void pv_set(char **dst, const char *v)
{
    free(*dst);
    *dst = strdup(v);
}

/* inih's handler sees no section starts; a product is created at its first
 * key. Returning 0 makes ini_parse return the line number for the message. */
static int pv_handler(void *user, const char *section, const char *key, const char *value)
{
    pv_parse *p = user;
    pv_config *c = p->c;
    if (p->failed) return 0;
    if (strncmp(section, "product ", 8) == 0 && !pv_config_product(c, section + 8)) {
        const char *name = section + 8;
        if (!*name || strlen(name) > 32) return pv_fail(p, "[product NAME]: name of 1..32 characters");
        if (c->n_products == PV_MAX_PRODUCTS) return pv_fail(p, "too many products (max %d)", PV_MAX_PRODUCTS);
        pv_product *pr = &c->products[c->n_products++];
        pr->name = strdup(name);
        pr->macs_per_unit = 1;
        pr->cert_days = 3650;
        pr->allow_rekey = 1;
    } else if (strncmp(section, "product ", 8) && strcmp(section, "server") && strcmp(section, "ledger") &&
               strcmp(section, "ca"))
        return pv_fail(p, "unknown section [%s]", section);
    long n;
    if (strcmp(section, "server") == 0) {
        if (strcmp(key, "listen") == 0) {
            const char *colon = strrchr(value, ':');
            if (!colon || colon == value || pv_int(colon + 1, 0, 65535, &n))
                return pv_fail(p, "listen must be host:port (port 0: any free port, logged at start)");
            free(c->listen_host);
            const char *h = value;
            size_t hl = (size_t)(colon - value);
            if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') h++, hl -= 2; /* [::1]:8443 */
            c->listen_host = strndup(h, hl);
            c->listen_port = (int)n;
        } else if (strcmp(key, "tls_cert") == 0) pv_set(&c->tls_cert, value);
        else if (strcmp(key, "tls_key") == 0) pv_set(&c->tls_key, value);
        else if (strcmp(key, "client_ca") == 0) pv_set(&c->client_ca, value);
        else if (strcmp(key, "max_body") == 0) {
            if (pv_int(value, 1024, 1048576, &n)) return pv_fail(p, "max_body must be 1024..1048576 bytes");
            c->max_body = n;
        } else if (strcmp(key, "max_connections") == 0) {
            if (pv_int(value, 1, 4096, &n)) return pv_fail(p, "max_connections must be 1..4096");
            c->max_connections = (int)n;
        } else if (strcmp(key, "max_connections_per_ip") == 0) {
            if (pv_int(value, 1, 4096, &n)) return pv_fail(p, "max_connections_per_ip must be 1..4096");
            c->max_per_ip = (int)n;
        } else if (strcmp(key, "request_timeout") == 0) {
            if (pv_int(value, 1, 600, &n)) return pv_fail(p, "request_timeout must be 1..600 seconds");
            c->request_timeout = (int)n;
        } else if (strcmp(key, "station_eku") == 0) {
            size_t i = 0;
            while (value[i] && strchr("0123456789.", value[i])) i++;
            if (!*value || value[i] || value[0] == '.' || strstr(value, "..") || value[i - 1] == '.')
                return pv_fail(p, "station_eku must be a dotted OID such as 1.3.6.1.5.5.7.3.2 (clientAuth)");
            pv_set(&c->station_eku, value);
        } else return pv_fail(p, "unknown key %s in [server]", key);
        return 1;
    }
    if (strcmp(section, "ledger") == 0) {
        if (strcmp(key, "path") == 0) pv_set(&c->ledger_path, value);
        else return pv_fail(p, "unknown key %s in [ledger]", key);
        return 1;
    }
    if (strcmp(section, "ca") == 0) {
        if (strcmp(key, "cert") == 0) pv_set(&c->ca_cert, value);
        else if (strcmp(key, "key") == 0) pv_set(&c->ca_key, value);
        else return pv_fail(p, "unknown key %s in [ca]", key);
        return 1;
    }
    pv_product *pr = (pv_product *)pv_config_product(c, section + 8);
    char err[160];
    if (strcmp(key, "serial_format") == 0) {
        if (pv_serial_format_check(value, err, sizeof err)) return pv_fail(p, "%s", err);
        pv_set(&pr->serial_format, value);
    } else if (strcmp(key, "mac_first") == 0) {
        if (pv_mac_parse(value, &pr->mac_first)) return pv_fail(p, "mac_first must be like 02:00:00:00:00:00");
    } else if (strcmp(key, "mac_last") == 0) {
        if (pv_mac_parse(value, &pr->mac_last)) return pv_fail(p, "mac_last must be like 02:00:00:00:ff:ff");
    } else if (strcmp(key, "macs_per_unit") == 0) {
        if (pv_int(value, 0, 64, &n)) return pv_fail(p, "macs_per_unit must be 0..64");
        pr->macs_per_unit = (int)n;
    } else if (strcmp(key, "cert_days") == 0) {
        if (pv_int(value, 1, 36500, &n)) return pv_fail(p, "cert_days must be 1..36500");
        pr->cert_days = (int)n;
    } else if (strcmp(key, "factory_code") == 0) {
        if (!*value || strlen(value) > 16) return pv_fail(p, "factory_code must be 1..16 characters");
        pv_set(&pr->factory_code, value);
    } else if (strcmp(key, "rekey") == 0) {
        if (strcmp(value, "allow") && strcmp(value, "deny")) return pv_fail(p, "rekey must be allow or deny");
        pr->allow_rekey = strcmp(value, "allow") == 0;
    } else return pv_fail(p, "unknown key %s in [product %s]", key, pr->name);
    return 1;
}

int pv_config_load(pv_config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    c->max_body = 16384;
    c->max_connections = 256;
    c->max_per_ip = 32;
    c->request_timeout = 10;
    char perr[256] = "";
    pv_parse p = {c, perr, sizeof perr, 0};
    int rc = ini_parse(path, pv_handler, &p);
    if (rc < 0) {
        snprintf(err, err_len, "%s: cannot read", path);
        goto fail;
    }
    if (p.failed || rc > 0) {
        snprintf(err, err_len, "%s:%d: %s", path, rc, p.failed ? perr : "syntax error");
        goto fail;
    }
#define NEED(cond, ...) do { if (!(cond)) { int o_ = snprintf(err, err_len, "%s: ", path); \
    snprintf(err + o_, err_len - (size_t)o_, __VA_ARGS__); goto fail; } } while (0)
    NEED(c->listen_host, "[server] listen is required");
    NEED(c->ledger_path, "[ledger] path is required");
    NEED(c->ca_cert && c->ca_key, "[ca] cert and key are required");
    if (!c->station_eku) c->station_eku = strdup("1.3.6.1.5.5.7.3.2");
    NEED(c->max_per_ip <= c->max_connections, "[server] max_connections_per_ip exceeds max_connections");
    NEED(c->n_products > 0, "at least one [product NAME] section is required");
    if (c->tls_cert || c->tls_key || c->client_ca)
        NEED(c->tls_cert && c->tls_key && c->client_ca,
             "[server] tls_cert, tls_key and client_ca go together (mutual TLS)");
    else
        NEED(pv_is_loopback(c->listen_host),
             "[server] plain HTTP is allowed on loopback only: set tls_cert, tls_key and client_ca to listen on %s",
             c->listen_host);
    for (size_t i = 0; i < c->n_products; i++) {
        pv_product *pr = &c->products[i];
        NEED(pr->serial_format, "[product %s] serial_format is required", pr->name);
        NEED(pr->factory_code, "[product %s] factory_code is required", pr->name);
        if (pr->macs_per_unit > 0) {
            NEED(pr->mac_last >= pr->mac_first && pr->mac_last != 0,
                 "[product %s] mac_first and mac_last are required, mac_first <= mac_last", pr->name);
            for (size_t j = 0; j < i; j++) {
                const pv_product *q = &c->products[j];
                NEED(q->macs_per_unit == 0 || pr->mac_last < q->mac_first || pr->mac_first > q->mac_last,
                     "[product %s] MAC block overlaps that of [product %s]", pr->name, q->name);
            }
        }
    }
#undef NEED
    return 0;
fail:
    pv_config_free(c);
    return -1;
}

void pv_config_free(pv_config *c)
{
    free(c->listen_host);
    free(c->tls_cert);
    free(c->tls_key);
    free(c->client_ca);
    free(c->station_eku);
    free(c->ledger_path);
    free(c->ca_cert);
    free(c->ca_key);
    for (size_t i = 0; i < c->n_products; i++) {
        free(c->products[i].name);
        free(c->products[i].serial_format);
        free(c->products[i].factory_code);
    }
    memset(c, 0, sizeof *c);
}

const pv_product *pv_config_product(const pv_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_products; i++)
        if (strcmp(c->products[i].name, name) == 0) return &c->products[i];
    return NULL;
}

int pv_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return 0;
}
