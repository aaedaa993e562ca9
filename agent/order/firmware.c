/* SPDX-License-Identifier: Apache-2.0 */
/* firmware.c - fetching a release image named by an order (a local file
 * read by the agent itself, or http/https through libcurl) and proving it
 * is the image the order means (SHA-256).
 *
 * The digest check is the line's guarantee of what gets programmed, so the
 * transport is kept narrow: only URLs under [firmware] allowed_urls, checked
 * before any I/O and again for every redirect, HTTP errors are errors, and
 * the image is capped in size while it downloads rather than after. */
#include "firmware.h"
#include "digest.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIRMWARE_MAX_REDIRECTS 5

static pthread_once_t firmware_curl_once = PTHREAD_ONCE_INIT;
static CURLcode firmware_curl_rc;

/* curl_global_init is not thread-safe and must run once per process; it is
 * never undone, since the agent fetches firmware for as long as it lives. */
static void firmware_curl_init(void)
{
    firmware_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct firmware_buf {
    uint8_t *data;
    size_t len, cap, max;
    int too_big, no_memory;
} firmware_buf;

static size_t firmware_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    firmware_buf *b = ud;
    size_t n = size * nmemb;
    if (n > b->max - b->len) {
        b->too_big = 1;
        return 0; /* anything but n makes curl abort the transfer */
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64 * 1024;
        if (cap > b->max) cap = b->max;
        while (cap < b->len + n) cap = cap > b->max / 2 ? b->max : cap * 2;
        uint8_t *grown = realloc(b->data, cap);
        if (!grown) {
            b->no_memory = 1;
            return 0;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

/* ---- allowed URLs ------------------------------------------------------ */

/* The next prefix of a comma-separated list, spaces trimmed, into out;
 * returns where the rest starts, or NULL at the end. */
static const char *firmware_next_prefix(const char *p, char *out, size_t n)
{
    while (*p == ' ' || *p == '\t' || *p == ',') p++;
    if (!*p) return NULL;
    size_t len = strcspn(p, ",");
    const char *next = p + len;
    while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    snprintf(out, n, "%.*s", (int)(len < n ? len : n - 1), p);
    return next;
}

static int firmware_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return 0;
    return 1;
}

int firmware_allowed_check(const char *list, char *err, size_t err_len)
{
    char pre[1024];
    for (const char *p = list; (p = firmware_next_prefix(p, pre, sizeof pre));) {
        size_t n = strlen(pre);
        const char *rest = strncmp(pre, "file:///", 8) == 0    ? pre + 7
                           : strncmp(pre, "http://", 7) == 0   ? pre + 7
                           : strncmp(pre, "https://", 8) == 0  ? pre + 8
                                                               : NULL;
        if (!rest) return snprintf(err, err_len, "\"%s\" is not a file:///, http:// or https:// prefix", pre), -1;
        if (!firmware_printable(pre) || strstr(pre, "/../") || strstr(pre, "/./") || strchr(pre, '%'))
            return snprintf(err, err_len, "\"%s\" holds spaces, dot segments or escapes", pre), -1;
        if (pre[n - 1] != '/' || (pre[0] == 'h' && (rest[0] == '/' || !strchr(rest, '/'))))
            return snprintf(err, err_len, "\"%s\" must end with '/' (and name a host for http)", pre), -1;
    }
    return 0;
}

/* The allowed prefix url lies under, into prefix; 1, or 0. */
static int firmware_match(const char *url, const char *list, char *prefix, size_t n)
{
    if (!list || !firmware_printable(url)) return 0;
    if (strstr(url, "/../") || strstr(url, "/./") || strstr(url, "//") != strstr(url, "://") + 1) return 0;
    size_t ul = strlen(url);
    if ((ul >= 3 && strcmp(url + ul - 3, "/..") == 0) || (ul >= 2 && strcmp(url + ul - 2, "/.") == 0)) return 0;
    if (strncmp(url, "file:", 5) == 0 && strchr(url, '%')) return 0;
    for (const char *p = list; (p = firmware_next_prefix(p, prefix, n));)
        if (*prefix && strncmp(url, prefix, strlen(prefix)) == 0) return 1;
    return 0;
}

int firmware_url_allowed(const char *url, const char *list, char *reason, size_t reason_len)
{
    char prefix[1024];
    if (firmware_match(url, list, prefix, sizeof prefix)) return 1;
    snprintf(reason, reason_len, "firmware url %.200s is not under [firmware] allowed_urls", url);
    return 0;
}

/* Reads a file: URL's image: the real path must lie inside the allowed
 * root's real path, the last component is not followed if it became a
 * link, and only a regular file is read (O_NONBLOCK: a FIFO's open does
 * not wait for a writer). Every failure has the one reason, so an order
 * learns nothing of what exists where. 0, 1 too big, or -1. */
static int firmware_read_local(const char *url, const char *prefix, size_t max, uint8_t **out, size_t *len)
{
    char root[PATH_MAX], path[PATH_MAX];
    if (!realpath(prefix + 7, root) || !realpath(url + 7, path)) return -1;
    size_t rl = strlen(root);
    if (strncmp(path, root, rl) || (path[rl] != '/' && strcmp(root, "/"))) return -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return -1;
    struct stat st;
    uint8_t *buf = NULL;
    size_t n = 0;
    int rc = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) goto done;
    if ((uint64_t)st.st_size > max) {
        rc = 1;
        goto done;
    }
    size_t cap = (size_t)st.st_size + 1; /* one more: a file that grew is seen */
    if (!(buf = malloc(cap))) goto done;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) goto done;
        if (r == 0) break;
        n += (size_t)r;
        if (n == cap) { /* grew since fstat */
            rc = 1;
            goto done;
        }
    }
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}

