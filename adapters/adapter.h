/* SPDX-License-Identifier: Apache-2.0 */
/* adapter.h - the station adapter interface: a small vtable, one per kind of
 * station (simulated, GDB-remote programmer, external program ...). Adding an
 * adapter is one new adapter_<name>.c (CMake picks up every adapter_*.c) and
 * its name in ADAPTER_LIST in adapter_registry.c. An adapter declares its
 * station keys as a conf_table.h table, which parses them into its state and
 * drives check-config's validation and printing.
 *
 * Threading: a station calls its adapter from its own worker thread only, so
 * an adapter's per-station state needs no locking; state shared between
 * stations (e.g. a simulated board's flash) must lock. Step callbacks block
 * for as long as the real operation takes. */
#ifndef LINEAGENT_ADAPTER_H
#define LINEAGENT_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "conf_table.h"
#include "kv.h"

#define ADAPTER_MAX_MEASUREMENTS 64
#define ADAPTER_ID_MAX 65 /* board ids: 64 characters + NUL */
#define ADAPTER_MAX_MACS 8

/* A [station NAME] section of the agent's configuration: what a station,
 * and so its adapter, is opened with. */
typedef struct station_config {
    char *name;
    char *adapter;
    uint32_t steps_mask;  /* bit (1 << Step) per step this station performs */
    kv_pair *keys;        /* the "<adapter>.*" keys, verbatim (adapter_conf_load parses them) */
    size_t n_keys;
    uint32_t sites;       /* fixture sites run in parallel (gang programming); 1 by default */
    uint32_t site;        /* set per site when the station opens its adapter, 0-based */
} station_config;

/* The value of a station's key (full name, e.g. "sim.fail_rate"), or NULL. */
const char *station_config_get(const station_config *st, const char *key);

typedef struct adapter_image {
    const char *version;
    const char *sha256;   /* lowercase hex of data */
    const uint8_t *data;
    size_t len;
    uint64_t load_address; /* where the release goes on the target (FirmwareRelease.load_address) */
} adapter_image;

typedef struct adapter_measurement {
    char name[32];
    double value;
    double low, high;     /* limits the value must lie within (inclusive) */
    char unit[16];
} adapter_measurement;

/* CALIBRATE: one raw reading the station took at a known reference. */
typedef struct adapter_cal_point {
    double reference, raw;
} adapter_cal_point;
#define ADAPTER_MAX_CAL_POINTS 16

/* CALIBRATE, several named channels per unit (vbus, vref, a sensor ...):
 * each its raw readings at reference points, fitted by the agent like the
 * single-channel points below, its coefficients written per channel. */
typedef struct adapter_cal_channel {
    char name[32];
    adapter_cal_point points[ADAPTER_MAX_CAL_POINTS];
    int n_points;
    double offset, gain, residual; /* set by the agent's fit */
} adapter_cal_channel;
#define ADAPTER_MAX_CAL_CHANNELS 8

/* CRC-32 variants a target may compute over flash: the zlib / IEEE 802.3 one
 * (vendor programmers) and GDB's qCRC (non-reflected, no final XOR). */
typedef enum adapter_crc { ADAPTER_CRC_NONE = 0, ADAPTER_CRC32_ZLIB, ADAPTER_CRC32_GDB } adapter_crc;

/* What one step did. The station zeroes it before each call; an adapter sets
 * passed, or failure_mode + detail, plus the step's own outputs. */
typedef struct adapter_result {
    int passed;
    char failure_mode[48];   /* machine-readable, e.g. verify_mismatch */
    char detail[256];        /* for people */
    /* VERIFY: what the adapter read back, for the agent to compare with the
     * release image (an adapter never reports the release's own digest as
     * read back): the SHA-256 of the bytes read, or, where the target only
     * computes a CRC over them, that CRC-32 and which CRC it is. */
    char readback_sha256[65];
    uint32_t readback_crc32;
    adapter_crc readback_crc;
    char verify_method[16]; /* set by the agent: how the read-back was checked (sha256, crc32, crc32_gdb) */
    adapter_measurement measurements[ADAPTER_MAX_MEASUREMENTS]; /* TEST */
    int n_measurements;
    double cal_offset, cal_gain;                           /* CALIBRATE */
    /* CALIBRATE: raw readings at reference points; when the adapter reports
     * them, the agent fits offset and gain (reference = gain * raw + offset)
     * and hands them back through write_calibration. */
    adapter_cal_point cal_points[ADAPTER_MAX_CAL_POINTS];
    int n_cal_points;
    double cal_residual;                                   /* set by the agent's fit */
    /* CALIBRATE with named channels (then cal_points stays empty); the
     * agent fills the single-channel fields above from the first channel. */
    adapter_cal_channel cal_channels[ADAPTER_MAX_CAL_CHANNELS];
    int n_cal_channels;
    int lock_verified;                                     /* LOCK */
    /* PROVISION: the identity as read back from the board after writing it. */
    char serial[128];
    char device_id[40];
    char macs[ADAPTER_MAX_MACS][18];
    int n_macs;
    char cert_sha256[65];  /* SHA-256 of the certificate's DER, lowercase hex */
    /* PROVISION, set by the agent from the server's answer (not read back). */
    char factory_code[24];
    char issued_at[40];
    char cert_serial[64];
    int identity_reused;
} adapter_result;

