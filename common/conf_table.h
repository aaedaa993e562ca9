/* SPDX-License-Identifier: Apache-2.0 */
/* conf_table.h - declarative configuration: every key is one row of a table
 * (name, type, default, range or choices, one-line description, where its
 * value goes in a target struct, flags), and the table alone drives parsing,
 * defaults, range checks, required keys and printing the effective values
 * with secrets masked. The idea is Fluent Bit's config_map and Redis's
 * standardConfig; the agent's sections and each station adapter declare
 * their keys this way. Errors read "[section] key: problem"; conf_parse_file
 * prefixes "FILE:LINE: ". */
#ifndef LINEAGENT_CONF_TABLE_H
#define LINEAGENT_CONF_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kv.h"

typedef enum conf_type {
    CONF_STRING,      /* char *, owned; choices, when given: the prefixes a value must start with */
    CONF_BOOL,        /* int: true/false, yes/no, on/off, 1/0 */
    CONF_INT,         /* signed field of 4 or 8 bytes, min..max; decimal, or hex with 0x */
    CONF_HEX,         /* unsigned field of 4 or 8 bytes (an address, a register word), any value
                       * it holds; decimal or 0x hex, printed in hex */
    CONF_DOUBLE,      /* double, dmin..dmax */
    CONF_SIZE,        /* 8-byte field, bytes: plain or with K, M, G (powers of 1024); min..max */
    CONF_DURATION,    /* 8-byte field, milliseconds: 500ms, 45s, 90m, 12h, 30d; a plain number
                       * is seconds; min..max in ms */
    CONF_ENUM,        /* const char *: one of choices (any case), pointing at the table's spelling */
    CONF_SECRET_FILE, /* char *: a path; the file's first line goes to the char * at secret_at
                       * (wiped when freed) and is never printed */
    CONF_CUSTOM,      /* parse and format callbacks */
} conf_type;

enum conf_flag {
    CONF_REQUIRED = 1, /* conf_done fails when the key was not given; a string may not be empty */
    CONF_SECRET = 2,   /* the value is printed as ******** */
    CONF_ZERO_OFF = 4, /* 0 ("none", "never") is allowed besides min..max */
};

typedef struct conf_key {
    const char *name;           /* NULL ends a table */
    conf_type type;
    const char *def;            /* default, spelled as in the file; NULL: none */
    long long min, max;         /* CONF_INT, CONF_SIZE, CONF_DURATION */
    double dmin, dmax;          /* CONF_DOUBLE */
    const char *const *choices; /* NULL-terminated: CONF_ENUM choices, CONF_STRING prefixes */
    unsigned flags;             /* enum conf_flag */
    const char *desc;           /* one line, printed above the key */
    size_t offset, size;        /* CONF_AT(struct, member) */
    size_t secret_at;           /* CONF_SECRET_FILE: offsetof the char * for the content */
    /* CONF_CUSTOM: 0, or -1 with a problem ("must be ...") */
    int (*parse)(const char *value, void *field, char *problem, size_t len);
    void (*format)(const void *field, char *out, size_t len);
} conf_key;

#define CONF_AT(type, member) .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)

/* One section being loaded into base. */
typedef struct conf_section {
    const char *name;   /* as in messages: "agent", "station prog1" */
    const char *prefix; /* before every key in the file: "" or e.g. "gdb." */
    const conf_key *keys;
    void *base;
    uint64_t set;       /* bit i: keys[i] was given */
} conf_section;

#define CONF_UNKNOWN 1 /* conf_set: the table has no such key */

/* Starts a section and applies every default. -1 when the table itself is
 * wrong (a default that does not parse, a field of the wrong size): a bug. */
int conf_init(conf_section *s, const char *name, const char *prefix, const conf_key *keys, void *base, char *err,
              size_t err_len);
/* Sets key (as in the file, prefix included): 0, -1 with "[section] key:
 * problem", or CONF_UNKNOWN with "unknown key "K" in [section]". */
int conf_set(conf_section *s, const char *key, const char *value, char *err, size_t err_len);
/* After the last conf_set: -1 with "[section] key is required" for a
 * required key never given. */
int conf_done(const conf_section *s, char *err, size_t err_len);
/* conf_set for each pair (any unknown key is an error), then conf_done. On
 * failure *failed (when not NULL) is the failing pair's index, n for a
 * missing key, and base holds nothing. */
int conf_load_kv(conf_section *s, const kv_pair *kv, size_t n, size_t *failed, char *err, size_t err_len);
/* Writes "# description" and "key = value" per row, secrets masked; a key
 * that holds no value (a NULL string, or no default and not in s->set) is
 * printed commented out. */
void conf_print(const conf_section *s, FILE *out);
/* Frees what the table's rows own in base and wipes secrets. */
void conf_free(const conf_key *keys, void *base);
/* The row named name (without prefix), or NULL. */
const conf_key *conf_find(const conf_key *keys, const char *name);
/* Reads the first line of a secret's file into a new string. */
int conf_read_secret(const char *path, char **out, char *err, size_t err_len);

/* Called per key of an INI file with its line; 0, or -1 with a message. */
typedef int (*conf_line_fn)(void *user, const char *section, const char *key, const char *value, int line,
                            char *err, size_t err_len);
/* Parses an INI file (libinih), stopping at the first error: -1 with
 * "FILE:LINE: message" or "FILE: cannot open: reason". */
int conf_parse_file(const char *path, conf_line_fn fn, void *user, char *err, size_t err_len);

#endif