/* Sets the options that keep the fetch to http/https (file: URLs are read
 * by firmware_read_local); 0 or curl's code. */
static CURLcode firmware_restrict(CURL *h)
{
    CURLcode rc;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0: string lists, bitmasks deprecated */
    rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* Redirects are followed by hand, each target checked against the
     * allowed prefixes before it is asked for. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    return rc;
}

/* An http(s) image into b; 0, or -1 with reason. */
static int firmware_get_http(const char *url, const firmware_fetch_opts *opts, firmware_buf *b, char *reason,
                             size_t reason_len)
{
    CURL *h = curl_easy_init();
    if (!h) return snprintf(reason, reason_len, "cannot fetch %s: no curl handle (out of memory)", url), -1;
    char errbuf[CURL_ERROR_SIZE] = "", where[2048], prefix[1024];
    snprintf(where, sizeof where, "%s", url);
    /* Every option is checked: one the library ignores (say, a protocol
     * restriction on an old libcurl) must not widen what we accept. */
    CURLcode rc = firmware_restrict(h);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
    /* Signals would hit whichever thread curl runs in; timeouts do without. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* Lets curl refuse early when the server announces the size. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)opts->max_bytes);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, firmware_write);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (rc == CURLE_OK && opts->ca_file) rc = curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
    if (rc != CURLE_OK) {
        snprintf(reason, reason_len, "cannot fetch %s: libcurl refused an option: %s", url, curl_easy_strerror(rc));
        curl_easy_cleanup(h);
        return -1;
    }
    int hops = 0, ret = -1;
    for (;;) {
        b->len = 0;
        rc = curl_easy_setopt(h, CURLOPT_URL, where);
        if (rc == CURLE_OK) rc = curl_easy_perform(h);
        long code = 0;
        char *next = NULL;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc != CURLE_OK || code < 300 || code > 399) break;
        if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next) {
            snprintf(reason, reason_len, "cannot fetch %s: HTTP %ld without a location", url, code);
            goto out;
        }
        if (++hops > FIRMWARE_MAX_REDIRECTS) {
            snprintf(reason, reason_len, "cannot fetch %s: more than %d redirects", url, FIRMWARE_MAX_REDIRECTS);
            goto out;
        }
        if (strncmp(next, "http", 4) || !firmware_match(next, opts->allowed_urls, prefix, sizeof prefix)) {
            snprintf(reason, reason_len, "%s redirects to %.200s, which is not under [firmware] allowed_urls", url,
                     next);
            goto out;
        }
        snprintf(where, sizeof where, "%s", next);
    }
    if (b->too_big || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(reason, reason_len, "image at %s exceeds %zu bytes", url, opts->max_bytes);
    else if (b->no_memory)
        snprintf(reason, reason_len, "out of memory fetching %s", url);
    else if (rc != CURLE_OK)
        snprintf(reason, reason_len, "cannot fetch %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else
        ret = 0;
out:
    curl_easy_cleanup(h);
    return ret;
}

int firmware_fetch(const char *url, const char *sha256_hex, const firmware_fetch_opts *opts, uint8_t **image,
                   size_t *len, char *reason, size_t reason_len)
{
    *image = NULL;
    *len = 0;
    char prefix[1024];
    if (!firmware_match(url, opts->allowed_urls, prefix, sizeof prefix))
        return firmware_url_allowed(url, opts->allowed_urls, reason, reason_len), -1; /* before any I/O */
    firmware_buf b = {.max = opts->max_bytes};
    if (strncmp(url, "file:", 5) == 0) {
        int r = firmware_read_local(url, prefix, opts->max_bytes, &b.data, &b.len);
        if (r == 1) return snprintf(reason, reason_len, "image at %s exceeds %zu bytes", url, opts->max_bytes), -1;
        if (r < 0)
            return snprintf(reason, reason_len, "image at %s is not a readable regular file inside its allowed root",
                            url),
                   -1;
    } else {
        pthread_once(&firmware_curl_once, firmware_curl_init);
        if (firmware_curl_rc != CURLE_OK) {
            snprintf(reason, reason_len, "cannot fetch %s: libcurl failed to initialise: %s", url,
                     curl_easy_strerror(firmware_curl_rc));
            return -1;
        }
        if (firmware_get_http(url, opts, &b, reason, reason_len)) {
            free(b.data);
            return -1;
        }
    }
    if (b.len == 0) {
        /* No real firmware is empty; a 0-byte answer is a broken server or path. */
        snprintf(reason, reason_len, "image at %s is empty", url);
        free(b.data);
        return -1;
    }
    char actual[65];
    digest_sha256_hex(b.data, b.len, actual);
    if (strcasecmp(sha256_hex, actual) != 0) {
        /* Only ever for an image the order may read (allowed_urls). */
        snprintf(reason, reason_len, "sha256 mismatch: order says %s, image at %s is %s", sha256_hex, url, actual);
        free(b.data);
        return -1;
    }
    *image = b.data;
    *len = b.len;
    return 0;
}
