/*
 * Unit tests for http/http_client.c against a real server: a thread in
 * this process listening on an ephemeral loopback port, answering each
 * request it reads with the next scripted response. No fixed ports, no
 * sleeps: the hang case waits for the client's timeout, then its close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "repro/http.h"
#include "test_util.h"

/* What the server does after reading a request. */
struct step {
    const char *reply; /* sent as is; NULL: send nothing */
    int then;          /* 0 keep reading, 1 close, 2 wait for the client to close */
};

struct server {
    int lfd;
    char port[16];
    const struct step *steps;
    size_t n_steps;
    pthread_t th;
    char last_request[1024];
};

/* Reads one request head (and a Content-Length body, if any). 0 at EOF. */
static int read_request(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    {
        const char *cl = strstr(buf, "Content-Length: ");
        size_t want = (size_t)(end + 4 - buf) + (cl ? (size_t)atoi(cl + 16) : 0);
        while (got < want) {
            ssize_t n = read(fd, buf + got, cap - 1 - got);
            if (n <= 0)
                return 0;
            got += (size_t)n;
        }
    }
    return 1;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    size_t i = 0;
    int fd = -1;
    char buf[1024], sink[256];

    while (i < s->n_steps) {
        if (fd < 0 && (fd = accept(s->lfd, NULL, NULL)) < 0)
            break;
        if (!read_request(fd, buf, sizeof buf)) {
            close(fd);
            fd = -1;
            continue;
        }
        snprintf(s->last_request, sizeof s->last_request, "%s", buf);
        if (s->steps[i].reply != NULL &&
            write(fd, s->steps[i].reply, strlen(s->steps[i].reply)) < 0)
            break;
        if (s->steps[i].then == 2)
            while (read(fd, sink, sizeof sink) > 0)
                ;
        if (s->steps[i].then != 0) {
            close(fd);
            fd = -1;
        }
        i++;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void server_start(struct server *s, const struct step *steps, size_t n)
{
    struct sockaddr_in a;
    socklen_t al = sizeof a;

    memset(s, 0, sizeof *s);
    s->steps = steps;
    s->n_steps = n;
    s->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->lfd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    snprintf(s->port, sizeof s->port, "%u", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&s->th, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

static void hex(char out[65], const uint8_t d[32])
{
    size_t i;
    for (i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int exchange(struct repro_http_client *c, const char *req, struct repro_http_response *r,
                    struct repro_error *err)
{
    return repro_http_client_exchange(c, (const uint8_t *)req, strlen(req), r, err);
}

static void test_keep_alive_head_interim_chunked(void **state)
{
    static const struct step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0}, /* HEAD: no body follows */
        {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
         "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
         "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
         0},
        {"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", 1},
    };
    struct server s;
    struct repro_http_client c;
    struct repro_http_response r;
    struct repro_error err = {0};
    char h[65];
    (void)state;

    server_start(&s, steps, 4);
    assert_int_equal(repro_http_client_connect(&c, "127.0.0.1", s.port, 5000, 0, &err), REPRO_OK);
    assert_int_equal(exchange(&c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", &r, &err), REPRO_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 5);
    assert_memory_equal(r.body.data, "hello", 5);
    assert_true(r.keep_alive);
    hex(h, r.body_digest); /* hashlib.sha256(b"hello") */
    assert_string_equal(h, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    repro_http_response_release(&r);

    assert_int_equal(exchange(&c, "HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", &r, &err), REPRO_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_true(r.keep_alive);
    repro_http_response_release(&r);

    assert_int_equal(exchange(&c, "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  "Expect: 100-continue\r\n\r\nhi",
                              &r, &err),
                     REPRO_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.interim, "100,103");
    assert_int_equal(r.body.len, 11);
    assert_memory_equal(r.body.data, "hello world", 11);
    hex(h, r.body_digest); /* hashlib.sha256(b"hello world") */
    assert_string_equal(h, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    assert_memory_equal(r.raw.data, "HTTP/1.1 201", 12);
    assert_true(r.keep_alive);
    repro_http_response_release(&r);

    assert_int_equal(exchange(&c, "DELETE /c HTTP/1.1\r\nHost: x\r\n\r\n", &r, &err), REPRO_OK);
    assert_int_equal(r.status, 204);
    assert_false(r.keep_alive);
    repro_http_response_release(&r);
    assert_non_null(strstr(s.last_request, "DELETE /c"));
    repro_http_client_close(&c);
    server_stop(&s);
}

static void test_close_delimited_and_http10(void **state)
{
    static const struct step steps[] = {
        {"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", 1},
    };
    struct server s;
    struct repro_http_client c;
    struct repro_http_response r;
    struct repro_error err = {0};
    (void)state;

    server_start(&s, steps, 1);
    assert_int_equal(repro_http_client_connect(&c, "localhost", s.port, 5000, 0, &err), REPRO_OK);
    assert_int_equal(exchange(&c, "GET / HTTP/1.0\r\n\r\n", &r, &err), REPRO_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.info.body, REPRO_HTTP_BODY_CLOSE);
    assert_int_equal(r.body.len, 13);
    assert_false(r.keep_alive);
    repro_http_response_release(&r);
    repro_http_client_close(&c);
    server_stop(&s);
}

static void test_failures(void **state)
{
    static const struct step steps[] = {
        {NULL, 1},                                         /* closes without answering */
        {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1}, /* closes mid-body */
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n", 2}, /* never sends the body */
        {"SSH-2.0-OpenSSH\r\n\r\n", 1},                    /* not HTTP */
    };
    struct server s;
    struct repro_http_client c;
    struct repro_http_response r;
    struct repro_error err;
    int i;
    (void)state;

    server_start(&s, steps, 4);
    for (i = 0; i < 4; i++) {
        memset(&err, 0, sizeof err);
        assert_int_equal(repro_http_client_connect(&c, "127.0.0.1", s.port, 300, 0, &err),
                         REPRO_OK);
        assert_int_equal(exchange(&c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r, &err),
                         i == 3 ? REPRO_E_MALFORMED : REPRO_E_IO);
        if (i == 0)
            assert_non_null(strstr(err.msg, "closed before a response"));
        if (i == 1)
            assert_non_null(strstr(err.msg, "closed before the response ended"));
        if (i == 2)
            assert_int_equal(err.sys_errno, ETIMEDOUT);
        repro_http_response_release(&r);
        repro_http_client_close(&c);
    }
    server_stop(&s);

    /* A request that is not HTTP is refused before anything is sent. */
    memset(&err, 0, sizeof err);
    c.fd = 0; /* never used: the head is checked first */
    memset(&c.rest, 0, sizeof c.rest);
    assert_int_equal(exchange(&c, "hello\r\n\r\n", &r, &err), REPRO_E_MALFORMED);
    repro_http_response_release(&r);
}

static void test_connect_refused(void **state)
{
    struct server s;
    struct repro_http_client c;
    struct repro_error err = {0};
    (void)state;

    /* A port that was just listened on and closed refuses connections. */
    server_start(&s, NULL, 0);
    server_stop(&s);
    assert_int_equal(repro_http_client_connect(&c, "127.0.0.1", s.port, 1000, 0, &err),
                     REPRO_E_IO);
    assert_int_equal(c.fd, -1);
    assert_non_null(strstr(err.msg, "cannot connect"));
    repro_http_client_close(&c);
    memset(&err, 0, sizeof err);
    assert_int_equal(repro_http_client_connect(&c, "no-such-host.invalid", "80", 1000, 0, &err),
                     REPRO_E_IO);
    repro_http_client_close(&c);
}

static void test_keep_alive_rules(void **state)
{
    static const struct {
        const char *desc;
        int req_minor, resp_minor;
        unsigned req_flags, resp_flags;
        int body, want;
    } cases[] = {
        {"1.1 both: persistent", 1, 1, 0, 0, REPRO_HTTP_BODY_LENGTH, 1},
        {"close in the request", 1, 1, REPRO_HTTP_H_CONN_CLOSE, 0, REPRO_HTTP_BODY_LENGTH, 0},
        {"close in the response", 1, 1, 0, REPRO_HTTP_H_CONN_CLOSE, REPRO_HTTP_BODY_NONE, 0},
        {"close-delimited body", 1, 1, 0, 0, REPRO_HTTP_BODY_CLOSE, 0},
        {"101 tunnel", 1, 1, 0, 0, REPRO_HTTP_BODY_TUNNEL, 0},
        {"1.0 response without keep-alive", 1, 0, 0, 0, REPRO_HTTP_BODY_LENGTH, 0},
        {"1.0 both with keep-alive", 0, 0, REPRO_HTTP_H_CONN_KEEPALIVE,
         REPRO_HTTP_H_CONN_KEEPALIVE, REPRO_HTTP_BODY_LENGTH, 1},
        {"1.0 request without keep-alive", 0, 1, 0, REPRO_HTTP_H_CONN_KEEPALIVE,
         REPRO_HTTP_BODY_LENGTH, 0},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_http_info rq, rs;
        memset(&rq, 0, sizeof rq);
        memset(&rs, 0, sizeof rs);
        rq.version_major = rs.version_major = 1;
        rq.version_minor = cases[i].req_minor;
        rs.version_minor = cases[i].resp_minor;
        rq.flags = cases[i].req_flags;
        rs.flags = cases[i].resp_flags;
        rs.body = cases[i].body;
        rs.status = 200;
        if (repro_http_keep_alive(&rq, &rs) != cases[i].want)
            fail_msg("case '%s'", cases[i].desc);
    }
    assert_int_equal(repro_http_keep_alive(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_alive_rules),
        cmocka_unit_test(test_keep_alive_head_interim_chunked),
        cmocka_unit_test(test_close_delimited_and_http10),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
