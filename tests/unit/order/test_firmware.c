/* SPDX-License-Identifier: Apache-2.0 */
/* test_firmware.c - firmware fetching and digest checks (firmware.c): file://
 * images from a temporary directory, and http:// from a tiny loopback server
 * in a thread for status codes and redirects; [firmware] allowed_urls keeps
 * orders away from every other file and host, and tells them nothing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "digest.h"
#include "firmware.h"
#include "tmpdir.h"

#define IMAGE_LEN 3000000 /* several write callbacks and buffer growths */

static tmpdir tmp;
static const char *dir = tmp.path; /* the directory; "" outside setup..teardown */
static uint8_t *image_bytes;
static char image_sha[65];
static int http_fd = -1;
static int http_port;
static pthread_t http_thread;

static void expect_in(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        print_error("expected \"%s\" in reason \"%s\"\n", needle, haystack);
        fail();
    }
}

static void write_file(const char *name, const void *data, size_t len, char *url, size_t url_len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    snprintf(url, url_len, "file://%s", path);
}

static char allowed[512]; /* file://DIR/,http://127.0.0.1:PORT/ */
static firmware_fetch_opts default_opts = {.max_bytes = 16u << 20, .timeout_ms = 10000, .allowed_urls = allowed};

/* Fetch must fail, leave *image NULL, and mention every needle. */
static void expect_fetch_error(const char *url, const char *sha, size_t max_bytes, const char *needle1,
                               const char *needle2)
{
    firmware_fetch_opts opts = default_opts;
    opts.max_bytes = max_bytes;
    uint8_t *img = (uint8_t *)"sentinel";
    size_t len = 1;
    char reason[512] = "";
    assert_int_equal(firmware_fetch(url, sha, &opts, &img, &len, reason, sizeof reason), -1);
    assert_null(img);
    assert_int_equal(len, 0);
    expect_in(reason, needle1);
    if (needle2) expect_in(reason, needle2);
}

/* ---- a loopback HTTP server, one canned answer per path ---------------- */

/* send(MSG_NOSIGNAL), not write(): a client that gives up mid-image (the
 * size limit test) closes the socket, and a SIGPIPE would end the test. */
static void http_answer(int c, const char *path)
{
    char head[512];
    if (strcmp(path, "/fw.bin") == 0) {
        int n = snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", IMAGE_LEN);
        if (send(c, head, (size_t)n, MSG_NOSIGNAL) != n) return;
        for (size_t off = 0; off < IMAGE_LEN;) {
            ssize_t w = send(c, image_bytes + off, IMAGE_LEN - off, MSG_NOSIGNAL);
            if (w <= 0) return;
            off += (size_t)w;
        }
        return;
    }
    const char *resp;
    if (strcmp(path, "/to-file") == 0)
        resp = "HTTP/1.1 302 Found\r\nLocation: file:///etc/hostname\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    else if (strcmp(path, "/to-other") == 0)
        resp = "HTTP/1.1 302 Found\r\nLocation: http://localhost/fw.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    else if (strcmp(path, "/to-fw") == 0)
        resp = "HTTP/1.1 302 Found\r\nLocation: /fw.bin\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    else
        resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found";
    if (send(c, resp, strlen(resp), MSG_NOSIGNAL) < 0) return;
}

static void *http_main(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(http_fd, NULL, NULL);
        if (c < 0) return NULL; /* shutdown() by the teardown */
        char req[2048];
        size_t got = 0;
        while (got < sizeof req - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
            ssize_t n = read(c, req + got, sizeof req - 1 - got);
            if (n <= 0) break;
            got += (size_t)n;
        }
        req[got] = '\0';
        char path[256] = "";
        if (sscanf(req, "GET %255s ", path) == 1) http_answer(c, path);
        close(c);
    }
}

