/* firmware.c - fetching a release image named by an order (libcurl: file,
 * http, https) and proving it is the image the order means (SHA-256).
 *
 * The digest check is the line's guarantee of what gets programmed, so the
 * transport is kept narrow: three protocols, no redirect into file: or any
 * other protocol, HTTP errors are errors, and the image is capped in size
 * while it downloads rather than after. */
#include "firmware.h"
#include "digest.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* Sets the options that keep the fetch to file/http/https; 0 or curl's code. */
static CURLcode firmware_restrict(CURL *h)
{
    CURLcode rc;
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0: string lists, bitmasks deprecated */
    rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "file,http,https");
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_FILE | CURLPROTO_HTTP | CURLPROTO_HTTPS));
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return rc;
}

int firmware_fetch(const char *url, const char *sha256_hex, const firmware_fetch_opts *opts, uint8_t **image,
                   size_t *len, char *reason, size_t reason_len)
{
    *image = NULL;
    *len = 0;
    pthread_once(&firmware_curl_once, firmware_curl_init);
    if (firmware_curl_rc != CURLE_OK) {
        snprintf(reason, reason_len, "cannot fetch %s: libcurl failed to initialise: %s", url,
                 curl_easy_strerror(firmware_curl_rc));
        return -1;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(reason, reason_len, "cannot fetch %s: no curl handle (out of memory)", url);
        return -1;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    firmware_buf b = {.max = opts->max_bytes};
    /* Every option is checked: one the library ignores (say, a protocol
     * restriction on an old libcurl) must not widen what we accept. */
    CURLcode rc = firmware_restrict(h);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_URL, url);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)FIRMWARE_MAX_REDIRECTS);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
    /* Signals would hit whichever thread curl runs in; timeouts do without. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* Lets curl refuse early when the server announces the size. */
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)opts->max_bytes);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, firmware_write);
    if (rc == CURLE_OK) rc = curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    if (rc == CURLE_OK && opts->ca_file) rc = curl_easy_setopt(h, CURLOPT_CAINFO, opts->ca_file);
    if (rc != CURLE_OK) {
        snprintf(reason, reason_len, "cannot fetch %s: libcurl refused an option: %s", url, curl_easy_strerror(rc));
        curl_easy_cleanup(h);
        return -1;
    }
    rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(reason, reason_len, "image at %s exceeds %zu bytes", url, opts->max_bytes);
    else if (b.no_memory)
        snprintf(reason, reason_len, "out of memory fetching %s", url);
    else if (rc != CURLE_OK)
        snprintf(reason, reason_len, "cannot fetch %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (b.len == 0)
        /* No real firmware is empty; a 0-byte answer is a broken server or path. */
        snprintf(reason, reason_len, "image at %s is empty", url);
    if (rc != CURLE_OK || b.len == 0) {
        free(b.data);
        return -1;
    }
    char actual[65];
    digest_sha256_hex(b.data, b.len, actual);
    if (strcasecmp(sha256_hex, actual) != 0) {
        snprintf(reason, reason_len, "sha256 mismatch: order says %s, image at %s is %s", sha256_hex, url, actual);
        free(b.data);
        return -1;
    }
    *image = b.data;
    *len = b.len;
    return 0;
}
