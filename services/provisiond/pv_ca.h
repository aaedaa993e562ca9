/* SPDX-License-Identifier: Apache-2.0 */
/* pv_ca.h - the factory CA inside provisiond (OpenSSL): creating a trial CA,
 * verifying station CSRs, generating device keys when a board cannot, signing
 * device certificates (subject CN = serial, ECDSA P-256 with SHA-256) and
 * checking issued certificates for the audit.
 *
 * Device public keys travel as their encoded EC point, the bytes a
 * certificate carries, not as EVP_PKEYs: OpenSSL 3.0 builds a decoder chain
 * for every key it parses (d2i_X509_REQ: about 250 us) and an encoder and a
 * decoder chain for every key put into a certificate (X509_set_pubkey: about
 * 370 us), several times the cost of the signatures themselves. */
#ifndef PV_CA_H
#define PV_CA_H

#include <openssl/evp.h>
#include <stddef.h>

typedef struct pv_ca pv_ca;

/* Creates an EC P-256 CA key (mode 0600) and a self-signed CA certificate;
 * refuses to overwrite either file. 0 or -1 with err. */
int pv_ca_init(const char *cert_path, const char *key_path, const char *cn, char *err, size_t err_len);
pv_ca *pv_ca_load(const char *cert_path, const char *key_path, char *err, size_t err_len);
void pv_ca_free(pv_ca *ca);
/* The CA certificate in PEM (the chain returned to clients). */
const char *pv_ca_pem(const pv_ca *ca);

/* An EC P-256 public key as SubjectPublicKeyInfo holds it: the point in its
 * encoding (uncompressed 65 bytes, or compressed 33). */
typedef struct pv_pubkey {
    unsigned char point[65];
    size_t len;
} pv_pubkey;

/* Parses a PEM CSR, checks that its key is EC P-256 (named curve) and its
 * self-signature. 0 with the key in out, or -1 with a reason. */
int pv_csr_pubkey(const pv_ca *ca, const char *pem, pv_pubkey *out, char *err, size_t err_len);
/* A fresh EC P-256 key pair, or NULL. */
EVP_PKEY *pv_keygen(void);
/* The public half of an EC P-256 key; 0 or -1. */
int pv_pubkey_of(EVP_PKEY *key, pv_pubkey *out);
/* PEM (PKCS#8) of a private key in malloc'd memory; the caller wipes it with
 * OPENSSL_cleanse before freeing. */
char *pv_key_pem(EVP_PKEY *key);
/* Signs a device certificate for pub: CN = cn, O = org, valid days from now,
 * a random 128-bit serial written as hex to serial_hex. PEM (malloc) or NULL.
 * Thread-safe: the CA is only read. */
char *pv_ca_sign(const pv_ca *ca, const pv_pubkey *pub, const char *cn, const char *org, int days,
                 char serial_hex[41], char *err, size_t err_len);
/* 1 when the certificate in pem holds the public key pub (the same point,
 * in whichever encoding). */
int pv_cert_has_key(const pv_ca *ca, const char *pem, const pv_pubkey *pub);
/* Audit: pem parses, is signed by the CA, its CN is cn and its serial is
 * serial_hex. 0, or -1 with the finding in err. */
int pv_ca_check_cert(const pv_ca *ca, const char *pem, const char *cn, const char *serial_hex, char *err,
                     size_t err_len);

#endif
