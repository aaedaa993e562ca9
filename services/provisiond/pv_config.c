/* SPDX-License-Identifier: Apache-2.0 */
/* pv_config.c - provisiond's keys as conf_table.h tables, one per section
 * kind (the product table applied to each [product NAME]), and the rules
 * between keys that no single row can say (pv_config.h). */
#include "pv_config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf_table.h"
#include "pv_ident.h"

#define PV_PRODUCT_PREFIX "product "

/* "host:port" or "[v6]:port"; port 0 picks a free one. */
static int pv_listen_parse(const char *v, void *field, char *problem, size_t len)
{
    pv_listen *l = field;
    const char *colon = strrchr(v, ':');
    char *end = NULL;
    errno = 0;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hl = colon ? (size_t)(colon - v) : 0;
    if (v[0] == '[' && hl > 2 && v[hl - 1] == ']') v++, hl -= 2;
    if (!colon || !hl || errno || end == colon + 1 || *end || port < 0 || port > 65535 || hl >= sizeof l->host)
        return snprintf(problem, len, "must be host:port or [v6]:port (port 0: any free port, logged at start)"), -1;
    memcpy(l->host, v, hl);
    l->host[hl] = 0;
    l->port = (int)port;
    return 0;
}

static void pv_listen_format(const void *field, char *out, size_t len)
{
    const pv_listen *l = field;
    snprintf(out, len, strchr(l->host, ':') ? "[%s]:%d" : "%s:%d", l->host, l->port);
}

/* The char arrays below: their value is their text. */
static void pv_text_format(const void *field, char *out, size_t len) { snprintf(out, len, "%s", (const char *)field); }

/* A dotted OID such as 1.3.6.1.5.5.7.3.2, into char[PV_OID_MAX + 1]. */
static int pv_oid_parse(const char *v, void *field, char *problem, size_t len)
{
    size_t n = strspn(v, "0123456789.");
    if (!*v || v[n] || n > PV_OID_MAX || v[0] == '.' || v[n - 1] == '.' || strstr(v, ".."))
        return snprintf(problem, len, "must be a dotted OID such as 1.3.6.1.5.5.7.3.2 (clientAuth)"), -1;
    memcpy(field, v, n + 1);
    return 0;
}

/* Into char[PV_SERIAL_FORMAT_MAX + 1]. */
static int pv_serial_format_parse(const char *v, void *field, char *problem, size_t len)
{
    size_t n = strlen(v);
    if (n > PV_SERIAL_FORMAT_MAX)
        return snprintf(problem, len, "must be at most %d characters", PV_SERIAL_FORMAT_MAX), -1;
    if (pv_serial_format_check(v, problem, len)) return -1;
    memcpy(field, v, n + 1);
    return 0;
}

/* Into char[PV_FACTORY_CODE_MAX + 1]. */
static int pv_factory_code_parse(const char *v, void *field, char *problem, size_t len)
{
    size_t n = strlen(v);
    if (n == 0 || n > PV_FACTORY_CODE_MAX)
        return snprintf(problem, len, "must be 1..%d characters", PV_FACTORY_CODE_MAX), -1;
    memcpy(field, v, n + 1);
    return 0;
}

static int pv_mac_row_parse(const char *v, void *field, char *problem, size_t len)
{
    uint64_t mac;
    if (pv_mac_parse(v, &mac)) return snprintf(problem, len, "must be a MAC address like 02:00:5e:10:00:00"), -1;
    memcpy(field, &mac, sizeof mac);
    return 0;
}

static void pv_mac_row_format(const void *field, char *out, size_t len)
{
    uint64_t mac;
    memcpy(&mac, field, sizeof mac);
    char txt[18];
    pv_mac_format(mac, txt);
    snprintf(out, len, "%s", txt);
}

/* rekey = allow|deny into allow_rekey. */
static int pv_rekey_parse(const char *v, void *field, char *problem, size_t len)
{
    if (strcmp(v, "allow") && strcmp(v, "deny")) return snprintf(problem, len, "must be allow or deny"), -1;
    *(int *)field = strcmp(v, "allow") == 0;
    return 0;
}

static void pv_rekey_format(const void *field, char *out, size_t len)
{
    snprintf(out, len, "%s", *(const int *)field ? "allow" : "deny");
}