static int setup(void **state)
{
    (void)state;
    if (tmpdir_make(&tmp, "test_firmware") != 0) return -1;
    image_bytes = malloc(IMAGE_LEN);
    if (!image_bytes) return -1;
    for (size_t i = 0; i < IMAGE_LEN; i++) image_bytes[i] = (uint8_t)((i * 131 + i / 977) % 251);
    digest_sha256_hex(image_bytes, IMAGE_LEN, image_sha);

    http_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (http_fd < 0 || bind(http_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(http_fd, 8) != 0 ||
        getsockname(http_fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    http_port = ntohs(a.sin_port);
    snprintf(allowed, sizeof allowed, "file://%s/, http://127.0.0.1:%d/", dir, http_port);
    return pthread_create(&http_thread, NULL, http_main, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    shutdown(http_fd, SHUT_RDWR);
    pthread_join(http_thread, NULL);
    close(http_fd);
    free(image_bytes);
    return tmpdir_remove(&tmp);
}

/* ---- tests ------------------------------------------------------------- */

static void test_sha256_hex(void **state)
{
    (void)state;
    char out[65];
    digest_sha256_hex("abc", 3, out);
    assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_sha256_hex("", 0, out);
    assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_file_fetch_ok(void **state)
{
    (void)state;
    char url[300], reason[512] = "";
    write_file("ok.bin", image_bytes, IMAGE_LEN, url, sizeof url);
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = firmware_fetch(url, image_sha, &default_opts, &img, &len, reason, sizeof reason);
    if (rc != 0) print_error("%s\n", reason);
    assert_int_equal(rc, 0);
    assert_int_equal(len, IMAGE_LEN);
    assert_memory_equal(img, image_bytes, IMAGE_LEN);
    free(img);

    /* The digest compare ignores case. */
    char upper[65];
    for (int i = 0; i < 65; i++) upper[i] = (char)(image_sha[i] >= 'a' ? image_sha[i] - 32 : image_sha[i]);
    assert_int_equal(firmware_fetch(url, upper, &default_opts, &img, &len, reason, sizeof reason), 0);
    free(img);
}

static void test_file_digest_mismatch(void **state)
{
    (void)state;
    char url[300];
    write_file("abc.bin", "abc", 3, url, sizeof url);
    char reason[512] = "";
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    uint8_t *img = NULL;
    size_t len = 0;
    assert_int_equal(firmware_fetch(url, wrong, &default_opts, &img, &len, reason, sizeof reason), -1);
    assert_null(img);
    char expected[600];
    snprintf(expected, sizeof expected, "sha256 mismatch: order says %s, image at %s is %s", wrong, url,
             "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_string_equal(reason, expected);
}

static void test_file_missing(void **state)
{
    (void)state;
    char url[300];
    snprintf(url, sizeof url, "file://%s/no-such-image.bin", dir);
    expect_fetch_error(url, image_sha, default_opts.max_bytes, url, "not a readable regular file");
}

static void test_size_limit(void **state)
{
    (void)state;
    char url[300], reason[512];
    write_file("limit.bin", image_bytes, 1000, url, sizeof url);
    char sha[65];
    digest_sha256_hex(image_bytes, 1000, sha);
    expect_fetch_error(url, sha, 999, "exceeds 999 bytes", url);

    firmware_fetch_opts opts = default_opts;
    opts.max_bytes = 1000; /* exactly the limit is fine */
    uint8_t *img = NULL;
    size_t len = 0;
    assert_int_equal(firmware_fetch(url, sha, &opts, &img, &len, reason, sizeof reason), 0);
    assert_int_equal(len, 1000);
    free(img);

    /* The big image overflows the limit in the middle of a transfer. */
    write_file("big.bin", image_bytes, IMAGE_LEN, url, sizeof url);
    expect_fetch_error(url, image_sha, IMAGE_LEN - 1, "exceeds", NULL);
}

static void test_empty_image(void **state)
{
    (void)state;
    char url[300];
    write_file("empty.bin", "", 0, url, sizeof url);
    expect_fetch_error(url, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                       default_opts.max_bytes, "empty", url);
}

static void test_other_protocols_refused(void **state)
{
    (void)state;
    expect_fetch_error("ftp://127.0.0.1/fw.bin", image_sha, default_opts.max_bytes, "ftp://127.0.0.1/fw.bin",
                       "not under [firmware] allowed_urls");
    expect_fetch_error("dict://127.0.0.1/x", image_sha, default_opts.max_bytes, "dict://", "allowed_urls");
}

static void test_http(void **state)
{
    (void)state;
    char url[128], reason[512] = "";
    uint8_t *img = NULL;
    size_t len = 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fw.bin", http_port);
    int rc = firmware_fetch(url, image_sha, &default_opts, &img, &len, reason, sizeof reason);
    if (rc != 0) print_error("%s\n", reason);
    assert_int_equal(rc, 0);
    assert_int_equal(len, IMAGE_LEN);
    assert_memory_equal(img, image_bytes, IMAGE_LEN);
    free(img);

    /* Content-Length above the limit is refused before the body arrives. */
    expect_fetch_error(url, image_sha, 1000, "exceeds 1000 bytes", NULL);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/to-fw", http_port);
    assert_int_equal(firmware_fetch(url, image_sha, &default_opts, &img, &len, reason, sizeof reason), 0);
    free(img);

    snprintf(url, sizeof url, "http://127.0.0.1:%d/nothing-here", http_port);
    expect_fetch_error(url, image_sha, default_opts.max_bytes, "404", url);

    /* A server must not be able to point the agent at local files: the
     * fetch itself fails (a followed redirect would end in a digest
     * mismatch instead). */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/to-file", http_port);
    expect_fetch_error(url, image_sha, default_opts.max_bytes, url, "redirects to file:///etc/hostname, which is not");
    /* ...nor at another host */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/to-other", http_port);
    expect_fetch_error(url, image_sha, default_opts.max_bytes, "redirects to http://localhost/fw.bin", "not under");
}

/* An order may read only under allowed_urls; whatever it names otherwise,
 * the reason carries no digest, no size and no hint of existence. */
static void test_allowed_urls(void **state)
{
    (void)state;
    const char *wrong = "0000000000000000000000000000000000000000000000000000000000000000";
    char passwd_sha[65], url[400], reason[512];
    FILE *f = fopen("/etc/passwd", "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    digest_sha256_hex(buf, n, passwd_sha);
    const char *generic = "not a readable regular file inside its allowed root";
    struct {
        const char *url, *needle;
    } cases[] = {
        {"file:///etc/passwd", "not under [firmware] allowed_urls"},
        {NULL, "not under"}, /* DIR/../../etc/passwd */
        {NULL, generic},     /* DIR/link -> /etc/passwd */
        {NULL, generic},     /* DIR/fifo: must not hang */
        {NULL, generic},     /* DIR/sub (a directory) */
        {NULL, generic},     /* DIR/missing */
        {"http://localhost:1/fw.bin", "not under"},
        {"http://127.0.0.1:1/fw.bin", "not under"}, /* another port */
        {"file://localhost/etc/passwd", "not under"},
    };
    char u[5][400], path[300];
    snprintf(u[0], sizeof u[0], "file://%s/../../etc/passwd", dir);
    snprintf(path, sizeof path, "%s/link", dir);
    assert_int_equal(symlink("/etc/passwd", path), 0);
    snprintf(u[1], sizeof u[1], "file://%s", path);
    snprintf(path, sizeof path, "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(u[2], sizeof u[2], "file://%s", path);
    snprintf(path, sizeof path, "%s/sub", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(u[3], sizeof u[3], "file://%s", path);
    snprintf(u[4], sizeof u[4], "file://%s/missing.bin", dir);
    for (int i = 1; i <= 5; i++) cases[i].url = u[i - 1];
    alarm(10); /* a FIFO opened for reading without O_NONBLOCK would hang here */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *img = NULL;
        size_t len = 0;
        reason[0] = 0;
        assert_int_equal(firmware_fetch(cases[i].url, wrong, &default_opts, &img, &len, reason, sizeof reason), -1);
        assert_null(img);
        expect_in(reason, cases[i].needle);
        if (strstr(reason, passwd_sha) || strstr(reason, "bytes")) fail_msg("reason tells too much: %s", reason);
    }
    alarm(0);
    /* a symlink inside the root to a file inside the root is fine */
    write_file("real.bin", "abc", 3, url, sizeof url);
    snprintf(path, sizeof path, "%s/alias.bin", dir);
    char target[300];
    snprintf(target, sizeof target, "%s/real.bin", dir);
    assert_int_equal(symlink(target, path), 0);
    snprintf(url, sizeof url, "file://%s", path);
    uint8_t *img = NULL;
    size_t len = 0;
    assert_int_equal(firmware_fetch(url, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                                    &default_opts, &img, &len, reason, sizeof reason), 0);
    free(img);
    /* the prefixes themselves */
    assert_true(firmware_url_allowed(url, allowed, reason, sizeof reason));
    assert_int_equal(firmware_allowed_check("file:///srv/fw/, https://fw.example.com/rel/", reason, sizeof reason), 0);
    assert_int_equal(firmware_allowed_check("https://fw.example.com", reason, sizeof reason), -1); /* .com.evil */
    assert_int_equal(firmware_allowed_check("ftp://x/", reason, sizeof reason), -1);
    assert_int_equal(firmware_allowed_check("file:///srv/../etc/", reason, sizeof reason), -1);
    assert_int_equal(firmware_allowed_check("https:///x/", reason, sizeof reason), -1);
    assert_false(firmware_url_allowed("file:///srv/fw/a.bin", NULL, reason, sizeof reason)); /* none configured */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_hex),
        cmocka_unit_test(test_file_fetch_ok),
        cmocka_unit_test(test_file_digest_mismatch),
        cmocka_unit_test(test_file_missing),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_empty_image),
        cmocka_unit_test(test_other_protocols_refused),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_allowed_urls),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
