/*
 * A small blocking HTTP/1.x client (RFC 9112): connect with a timeout,
 * send one request's bytes, read exactly the one response that answers it.
 * Responses are read with the same framer and pairing rules capture uses,
 * so HEAD, 1xx interim responses, chunked and close-delimited bodies and
 * tunnels are told apart the same way on both sides, and the body digest
 * is the one capture stores.
 *
 * Deliberately left out: TLS, proxies, redirects, retries, pipelining
 * (one request in flight), content decoding. The caller builds requests
 * (see repro_http_head_rewrite()) and decides what to do with a closed
 * connection.
 *
 * Workload: replay and the demo, one connection per simulated client;
 * every wait is poll(2) with what is left of the call's deadline on the
 * monotonic clock.
 */
#include "repro/http.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_MAX_RESPONSE (16u * 1024 * 1024)

/* Milliseconds left until deadline_ns (0 when passed). */
static int left_ms(uint64_t deadline_ns)
{
    uint64_t now = repro_mono_ns();
    uint64_t ms;
    if (now >= deadline_ns)
        return 0;
    ms = (deadline_ns - now + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static uint64_t deadline_of(int timeout_ms)
{
    return repro_mono_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
}

/* Waits for events on fd; 1 ready, 0 timed out, -errno on failure. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        struct pollfd pf = {fd, events, 0};
        int n = poll(&pf, 1, left_ms(deadline_ns));
        if (n > 0)
            return 1;
        if (n == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static int try_connect(const struct addrinfo *ai, uint64_t deadline_ns, int *fd_out)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    ai->ai_protocol);
    int rc, soerr = 0;
    socklen_t sl = sizeof soerr;

    if (fd < 0)
        return errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        goto ok;
    if (errno != EINPROGRESS) {
        rc = errno;
        goto fail;
    }
    rc = wait_fd(fd, POLLOUT, deadline_ns);
    if (rc <= 0) {
        rc = rc == 0 ? ETIMEDOUT : -rc;
        goto fail;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        rc = soerr ? soerr : errno;
        goto fail;
    }
ok:
    *fd_out = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

int repro_http_client_connect(struct repro_http_client *c, const char *host, const char *port,
                              int timeout_ms, size_t max_response, struct repro_error *err)
{
    struct addrinfo hints, *res = NULL, *ai;
    uint64_t deadline = deadline_of(timeout_ms);
    int gai, last = 0;

    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->timeout_ms = timeout_ms;
    c->max_response = max_response ? max_response : DEFAULT_MAX_RESPONSE;
    repro_buf_init(&c->rest, 64 * 1024);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0)
        return repro_error_set(err, REPRO_E_IO, "cannot resolve '%s:%s': %s", host, port,
                               gai_strerror(gai));
    for (ai = res; ai != NULL && c->fd < 0; ai = ai->ai_next)
        last = try_connect(ai, deadline, &c->fd);
    freeaddrinfo(res);
    if (c->fd >= 0)
        return REPRO_OK;
    errno = last;
    return repro_error_sys(err, REPRO_E_IO, "cannot connect to '%s:%s': %s", host, port,
                           strerror(last));
}

void repro_http_client_close(struct repro_http_client *c)
{
    if (c == NULL)
        return;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    repro_buf_release(&c->rest);
}

void repro_http_response_release(struct repro_http_response *r)
{
    if (r == NULL)
        return;
    repro_buf_release(&r->raw);
    repro_buf_release(&r->body);
    memset(r, 0, sizeof *r);
}

static int send_all(struct repro_http_client *c, const uint8_t *p, size_t len,
                    uint64_t deadline, struct repro_error *err)
{
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        int w;
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return repro_error_sys(err, REPRO_E_IO, "cannot send the request: %s",
                                   strerror(errno));
        w = wait_fd(c->fd, POLLOUT, deadline);
        if (w <= 0) {
            errno = w == 0 ? ETIMEDOUT : -w;
            return repro_error_sys(err, REPRO_E_IO, "cannot send the request: %s",
                                   strerror(errno));
        }
    }
    return REPRO_OK;
}

/* What one exchange keeps while it reads. */
struct reading {
    struct repro_http_framer fr;
    struct repro_http_pairer pairer;
    int done; /* the final response was taken */
};

/* A message ended on the framer: keep it if final. */
static int on_message(struct reading *rd, struct repro_http_response *resp, int outcome,
                      struct repro_error *err)
{
    const struct repro_http_msg *m = repro_http_framer_msg(&rd->fr);
    enum repro_http_role role;

    if (outcome == REPRO_HTTP_MALFORMED || (m->flags & REPRO_HTTP_M_MALFORMED))
        return repro_error_set(err, REPRO_E_MALFORMED, "malformed response: %s",
                               m->why ? m->why : "bad framing");
    if (m->flags & REPRO_HTTP_M_TRUNCATED) {
        errno = 0;
        return repro_error_sys(err, REPRO_E_IO,
                               "connection closed before the response ended");
    }
    role = repro_http_pairer_response(&rd->pairer, m->info, m->raw, NULL);
    if (role == REPRO_HTTP_ROLE_INTERIM)
        return REPRO_OK;
    snprintf(resp->interim, sizeof resp->interim, "%s", rd->pairer.interim.statuses);
    repro_http_interim_reset(&rd->pairer.interim);
    resp->has_info = m->info != NULL;
    if (resp->has_info) {
        resp->info = *m->info;
        resp->status = m->info->status;
    }
    resp->flags = m->flags;
    resp->wire_bytes = m->wire_bytes;
    if (m->has_body_digest)
        memcpy(resp->body_digest, m->body_digest, sizeof resp->body_digest);
    repro_http_framer_take_raw(&rd->fr, &resp->raw);
    rd->done = 1;
    return REPRO_OK;
}

/* Feeds p[0..len) to the framer; leftover bytes after the final response
 * are kept in c->rest for the next exchange. */
static int feed(struct repro_http_client *c, struct reading *rd,
                struct repro_http_response *resp, const uint8_t *p, size_t len,
                struct repro_error *err)
{
    size_t off = 0;

    while (off < len && !rd->done) {
        size_t used = 0;
        enum repro_http_outcome o = repro_http_framer_feed(&rd->fr, p + off, len - off,
                                                           repro_wall_us(), &used);
        int rc;
        off += used;
        if (o == REPRO_HTTP_NEED_MORE)
            break;
        rc = on_message(rd, resp, o, err);
        if (rc != REPRO_OK)
            return rc;
    }
    if (off < len && repro_buf_append(&c->rest, p + off, len - off) != REPRO_OK)
        return repro_error_set(err, REPRO_E_LIMIT, "too many bytes after the response");
    return REPRO_OK;
}

static int read_response(struct repro_http_client *c, struct reading *rd,
                         struct repro_http_response *resp, uint64_t deadline,
                         struct repro_error *err)
{
    uint8_t buf[64 * 1024];
    struct repro_buf pending = c->rest;
    int rc;

    /* Bytes read past an earlier response come first. */
    repro_buf_init(&c->rest, pending.max);
    rc = feed(c, rd, resp, pending.data, pending.len, err);
    repro_buf_release(&pending);
    while (rc == REPRO_OK && !rd->done) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n > 0) {
            rc = feed(c, rd, resp, buf, (size_t)n, err);
        } else if (n == 0) {
            if (repro_http_framer_eof(&rd->fr, repro_wall_us()) == REPRO_HTTP_DONE)
                rc = on_message(rd, resp, REPRO_HTTP_DONE, err);
            if (rc == REPRO_OK && !rd->done) {
                errno = 0;
                rc = repro_error_sys(err, REPRO_E_IO, "connection closed before a response");
            }
        } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            int w = wait_fd(c->fd, POLLIN, deadline);
            if (w <= 0) {
                errno = w == 0 ? ETIMEDOUT : -w;
                rc = repro_error_sys(err, REPRO_E_IO, "cannot read the response: %s",
                                     strerror(errno));
            }
        } else {
            rc = repro_error_sys(err, REPRO_E_IO, "cannot read the response: %s",
                                 strerror(errno));
        }
    }
    return rc;
}