static const conf_key pv_server_keys[] = {
    {"listen", CONF_CUSTOM, .flags = CONF_REQUIRED, CONF_AT(pv_config, listen), .parse = pv_listen_parse,
     .format = pv_listen_format, .desc = "host:port or [v6]:port to listen on; port 0 picks a free one (logged)"},
    {"tls_cert", CONF_STRING, CONF_AT(pv_config, tls_cert),
     .desc = "PEM server certificate (chain); with tls_key and client_ca: HTTPS, else plain HTTP on loopback only"},
    {"tls_key", CONF_STRING, CONF_AT(pv_config, tls_key), .desc = "PEM private key of tls_cert"},
    {"client_ca", CONF_STRING, CONF_AT(pv_config, client_ca),
     .desc = "PEM CA the line stations' client certificates must chain to"},
    {"max_body", CONF_INT, "16384", 1024, 1048576, CONF_AT(pv_config, max_body),
     .desc = "largest request body in bytes; a larger Content-Length gets 413 before any body is read"},
    {"max_connections", CONF_INT, "256", 1, 4096, CONF_AT(pv_config, max_connections),
     .desc = "connections open at once, in all"},
    {"max_connections_per_ip", CONF_INT, "32", 1, 4096, CONF_AT(pv_config, max_per_ip),
     .desc = "connections open at once per client address; at most max_connections"},
    {"request_timeout", CONF_INT, "10", 1, 600, CONF_AT(pv_config, request_timeout),
     .desc = "seconds a request may take to arrive whole, from the connection or the previous answer"},
    {"station_eku", CONF_CUSTOM, "1.3.6.1.5.5.7.3.2", CONF_AT(pv_config, station_eku), .parse = pv_oid_parse,
     .format = pv_text_format,
     .desc = "OID the station certificates' extended key usage must hold; the default is clientAuth"},
    {0},
};

static const conf_key pv_ledger_keys[] = {
    {"path", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(pv_config, ledger_path),
     .desc = "the issuance ledger (SQLite, created 0600); back it up"},
    {0},
};

static const conf_key pv_ca_keys[] = {
    {"cert", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(pv_config, ca_cert),
     .desc = "PEM certificate of the factory CA that signs device certificates"},
    {"key", CONF_STRING, .flags = CONF_REQUIRED, CONF_AT(pv_config, ca_key),
     .desc = "PEM private key of the factory CA"},
    {0},
};

static const conf_key pv_product_keys[] = {
    {"serial_format", CONF_CUSTOM, .flags = CONF_REQUIRED, CONF_AT(pv_product, serial_format),
     .parse = pv_serial_format_parse, .format = pv_text_format,
     .desc = "serial number: {product} {factory} {yy} {yyyy} {ww} and exactly one {seq} or {seq:0N}"},
    {"mac_first", CONF_CUSTOM, CONF_AT(pv_product, mac_first), .parse = pv_mac_row_parse,
     .format = pv_mac_row_format, .desc = "first MAC address of the product's block; required when macs_per_unit > 0"},
    {"mac_last", CONF_CUSTOM, CONF_AT(pv_product, mac_last), .parse = pv_mac_row_parse, .format = pv_mac_row_format,
     .desc = "last MAC address of the block (inclusive); blocks of products may not overlap"},
    {"macs_per_unit", CONF_INT, "1", 0, 64, CONF_AT(pv_product, macs_per_unit),
     .desc = "consecutive MAC addresses per unit"},
    {"cert_days", CONF_INT, "3650", 1, 36500, CONF_AT(pv_product, cert_days),
     .desc = "validity of device certificates in days"},
    {"factory_code", CONF_CUSTOM, .flags = CONF_REQUIRED, CONF_AT(pv_product, factory_code),
     .parse = pv_factory_code_parse, .format = pv_text_format,
     .desc = "factory code, returned with each identity and put in the certificate's O"},
    {"rekey", CONF_CUSTOM, "allow", CONF_AT(pv_product, allow_rekey), .parse = pv_rekey_parse,
     .format = pv_rekey_format, .desc = "allow or deny (409) a new certificate for a board issued before"},
    {0},
};

enum { PV_N_SECTIONS = 3 };
static const struct {
    const char *name;
    const conf_key *keys;
} pv_sections[PV_N_SECTIONS] = {{"server", pv_server_keys}, {"ledger", pv_ledger_keys}, {"ca", pv_ca_keys}};

typedef struct pv_parse {
    pv_config *c;
    conf_section sec[PV_N_SECTIONS];
    conf_section prod[PV_MAX_PRODUCTS];
    char label[PV_MAX_PRODUCTS][sizeof PV_PRODUCT_PREFIX + PV_NAME_MAX]; /* "product NAME" in messages */
} pv_parse;

/* A product's key: the product is made, with its defaults, at its first key
 * (libinih reports keys, not section starts). */
static int pv_on_product(pv_parse *p, const char *name, const char *key, const char *value, char *err, size_t len)
{
    pv_config *c = p->c;
    size_t i = 0;
    while (i < c->n_products && strcmp(c->products[i].name, name)) i++;
    if (i == c->n_products) {
        if (!*name || strlen(name) > PV_NAME_MAX)
            return snprintf(err, len, "[product NAME]: a name of 1..%d characters", PV_NAME_MAX), -1;
        if (i == PV_MAX_PRODUCTS) return snprintf(err, len, "too many products (max %d)", PV_MAX_PRODUCTS), -1;
        pv_product *pr = &c->products[i];
        memcpy(pr->name, name, strlen(name) + 1);
        snprintf(p->label[i], sizeof p->label[i], PV_PRODUCT_PREFIX "%s", name);
        if (conf_init(&p->prod[i], p->label[i], "", pv_product_keys, pr, err, len)) return -1;
        c->n_products++;
    }
    return conf_set(&p->prod[i], key, value, err, len) ? -1 : 0;
}

