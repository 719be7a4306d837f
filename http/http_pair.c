/*
 * Pairing responses with requests by message order (RFC 9112 section 9.3:
 * a server answers requests in the order they arrived, pipelined ones
 * included; RFC 9110 section 15.2: any number of 1xx interim responses may
 * come before the final one).
 *
 * Three small pieces, used by both sides:
 *  - repro_http_response_role(): interim, final or tunnel (101, 2xx to
 *    CONNECT: RFC 9110 sections 9.3.6 and 15.2.2);
 *  - struct repro_http_interim: the 1xx responses of the request being
 *    answered, kept to go in front of the final response;
 *  - struct repro_http_pairer: a FIFO of the waiting requests' methods for a
 *    connection seen in full (a client). It tells the response framer the
 *    method of the request the next response answers, since HEAD and
 *    CONNECT change how a response is framed.
 *
 * Deliberately left out: placing responses after packet loss. Capture keeps
 * its own queue with TCP evidence (capture/http_conn.c) and uses the role
 * and interim pieces from here.
 */
#include "repro/http.h"

#include <stdio.h>
#include <string.h>

enum repro_http_role repro_http_response_role(const struct repro_http_info *info)
{
    if (info == NULL)
        return REPRO_HTTP_ROLE_FINAL;
    if (info->status >= 100 && info->status < 200 && info->status != 101)
        return REPRO_HTTP_ROLE_INTERIM;
    if (info->body == REPRO_HTTP_BODY_TUNNEL)
        return REPRO_HTTP_ROLE_TUNNEL;
    return REPRO_HTTP_ROLE_FINAL;
}

void repro_http_interim_init(struct repro_http_interim *it, size_t max_bytes,
                             struct repro_budget *budget)
{
    repro_buf_init(&it->raw, max_bytes);
    it->statuses[0] = '\0';
    it->budget = budget;
}

void repro_http_interim_release(struct repro_http_interim *it)
{
    if (it == NULL)
        return;
    repro_budget_give(it->budget, it->raw.len);
    repro_buf_release(&it->raw);
    it->statuses[0] = '\0';
}

void repro_http_interim_reset(struct repro_http_interim *it)
{
    repro_budget_give(it->budget, it->raw.len);
    repro_buf_reset(&it->raw);
    it->statuses[0] = '\0';
}

void repro_http_interim_add(struct repro_http_interim *it, int status, struct repro_slice raw)
{
    size_t n = strlen(it->statuses);

    snprintf(it->statuses + n, sizeof it->statuses - n, "%s%d", n ? "," : "", status);
    if (repro_budget_take(it->budget, raw.len) &&
        repro_buf_append(&it->raw, raw.ptr, raw.len) != REPRO_OK)
        repro_budget_give(it->budget, raw.len);
}

size_t repro_http_interim_attach(struct repro_http_interim *it, struct repro_buf *raw,
                                 struct repro_http_info *info, uint64_t *wire_bytes,
                                 char *statuses, size_t n)
{
    struct repro_buf *pre = &it->raw;
    size_t shift = 0;

    if (statuses != NULL && n > 0) {
        /* a copy, not printf: this runs for every final response */
        size_t k = strnlen(it->statuses, n - 1);
        memcpy(statuses, it->statuses, k);
        statuses[k] = '\0';
    }
    it->statuses[0] = '\0';
    if (pre->len == 0)
        return 0;
    if (repro_buf_append(pre, raw->data, raw->len) == REPRO_OK) {
        struct repro_buf tmp = *raw;
        shift = pre->len - raw->len;
        *raw = *pre;
        *pre = tmp; /* keeps the old buffer's memory for the next interim */
        if (info != NULL) {
            info->reason.off += (uint32_t)shift;
            info->target.off += (uint32_t)shift;
            info->method.off += (uint32_t)shift;
            info->host.off += (uint32_t)shift;
            if (info->content_type.off > 0)
                info->content_type.off += (uint32_t)shift;
            if (info->content_encoding.off > 0)
                info->content_encoding.off += (uint32_t)shift;
        }
        if (wire_bytes != NULL)
            *wire_bytes += shift;
    } else {
        repro_budget_give(it->budget, pre->len);
    }
    repro_buf_reset(pre);
    return shift;
}