/* A unit's identity as issued by the provisioning server, for PROVISION to
 * write into the board. The agent owns it and wipes private_key after the
 * step: an adapter must not keep a copy. */
typedef struct adapter_identity {
    const char *serial, *device_id, *factory_code, *issued_at;
    const char (*macs)[18];
    int n_macs;
    const char *certificate; /* PEM, CN = serial */
    const char *ca_chain;    /* PEM */
    const char *private_key; /* PEM when the server generated the key; NULL when the board made a CSR */
    const char *cert_sha256;
} adapter_identity;

typedef struct adapter_step_ctx {
    const char *station;
    const char *lot_id;
    const char *board_id;
    const adapter_image *image; /* the release bound to this board (WRITE, VERIFY) */
    const char *product;        /* the lot's product */
    const adapter_identity *identity; /* PROVISION: what to write */
    const char *serial;         /* issued at PROVISION; NULL before */
    const char *cal_channel;    /* write_calibration: the channel written; NULL for a single-channel unit */
} adapter_step_ctx;

typedef void (*adapter_step_fn)(void *state, const adapter_step_ctx *ctx, adapter_result *res);

typedef struct adapter {
    const char *name;
    /* Station keys this adapter accepts, without the "<name>." prefix; the
     * rows' offsets point into a struct of conf_size bytes (the adapter's
     * state). check-config refuses any other "<name>.*" key. */
    const conf_key *keys;
    size_t conf_size;
    /* Creates per-station state from the station's config section. */
    int (*open)(void **state, const station_config *st, char *err, size_t err_len);
    /* Blocks until the next board of the lot is on the fixture and names it
     * (idx is its 0-based arrival index in the lot). 0 on success. */
    int (*load_board)(void *state, const char *lot_id, uint32_t idx, char *board_id, size_t len);
    adapter_step_fn write, verify, provision, test, calibrate, lock;
    void (*close)(void *state);
    /* Writes the agent's calibration coefficients to the board's
     * non-volatile memory and reads them back: res->passed only when the
     * read-back matches. Needed by adapters whose calibrate reports points.
     * Called once per channel, ctx->cal_channel naming it, when calibrate
     * reported named channels. */
    void (*write_calibration)(void *state, const adapter_step_ctx *ctx, double offset, double gain,
                              adapter_result *res);
    /* Optional, for PROVISION: the board makes its own key pair (as a secure
     * element would) and returns a PEM CSR for it: 0 with a CSR, 1 when this
     * board cannot make keys (the server then generates it), -1 on failure.
     * Without the callback the provisioning server generates the key. */
    int (*provision_csr)(void *state, const adapter_step_ctx *ctx, char *csr, size_t len);
    /* Optional, with provision_csr: after a CSR was made, no identity will
     * come (the server refused or did not answer); ends what provision_csr
     * began. */
    void (*provision_abort)(void *state);
} adapter;

/* Parses the station's "<name>.*" keys into state (zeroed, conf_size bytes)
 * by the adapter's table: defaults, ranges, required keys. -1 with
 * "[station NAME] key: problem" in err and, when failed is not NULL, the
 * index of the failing key in st->keys (n_keys: a required key is missing);
 * state then holds nothing. Free with conf_free(ad->keys, state). */
int adapter_conf_load(const adapter *ad, const station_config *st, void *state, size_t *failed, char *err,
                      size_t err_len);

/* The adapter's callback for a step (the order's Step number, 1 WRITE ..
 * 6 LOCK, as in station_config.steps_mask), or NULL: it cannot perform it. */
adapter_step_fn adapter_step(const adapter *ad, unsigned step);

/* Marks a step failed with a machine-readable mode and a detail for people. */
void adapter_fail(adapter_result *r, const char *mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The adapter registered under name, or NULL. */
const adapter *adapter_find(const char *name);
/* Comma-separated list of registered names, for error messages. */
const char *adapter_names(void);

#endif