static int pv_on_key(void *user, const char *section, const char *key, const char *value, int line, char *err,
                     size_t err_len)
{
    pv_parse *p = user;
    if (strncmp(section, PV_PRODUCT_PREFIX, strlen(PV_PRODUCT_PREFIX)) == 0)
        return pv_on_product(p, section + strlen(PV_PRODUCT_PREFIX), key, value, err, err_len);
    for (int i = 0; i < PV_N_SECTIONS; i++)
        if (strcmp(section, pv_sections[i].name) == 0) return conf_set(&p->sec[i], key, value, err, err_len) ? -1 : 0;
    return snprintf(err, err_len, "unknown section [%s]", section), -1;
}

/* 1 when the file set the product's key. */
static int pv_given(const pv_product *pr, const char *key)
{
    return (int)(pr->given >> (conf_find(pv_product_keys, key) - pv_product_keys) & 1);
}

/* Rules between keys, after the whole file is read. */
static int pv_config_check(const pv_config *c, char *why, size_t len)
{
#define PV_NO(...) return snprintf(why, len, __VA_ARGS__), -1
    if (c->max_per_ip > c->max_connections) PV_NO("[server] max_connections_per_ip exceeds max_connections");
    if (c->n_products == 0) PV_NO("at least one [product NAME] section is required");
    if (c->tls_cert || c->tls_key || c->client_ca) {
        if (!c->tls_cert || !c->tls_key || !c->client_ca)
            PV_NO("[server] tls_cert, tls_key and client_ca go together (mutual TLS)");
    } else if (!pv_is_loopback(c->listen.host))
        PV_NO("[server] plain HTTP is allowed on loopback only: set tls_cert, tls_key and client_ca to listen on %s",
              c->listen.host);
    for (size_t i = 0; i < c->n_products; i++) {
        const pv_product *pr = &c->products[i];
        if (pr->macs_per_unit == 0) continue; /* a product without MACs needs no block */
        if (!pv_given(pr, "mac_first") || !pv_given(pr, "mac_last") || pr->mac_first > pr->mac_last)
            PV_NO("[product %s] mac_first and mac_last are required, mac_first <= mac_last", pr->name);
        for (size_t j = 0; j < i; j++) {
            const pv_product *q = &c->products[j];
            if (q->macs_per_unit > 0 && pr->mac_first <= q->mac_last && q->mac_first <= pr->mac_last)
                PV_NO("[product %s] MAC block overlaps that of [product %s]", pr->name, q->name);
        }
    }
    return 0;
#undef PV_NO
}

int pv_config_load(pv_config *c, const char *path, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    pv_parse p = {.c = c};
    int rc = 0;
    for (int i = 0; rc == 0 && i < PV_N_SECTIONS; i++)
        rc = conf_init(&p.sec[i], pv_sections[i].name, "", pv_sections[i].keys, c, err, err_len);
    if (rc == 0) rc = conf_parse_file(path, pv_on_key, &p, err, err_len);
    char why[400] = "";
    for (int i = 0; rc == 0 && i < PV_N_SECTIONS; i++) rc = conf_done(&p.sec[i], why, sizeof why);
    for (size_t i = 0; rc == 0 && i < c->n_products; i++) {
        rc = conf_done(&p.prod[i], why, sizeof why);
        c->products[i].given = p.prod[i].set;
    }
    if (rc == 0) rc = pv_config_check(c, why, sizeof why);
    if (rc == 0) return 0;
    if (why[0]) snprintf(err, err_len, "%s: %s", path, why);
    pv_config_free(c);
    return -1;
}

void pv_config_free(pv_config *c)
{
    for (int i = 0; i < PV_N_SECTIONS; i++) conf_free(pv_sections[i].keys, c);
    for (size_t i = 0; i < c->n_products; i++) conf_free(pv_product_keys, &c->products[i]);
    memset(c, 0, sizeof *c);
}

void pv_config_print(const pv_config *c, FILE *out)
{
    for (int i = 0; i < PV_N_SECTIONS; i++) {
        fprintf(out, "%s[%s]\n", i ? "\n" : "", pv_sections[i].name);
        conf_section s = {pv_sections[i].name, "", pv_sections[i].keys, (void *)c, UINT64_MAX};
        conf_print(&s, out);
    }
    for (size_t i = 0; i < c->n_products; i++) {
        const pv_product *pr = &c->products[i];
        fprintf(out, "\n[" PV_PRODUCT_PREFIX "%s]\n", pr->name);
        conf_section s = {pr->name, "", pv_product_keys, (void *)pr, pr->given};
        conf_print(&s, out);
    }
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