/* Tells the response framer which request the next response answers. */
static void steer(struct repro_http_pairer *p)
{
    const char *m = p->n_waiting ? p->methods[p->head] : NULL;
    if (p->resp != NULL)
        repro_http_framer_set_request_method(p->resp, m, m ? strlen(m) : 0);
}

void repro_http_pairer_init(struct repro_http_pairer *p, struct repro_http_framer *resp,
                            size_t max_interim)
{
    memset(p, 0, sizeof *p);
    p->resp = resp;
    repro_http_interim_init(&p->interim, max_interim, NULL);
    steer(p);
}

void repro_http_pairer_release(struct repro_http_pairer *p)
{
    if (p == NULL)
        return;
    repro_http_interim_release(&p->interim);
}

int repro_http_pairer_request(struct repro_http_pairer *p, struct repro_slice method)
{
    char *slot;
    size_t n = method.len < sizeof p->methods[0] ? method.len : 0;

    if (p->n_waiting >= REPRO_HTTP_PAIRER_DEPTH)
        return REPRO_E_LIMIT;
    slot = p->methods[(p->head + p->n_waiting) % REPRO_HTTP_PAIRER_DEPTH];
    if (n > 0)
        memcpy(slot, method.ptr, n);
    slot[n] = '\0'; /* an over-long method is unknown: framed like GET */
    p->n_waiting++;
    steer(p);
    return REPRO_OK;
}

enum repro_http_role repro_http_pairer_response(struct repro_http_pairer *p,
                                                const struct repro_http_info *info,
                                                struct repro_slice raw, int *answered)
{
    enum repro_http_role role = repro_http_response_role(info);

    if (answered != NULL)
        *answered = 0;
    if (role == REPRO_HTTP_ROLE_INTERIM) {
        repro_http_interim_add(&p->interim, info->status, raw);
        return role;
    }
    if (p->n_waiting > 0) {
        p->head = (p->head + 1) % REPRO_HTTP_PAIRER_DEPTH;
        p->n_waiting--;
        if (answered != NULL)
            *answered = 1;
    }
    if (role == REPRO_HTTP_ROLE_TUNNEL)
        p->tunnel = 1;
    steer(p);
    return role;
}

unsigned repro_http_pairer_waiting(const struct repro_http_pairer *p)
{
    return p->n_waiting;
}

int repro_http_keep_alive(const struct repro_http_info *req, const struct repro_http_info *resp)
{
    int req_10, resp_10;

    if (resp == NULL)
        return 0;
    /* A close-delimited body ends only with the connection; after 101 or a
     * CONNECT tunnel the connection no longer speaks HTTP. */
    if (resp->body == REPRO_HTTP_BODY_CLOSE || resp->body == REPRO_HTTP_BODY_TUNNEL)
        return 0;
    if (resp->flags & REPRO_HTTP_H_CONN_CLOSE)
        return 0;
    if (req != NULL && (req->flags & REPRO_HTTP_H_CONN_CLOSE))
        return 0; /* the server must close after answering (RFC 9112 9.6) */
    resp_10 = resp->version_major < 1 || (resp->version_major == 1 && resp->version_minor == 0);
    req_10 = req != NULL &&
             (req->version_major < 1 || (req->version_major == 1 && req->version_minor == 0));
    /* HTTP/1.0 persists only by the keep-alive token (RFC 9112 9.3 and
     * appendix C.2.2): the server's answer, and the client's request. */
    if (resp_10 && !(resp->flags & REPRO_HTTP_H_CONN_KEEPALIVE))
        return 0;
    if (req_10 && !(req->flags & REPRO_HTTP_H_CONN_KEEPALIVE))
        return 0;
    return 1;
}