int repro_http_client_exchange(struct repro_http_client *c, const uint8_t *req, size_t len,
                               struct repro_http_response *resp, struct repro_error *err)
{
    struct repro_http_head head;
    struct repro_http_info req_info;
    struct repro_http_limits lim;
    struct reading rd;
    uint64_t deadline = deadline_of(c->timeout_ms);
    const char *why = "malformed head";
    int rc;

    memset(resp, 0, sizeof *resp);
    repro_buf_init(&resp->raw, c->max_response);
    repro_buf_init(&resp->body, c->max_response);
    if (c->fd < 0)
        return repro_error_set(err, REPRO_E_INVAL, "the connection is closed");
    if (repro_http_parse_head(&head, REPRO_HTTP_REQUEST, req, len, len + 1, NULL, &why) !=
        REPRO_HTTP_DONE)
        return repro_error_set(err, REPRO_E_MALFORMED, "cannot send a request: %s", why);
    repro_http_info_from_head(&req_info, &head, req);
    repro_http_limits_default(&lim);
    lim.max_store = c->max_response;
    repro_http_framer_init(&rd.fr, REPRO_HTTP_RESPONSE, &lim, 0);
    repro_http_pairer_init(&rd.pairer, &rd.fr, lim.max_head);
    rd.done = 0;
    repro_http_pairer_request(&rd.pairer, head.method);
    rc = send_all(c, req, len, deadline, err);
    if (rc == REPRO_OK)
        rc = read_response(c, &rd, resp, deadline, err);
    if (rc == REPRO_OK && resp->has_info) {
        struct repro_slice b = {resp->raw.data + resp->info.head_len,
                                resp->raw.len - resp->info.head_len};
        if (resp->info.body == REPRO_HTTP_BODY_CHUNKED) {
            int d = repro_http_dechunk(b.ptr, b.len, &resp->body);
            if (d < 0 && d != REPRO_E_LIMIT)
                rc = repro_error_set(err, d, "cannot decode the response body");
        } else if (b.len > 0 && repro_buf_append(&resp->body, b.ptr, b.len) != REPRO_OK) {
            rc = repro_error_set(err, REPRO_E_NOMEM, "cannot keep the response body");
        }
        resp->keep_alive = repro_http_keep_alive(&req_info, &resp->info) && c->rest.len == 0;
    }
    repro_http_pairer_release(&rd.pairer);
    repro_http_framer_release(&rd.fr);
    return rc;
}
