/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ledger.c - the issuance ledger (pv_ledger.h). */
#include "pv_ledger.h"

#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pv_ident.h"

/* Group commit: concurrent issuances share one transaction and one fsync.
 * A request joins the open batch transaction and, holding the lock, finds or
 * allocates its identity inside a savepoint (phase 1); it signs the
 * certificate without the lock (phase 2) and writes it (phase 3). The first
 * to finish becomes the leader: it waits for every request of the batch and
 * for those about to join (at most PV_BATCH_MAX), then commits for all. No
 * answer leaves before the commit that holds it; a failed commit, or a
 * request failing after phase 1, fails every request of the batch (they
 * answer 500 and the client asks again: nothing was issued). */
#define PV_BATCH_MAX 64
#define PV_BATCH_RING 256

int (*pv_ledger_test_hook)(struct sqlite3 *db, const char *point, const pv_request *req);

static int pv_hook(pv_ledger *l, const char *point, const pv_request *req);

struct pv_ledger {
    sqlite3 *db;
    /* GET reads through its own connection: in WAL mode it sees committed
     * batches only, never the rows of the one being built on db. */
    sqlite3 *rdb;
    pthread_mutex_t lock;
    /* Each kind of waiter has its own condition, so a request wakes only who
     * can go on: with one condition every request's step woke every waiting
     * thread, which cost about as much CPU as the database work. */
    pthread_cond_t lead;      /* the leader: the batch's last request is done */
    pthread_cond_t committed; /* a batch ended: its requests answer, the next joins */
    int entering;      /* requests waiting to join the open batch */
    int joined;        /* requests of the open batch not yet done with their work */
    int in_txn;        /* the batch transaction is open */
    int leader;        /* someone will commit the open batch */
    int committing;    /* the connection is busy with COMMIT */
    int poisoned;      /* a request of the open batch failed half-way: roll back */
    int batch_size;
    uint64_t batch;    /* the open batch's number */
    uint64_t done;     /* batches up to this one are finished */
    unsigned char ok[PV_BATCH_RING]; /* commit result by batch number */
    /* Prepared statements of the issuance path, by SQL text (the literals'
     * addresses): parsing them again for every request costs more than the
     * rest of the database work. */
    struct { const char *sql; sqlite3_stmt *st; } cache[16];
};

static const char *const pv_schema =
    "CREATE TABLE IF NOT EXISTS counters("
    " product TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, next_mac INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS units("
    " id INTEGER PRIMARY KEY, product TEXT NOT NULL, board_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " serial TEXT NOT NULL UNIQUE, device_id TEXT NOT NULL UNIQUE,"
    " mac_first INTEGER NOT NULL, mac_count INTEGER NOT NULL, cert_serial TEXT NOT NULL,"
    " factory_code TEXT NOT NULL, issued_ms INTEGER NOT NULL,"
    " station TEXT NOT NULL, lot_id TEXT NOT NULL, order_id TEXT NOT NULL,"
    " UNIQUE(product, board_id), UNIQUE(product, seq));"
    /* One row per MAC issued: the primary key makes each MAC unique. */
    "CREATE TABLE IF NOT EXISTS macs(mac INTEGER PRIMARY KEY, serial TEXT NOT NULL);"
    /* Every certificate ever issued, including those replaced by a re-key. */
    "CREATE TABLE IF NOT EXISTS certs("
    " cert_serial TEXT NOT NULL UNIQUE, serial TEXT NOT NULL, pem TEXT NOT NULL, issued_ms INTEGER NOT NULL);"
    /* Every answered request: new identity, repeat, or repeat with a new key. */
    "CREATE TABLE IF NOT EXISTS issuances("
    " id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, kind TEXT NOT NULL, product TEXT NOT NULL,"
    " board_id TEXT NOT NULL, serial TEXT NOT NULL, cert_serial TEXT NOT NULL,"
    " station TEXT NOT NULL, lot_id TEXT NOT NULL, order_id TEXT NOT NULL);"
    /* Certificates replaced by a rekey: the old one, the new one, who asked. */
    "CREATE TABLE IF NOT EXISTS superseded("
    " cert_serial TEXT PRIMARY KEY, by_cert_serial TEXT NOT NULL, time_ms INTEGER NOT NULL, station TEXT NOT NULL);";

static int64_t pv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pv_iso(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char b[24];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", b, (int)(ms % 1000));
}

pv_ledger *pv_ledger_open(const char *path, char *err, size_t err_len)
{
    /* Create it 0600 ourselves: it lists every identity the factory issued. */
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    if (fd < 0) return snprintf(err, err_len, "%s: cannot open", path), NULL;
    close(fd);
    pv_ledger *l = calloc(1, sizeof *l);
    if (!l) return NULL;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->lead, NULL);
    pthread_cond_init(&l->committed, NULL);
    l->batch = 1;
    char *msg = NULL;
    if (sqlite3_open_v2(path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
        sqlite3_exec(l->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
                     NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(l->db, pv_schema, NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_open_v2(path, &l->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(l->rdb, 5000) != SQLITE_OK) {
        snprintf(err, err_len, "%s: %s", path, msg ? msg : sqlite3_errmsg(l->db));
        sqlite3_free(msg);
        pv_ledger_close(l);
        return NULL;
    }
    return l;
}

void pv_ledger_close(pv_ledger *l)
{
    if (!l) return;
    for (size_t i = 0; i < sizeof l->cache / sizeof l->cache[0]; i++) sqlite3_finalize(l->cache[i].st);
    sqlite3_close(l->rdb);
    sqlite3_close(l->db);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->lead);
    pthread_cond_destroy(&l->committed);
    free(l);
}

void pv_identity_clear(pv_identity *id)
{
    free(id->certificate);
    if (id->private_key) {
        OPENSSL_cleanse(id->private_key, strlen(id->private_key));
        free(id->private_key);
    }
    id->certificate = id->private_key = NULL;
}

static sqlite3_stmt *pv_prep(pv_ledger *l, const char *sql, ...)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(l->db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
    return st;
}

/* Binds text parameters 1..n from the varargs. */
static void pv_bind_texts(sqlite3_stmt *st, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    for (int i = 1; i <= n; i++) sqlite3_bind_text(st, i, va_arg(ap, const char *), -1, SQLITE_TRANSIENT);
    va_end(ap);
}

/* The cached statement for sql (lock held); hand it back with pv_done. */
static sqlite3_stmt *pv_stmt(pv_ledger *l, const char *sql)
{
    size_t n = sizeof l->cache / sizeof l->cache[0], i;
    for (i = 0; i < n && l->cache[i].sql; i++)
        if (l->cache[i].sql == sql) return l->cache[i].st;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) return NULL;
    if (i < n) {
        l->cache[i].sql = sql;
        l->cache[i].st = st;
    }
    return st; /* a full cache is a bug: the statement then leaks until close */
}

static void pv_done(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int pv_exec(pv_ledger *l, const char *sql) { return sqlite3_exec(l->db, sql, NULL, NULL, NULL); }

static int pv_hook(pv_ledger *l, const char *point, const pv_request *req)
{
    return pv_ledger_test_hook ? pv_ledger_test_hook(l->db, point, req) : 0;
}

/* Lock held, batch open: 1 when SQLite rolled the batch's transaction back
 * by itself, as it may after SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM. The
 * batch is then poisoned: every request of it fails and nothing of it is
 * written, so no half-issued board is left behind to be refused for ever. */
static int pv_rolled_back(pv_ledger *l, char *err, size_t err_len)
{
    int by_sqlite = sqlite3_get_autocommit(l->db);
    if (!l->poisoned && !by_sqlite) return 0;
    l->poisoned = 1;
    if (err)
        snprintf(err, err_len, "%s; ask again",
                 by_sqlite ? "ledger transaction was rolled back by SQLite (disk full or I/O error?)"
                           : "another request of this batch failed");
    return 1;
}

#define PV_UNIT_COLS                                                                                           \
    "SELECT u.product,u.board_id,u.serial,u.device_id,u.mac_first,u.mac_count,u.cert_serial,"                  \
    "u.factory_code,u.issued_ms,u.seq,c.pem FROM units u LEFT JOIN certs c USING(cert_serial) "

/* Reads a unit row (PV_UNIT_COLS) from st into out: 1 found, 2 found but
 * not certified yet, 0 not found, -1 error. */
static int pv_read_unit(sqlite3_stmt *st, pv_identity *out, int64_t *seq)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(out->product, sizeof out->product, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(out->board_id, sizeof out->board_id, "%s", (const char *)sqlite3_column_text(st, 1));
        snprintf(out->serial, sizeof out->serial, "%s", (const char *)sqlite3_column_text(st, 2));
        snprintf(out->device_id, sizeof out->device_id, "%s", (const char *)sqlite3_column_text(st, 3));
        out->mac_first = (uint64_t)sqlite3_column_int64(st, 4);
        out->mac_count = sqlite3_column_int(st, 5);
        snprintf(out->cert_serial, sizeof out->cert_serial, "%s", (const char *)sqlite3_column_text(st, 6));
        snprintf(out->factory_code, sizeof out->factory_code, "%s", (const char *)sqlite3_column_text(st, 7));
        pv_iso(sqlite3_column_int64(st, 8), out->issued_at);
        if (seq) *seq = sqlite3_column_int64(st, 9);
        /* No certificate yet: another request for this board is signing it. */
        const char *pem = (const char *)sqlite3_column_text(st, 10);
        out->certificate = pem ? strdup(pem) : NULL;
        rc = !pem ? 2 : out->certificate ? 1 : -1;
    } else
        rc = rc == SQLITE_DONE ? 0 : -1;
    return rc;
}

/* Loads the unit row for (product, board_id) into out (lock held). */
static int pv_load_unit(pv_ledger *l, const char *product, const char *board_id, pv_identity *out, int64_t *seq)
{
    sqlite3_stmt *st = pv_stmt(l, PV_UNIT_COLS "WHERE u.product=?1 AND u.board_id=?2");
    if (!st) return -1;
    pv_bind_texts(st, 2, product, board_id);
    int rc = pv_read_unit(st, out, seq);
    pv_done(st);
    return rc;
}

static int pv_insert_cert(pv_ledger *l, const char *cert_serial, const char *serial, const char *pem, int64_t ms)
{
    sqlite3_stmt *st = pv_stmt(l, "INSERT INTO certs(cert_serial,serial,pem,issued_ms) VALUES(?1,?2,?3,?4)");
    if (!st) return -1;
    pv_bind_texts(st, 3, cert_serial, serial, pem);
    sqlite3_bind_int64(st, 4, ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    pv_done(st);
    return rc;
}

static int pv_record(pv_ledger *l, int64_t ms, const char *kind, const pv_request *r, const pv_identity *id)
{
    sqlite3_stmt *st = pv_stmt(l, "INSERT INTO issuances(time_ms,kind,product,board_id,serial,cert_serial,"
                                  "station,lot_id,order_id) VALUES(?9,?1,?2,?3,?4,?5,?6,?7,?8)");
    if (!st) return -1;
    pv_bind_texts(st, 8, kind, r->product, r->board_id, id->serial, id->cert_serial, r->station, r->lot_id,
                  r->order_id);
    sqlite3_bind_int64(st, 9, ms);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
    pv_done(st);
    return rc;
}

/* Signs a certificate for the unit in id: for pub when the board sent a CSR,
 * else for a key generated here and handed back in id->private_key. */
static int pv_certify(const pv_ca *ca, const pv_product *prod, const pv_pubkey *pub, pv_identity *id, char *err,
                      size_t err_len)
{
    pv_pubkey gen_pub;
    if (!pub) {
        EVP_PKEY *gen = pv_keygen();
        int ok = gen && (id->private_key = pv_key_pem(gen)) && pv_pubkey_of(gen, &gen_pub) == 0;
        EVP_PKEY_free(gen); /* OpenSSL clears EC private key material when freeing it */
        if (!ok) return snprintf(err, err_len, "key generation failed"), -1;
        pub = &gen_pub;
    }
    free(id->certificate);
    id->certificate = pv_ca_sign(ca, pub, id->serial, prod->factory_code, prod->cert_days, id->cert_serial,
                                 err, err_len);
    return id->certificate ? 0 : -1;
}

/* What an issuance still has to do once the ledger lock is let go. */
typedef struct pv_pending {
    int sign;          /* sign a certificate (new unit, or a new key) */
    const char *kind;  /* new, rekey */
    int64_t now;
} pv_pending;

/* Phase 1, lock held, inside the request's savepoint: find the board's
 * identity or allocate a new one (rows written, certificate to follow). */
static pv_status pv_issue_reserve(pv_ledger *l, const pv_ca *ca, const pv_product *prod, const pv_request *req,
                                  const pv_pubkey *pub, pv_identity *out, pv_pending *pend, char *err,
                                  size_t err_len)
{
    int64_t now = pv_now_ms(), seq;
    pend->now = now;
    int found = pv_load_unit(l, req->product, req->board_id, out, &seq);
    if (found < 0) return snprintf(err, err_len, "ledger: %s", sqlite3_errmsg(l->db)), PV_INTERNAL;
    if (found == 2)
        return snprintf(err, err_len, "an issuance for board %s is in progress; ask again", req->board_id), PV_BUSY;
    if (found) {
        out->reused = 1;
        /* Same key (or the board kept it): the same certificate. A board that
         * lost its key gets a new certificate for the same identity, so no
         * serial, MAC or device id is ever burnt by a retry. */
        if (pub && pv_cert_has_key(ca, out->certificate, pub))
            return pv_record(l, now, "repeat", req, out) ? PV_INTERNAL : PV_OK;
        if (!prod->allow_rekey)
            return snprintf(err, err_len,
                            "board %s has certificate %s for another key; rekey is denied for product %s",
                            req->board_id, out->cert_serial, req->product),
                   PV_CONFLICT;
        snprintf(out->supersedes, sizeof out->supersedes, "%s", out->cert_serial);
        pend->sign = 1;
        pend->kind = "rekey";
        return PV_OK;
    }

    uint64_t next_seq = 1, next_mac = prod->mac_first;
    sqlite3_stmt *st = pv_stmt(l, "SELECT next_seq,next_mac FROM counters WHERE product=?1");
    if (!st) return PV_INTERNAL;
    pv_bind_texts(st, 1, req->product);
    if (sqlite3_step(st) == SQLITE_ROW) {
        next_seq = (uint64_t)sqlite3_column_int64(st, 0);
        next_mac = (uint64_t)sqlite3_column_int64(st, 1);
    }
    pv_done(st);
    uint64_t mac_first = 0;
    if (prod->macs_per_unit > 0 &&
        pv_mac_alloc(&next_mac, prod->mac_first, prod->mac_last, prod->macs_per_unit, &mac_first)) {
        char a[18], b[18];
        pv_mac_format(prod->mac_first, a);
        pv_mac_format(prod->mac_last, b);
        snprintf(err, err_len, "MAC block %s..%s of product %s is exhausted; configure a new block", a, b,
                 req->product);
        return PV_CONFLICT;
    }
    seq = (int64_t)next_seq;
    snprintf(out->product, sizeof out->product, "%s", req->product);
    snprintf(out->board_id, sizeof out->board_id, "%s", req->board_id);
    snprintf(out->factory_code, sizeof out->factory_code, "%s", prod->factory_code);
    if (pv_serial_format(out->serial, sizeof out->serial, prod->serial_format, req->product,
                         prod->factory_code, next_seq, (time_t)(now / 1000)))
        return snprintf(err, err_len, "serial does not fit"), PV_INTERNAL;
    pv_device_id(out->device_id, prod->factory_code, req->product, next_seq);
    out->mac_first = mac_first;
    out->mac_count = prod->macs_per_unit;
    pv_iso(now, out->issued_at);

    /* cert_serial stays empty until phase 2 fills it in. */
    st = pv_stmt(l, "INSERT INTO units(product,board_id,seq,serial,device_id,mac_first,mac_count,cert_serial,"
                    "factory_code,issued_ms,station,lot_id,order_id) "
                    "VALUES(?1,?2,?11,?3,?4,?12,?13,'',?6,?14,?7,?8,?9)");
    if (!st) return PV_INTERNAL;
    pv_bind_texts(st, 9, req->product, req->board_id, out->serial, out->device_id, "", prod->factory_code,
                  req->station, req->lot_id, req->order_id);
    sqlite3_bind_int64(st, 11, seq);
    sqlite3_bind_int64(st, 12, (int64_t)mac_first);
    sqlite3_bind_int(st, 13, prod->macs_per_unit);
    sqlite3_bind_int64(st, 14, now);
    int rc = sqlite3_step(st);
    pv_done(st);
    int ok = rc == SQLITE_DONE;
    if (ok && (st = pv_stmt(l, "INSERT INTO macs(mac,serial) VALUES(?1,?2)"))) {
        for (int i = 0; ok && i < prod->macs_per_unit; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, (int64_t)(mac_first + (uint64_t)i));
            sqlite3_bind_text(st, 2, out->serial, -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            ok = rc == SQLITE_DONE;
        }
        pv_done(st);
    }
    if (ok && (st = pv_stmt(l, "INSERT INTO counters(product,next_seq,next_mac) VALUES(?1,?2,?3) "
                               "ON CONFLICT(product) DO UPDATE SET next_seq=?2, next_mac=?3"))) {
        pv_bind_texts(st, 1, req->product);
        sqlite3_bind_int64(st, 2, (int64_t)next_seq + 1);
        sqlite3_bind_int64(st, 3, (int64_t)next_mac);
        ok = sqlite3_step(st) == SQLITE_DONE;
        pv_done(st);
    }
    if (!ok) {
        int code = sqlite3_errcode(l->db);
        snprintf(err, err_len, "ledger refused the issuance: %s", sqlite3_errmsg(l->db));
        return code == SQLITE_CONSTRAINT ? PV_CONFLICT : PV_INTERNAL;
    }
    pend->sign = 1;
    pend->kind = "new";
    return PV_OK;
}

/* Phase 3, lock held: the signed certificate into the ledger. A failure here
 * cannot be undone alone (other requests share the transaction): the caller
 * fails the whole batch. */
static int pv_issue_finish(pv_ledger *l, const pv_request *req, const pv_identity *out, const pv_pending *pend)
{
    sqlite3_stmt *st = pv_stmt(l, "UPDATE units SET cert_serial=?1 WHERE serial=?2");
    if (!st) return -1;
    pv_bind_texts(st, 2, out->cert_serial, out->serial);
    int rc = sqlite3_step(st);
    pv_done(st);
    if (rc != SQLITE_DONE || sqlite3_changes(l->db) != 1) return -1;
    if (pv_insert_cert(l, out->cert_serial, out->serial, out->certificate, pend->now) ||
        pv_record(l, pend->now, pend->kind, req, out))
        return -1;
    if (!out->supersedes[0]) return 0;
    st = pv_stmt(l, "INSERT INTO superseded(cert_serial,by_cert_serial,time_ms,station) VALUES(?1,?2,?4,?3)");
    if (!st) return -1;
    pv_bind_texts(st, 3, out->supersedes, out->cert_serial, req->station);
    sqlite3_bind_int64(st, 4, pend->now);
    rc = sqlite3_step(st);
    pv_done(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

pv_status pv_ledger_issue(pv_ledger *l, const pv_ca *ca, const pv_product *prod, const pv_request *req,
                          pv_identity *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    pv_pubkey csr_key, *pub = NULL;
    if (req->csr) {
        if (pv_csr_pubkey(ca, req->csr, &csr_key, err, err_len)) return PV_BAD_REQUEST;
        pub = &csr_key;
    }
    pv_status s = PV_INTERNAL;
    pthread_mutex_lock(&l->lock);
    /* Join the open batch, unless it is being committed or is full. */
    l->entering++;
    while (l->committing || l->batch_size >= PV_BATCH_MAX) pthread_cond_wait(&l->committed, &l->lock);
    l->entering--;
    if (!l->in_txn) {
        if (pv_exec(l, "BEGIN IMMEDIATE") == SQLITE_OK) l->in_txn = 1;
        else snprintf(err, err_len, "ledger: %s", sqlite3_errmsg(l->db));
    }
    if (!l->in_txn) {
        pthread_mutex_unlock(&l->lock);
        return PV_INTERNAL;
    }
    l->joined++;
    l->batch_size++;
    uint64_t mine = l->batch;
    pv_pending pend = {0, NULL, 0};
    pv_hook(l, "joined", req);
    if (pv_rolled_back(l, err, err_len)) {
        /* Nothing more of this batch may be written: a savepoint now would
         * open a transaction of its own, and its release commit it. */
    } else if (pv_exec(l, "SAVEPOINT req") != SQLITE_OK) {
        snprintf(err, err_len, "ledger: %s", sqlite3_errmsg(l->db));
    } else {
        s = pv_issue_reserve(l, ca, prod, req, pub, out, &pend, err, err_len);
        if (s != PV_OK) pv_exec(l, "ROLLBACK TO req");
        pv_exec(l, "RELEASE req");
        if (pv_rolled_back(l, err, err_len)) s = PV_INTERNAL;
    }
    if (s == PV_OK && pend.sign) {
        /* Phase 2: sign without the lock, so both cores sign. This request
         * is still joined: its batch cannot commit without its phase 3. */
        pthread_mutex_unlock(&l->lock);
        int signed_ok = pv_certify(ca, prod, pub, out, err, err_len) == 0;
        if (signed_ok && pv_hook(l, "signed", req)) signed_ok = 0, snprintf(err, err_len, "signing failed (injected)");
        pthread_mutex_lock(&l->lock);
        if (!signed_ok || pv_rolled_back(l, err, err_len) || pv_issue_finish(l, req, out, &pend)) {
            if (signed_ok && !l->poisoned) snprintf(err, err_len, "ledger: %s", sqlite3_errmsg(l->db));
            l->poisoned = 1; /* the batch holds our half-issued rows: roll it all back */
            s = PV_INTERNAL;
        } else
            pv_hook(l, "finished", req);
    }
    if (s != PV_OK) (void)pv_rolled_back(l, NULL, 0); /* a failed statement may have ended the batch */
    if (--l->joined == 0) pthread_cond_signal(&l->lead);
    if (!l->leader) {
        /* Lead: wait for every request of the batch, and for those about to
         * join while there is room, then commit for all. */
        l->leader = 1;
        while (l->joined > 0 || (l->entering > 0 && l->batch_size < PV_BATCH_MAX))
            pthread_cond_wait(&l->lead, &l->lock);
        l->committing = 1;
        pthread_mutex_unlock(&l->lock);
        int rc = l->poisoned ? SQLITE_ABORT : pv_exec(l, "COMMIT");
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(l->db)) pv_exec(l, "ROLLBACK");
        pthread_mutex_lock(&l->lock);
        l->ok[mine % PV_BATCH_RING] = rc == SQLITE_OK;
        l->done = mine;
        l->batch++;
        l->batch_size = 0;
        l->in_txn = l->leader = l->committing = l->poisoned = 0;
        pthread_cond_broadcast(&l->committed);
    } else {
        while (l->done < mine) pthread_cond_wait(&l->committed, &l->lock);
    }
    if (s == PV_OK && !l->ok[mine % PV_BATCH_RING]) {
        snprintf(err, err_len, "ledger commit failed; ask again");
        s = PV_INTERNAL;
    }
    pthread_mutex_unlock(&l->lock);
    if (s != PV_OK) pv_identity_clear(out);
    return s;
}

pv_status pv_ledger_get(pv_ledger *l, const pv_config *cfg, const char *serial, pv_identity *out, char *err,
                        size_t err_len)
{
    (void)cfg;
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(l->rdb, PV_UNIT_COLS "WHERE u.serial=?1", -1, &st, NULL) == SQLITE_OK) {
        pv_bind_texts(st, 1, serial);
        found = pv_read_unit(st, out, NULL);
    }
    sqlite3_finalize(st);
    if (found == 1) return PV_OK;
    if (found == 2) found = 0; /* still being issued */
    pv_identity_clear(out);
    if (found == 0) return snprintf(err, err_len, "no unit with serial %s", serial), PV_NOT_FOUND;
    return snprintf(err, err_len, "ledger: read failed"), PV_INTERNAL;
}

/* ---- audit ---- */

typedef struct pv_audit {
    FILE *out;
    long findings;
} pv_audit;

__attribute__((format(printf, 2, 3))) static void pv_finding(pv_audit *a, const char *fmt, ...)
{
    if (a->findings++ < 1000) { /* print the first thousand; the count says the rest */
        va_list ap;
        va_start(ap, fmt);
        fputs("FINDING: ", a->out);
        vfprintf(a->out, fmt, ap);
        fputc('\n', a->out);
        va_end(ap);
    }
}

/* Runs a query whose rows are each a finding described by column 0. */
static int pv_audit_rows(pv_ledger *l, pv_audit *a, const char *what, const char *sql)
{
    sqlite3_stmt *st = pv_prep(l, sql);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) pv_finding(a, "%s: %s", what, sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

long pv_ledger_audit(pv_ledger *l, const pv_config *cfg, const pv_ca *ca, FILE *out)
{
    pv_audit a = {out, 0};
    pthread_mutex_lock(&l->lock);
    while (l->committing || l->in_txn) pthread_cond_wait(&l->committed, &l->lock);
    int bad = pv_exec(l, "BEGIN") != SQLITE_OK;
    /* The storage itself. */
    bad = bad || pv_audit_rows(l, &a, "integrity", "SELECT * FROM pragma_integrity_check WHERE integrity_check<>'ok'");
    /* Duplicates: the UNIQUE constraints forbid them; a ledger edited behind
     * the server's back, or with its indexes dropped, may still hold some. */
    static const char *const dups[][2] = {
        {"duplicate serial", "SELECT serial||' x'||count(*) FROM units GROUP BY serial HAVING count(*)>1"},
        {"duplicate device id", "SELECT device_id||' x'||count(*) FROM units GROUP BY device_id HAVING count(*)>1"},
        {"duplicate certificate serial",
         "SELECT cert_serial||' x'||count(*) FROM certs GROUP BY cert_serial HAVING count(*)>1"},
        {"duplicate MAC", "SELECT printf('%012x',mac)||' x'||count(*) FROM macs GROUP BY mac HAVING count(*)>1"},
        {"duplicate board", "SELECT product||'/'||board_id FROM units GROUP BY product,board_id HAVING count(*)>1"},
        /* MAC ranges of two units overlap. */
        {"MAC ranges overlap",
         "SELECT serial FROM (SELECT serial, mac_first, lag(mac_first+mac_count) OVER (ORDER BY mac_first) AS prev_end "
         "FROM units WHERE mac_count>0) WHERE mac_first<prev_end"},
        {"MAC rows disagree with the unit",
         "SELECT u.serial FROM units u LEFT JOIN macs m ON m.serial=u.serial GROUP BY u.id "
         "HAVING count(m.mac)<>u.mac_count OR min(m.mac)<>u.mac_first OR max(m.mac)<>u.mac_first+u.mac_count-1"},
        {"MAC issued to no unit", "SELECT printf('%012x',mac) FROM macs WHERE serial NOT IN (SELECT serial FROM units)"},
        /* Counters only ever grow: each is past everything issued, and units
         * were issued in ascending order of sequence number and MAC. */
        {"counter behind issued sequence numbers",
         "SELECT u.product FROM units u LEFT JOIN counters c USING(product) GROUP BY u.product "
         "HAVING c.next_seq IS NULL OR c.next_seq<=max(u.seq)"},
        {"counter behind issued MACs",
         "SELECT u.product FROM units u LEFT JOIN counters c USING(product) WHERE u.mac_count>0 GROUP BY u.product "
         "HAVING c.next_mac IS NULL OR c.next_mac<max(u.mac_first+u.mac_count)"},
        {"sequence or MAC not monotonic in issuance order",
         "SELECT serial FROM (SELECT serial, seq, mac_first, mac_count, issued_ms,"
         " lag(seq) OVER w AS pseq, lag(mac_first+mac_count) OVER w AS pend, lag(mac_count) OVER w AS pmc,"
         " lag(issued_ms) OVER w AS pms FROM units WINDOW w AS (PARTITION BY product ORDER BY id)) "
         "WHERE seq<=pseq OR (mac_count>0 AND pmc>0 AND mac_first<pend) OR issued_ms<pms-60000"},
        {"unit's current certificate missing",
         "SELECT serial FROM units WHERE cert_serial NOT IN (SELECT cert_serial FROM certs)"},
        {"certificate issued to no unit", "SELECT cert_serial FROM certs WHERE serial NOT IN (SELECT serial FROM units)"},
        {"superseded certificate never issued",
         "SELECT cert_serial FROM superseded WHERE cert_serial NOT IN (SELECT cert_serial FROM certs)"},
        {"unit's current certificate listed as superseded",
         "SELECT serial FROM units WHERE cert_serial IN (SELECT cert_serial FROM superseded)"},
    };
    for (size_t i = 0; !bad && i < sizeof dups / sizeof dups[0]; i++)
        bad = pv_audit_rows(l, &a, dups[i][0], dups[i][1]) != 0;

    /* Each unit: its product is configured, its identifiers are what the
     * product's rules give for its sequence number, its MACs lie inside the
     * product's block. */
    sqlite3_stmt *st = bad ? NULL
                           : pv_prep(l, "SELECT product,seq,serial,device_id,mac_first,mac_count,factory_code,"
                                        "issued_ms FROM units ORDER BY id");
    int rc = SQLITE_DONE;
    if (!bad && !st) bad = 1;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *product = (const char *)sqlite3_column_text(st, 0);
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 1);
        const char *serial = (const char *)sqlite3_column_text(st, 2);
        const char *devid = (const char *)sqlite3_column_text(st, 3);
        uint64_t mf = (uint64_t)sqlite3_column_int64(st, 4);
        int mc = sqlite3_column_int(st, 5);
        const char *fc = (const char *)sqlite3_column_text(st, 6);
        time_t t = (time_t)(sqlite3_column_int64(st, 7) / 1000);
        const pv_product *p = pv_config_product(cfg, product);
        if (!p) {
            pv_finding(&a, "unit %s: product %s is not configured", serial, product);
            continue;
        }
        char want[128], dev[17];
        if (pv_serial_format(want, sizeof want, p->serial_format, product, fc, seq, t) || strcmp(want, serial))
            pv_finding(&a, "unit %s: serial does not match the format for sequence %" PRIu64 " (%s)", serial, seq, want);
        pv_device_id(dev, fc, product, seq);
        if (strcmp(dev, devid)) pv_finding(&a, "unit %s: device id %s is not the one issued for it", serial, devid);
        if (mc > 0 && (mf < p->mac_first || mf + (uint64_t)mc - 1 > p->mac_last || mc > PV_MAX_MACS))
            pv_finding(&a, "unit %s: MACs %012" PRIx64 "+%d outside the product's block", serial, mf, mc);
    }
    if (st) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) bad = 1;
    }

    /* Every certificate ever issued parses, chains to the CA and names its unit. */
    st = bad ? NULL : pv_prep(l, "SELECT cert_serial,serial,pem FROM certs");
    if (!bad && !st) bad = 1;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char why[256];
        const char *cs = (const char *)sqlite3_column_text(st, 0);
        if (pv_ca_check_cert(ca, (const char *)sqlite3_column_text(st, 2), (const char *)sqlite3_column_text(st, 1),
                             cs, why, sizeof why))
            pv_finding(&a, "certificate %s: %s", cs, why);
    }
    if (st) {
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) bad = 1;
    }
    if (bad) fprintf(out, "ERROR: ledger cannot be read: %s\n", sqlite3_errmsg(l->db));
    pv_exec(l, "COMMIT");
    pthread_mutex_unlock(&l->lock);
    return bad ? -1 : a.findings;
}
