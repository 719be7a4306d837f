/*
 * Redaction of secrets before anything is stored.
 *
 * Headers (Authorization, Proxy-Authorization, Cookie, Set-Cookie by
 * default, plus configured names, case-insensitive): the value becomes
 * "[REDACTED]". Query parameters (configured names, case-sensitive): the
 * value becomes "REDACTED". JSON fields (configured names) in bodies that
 * look like JSON: a string value's characters become '*' and any other
 * scalar becomes "0" padded with spaces, so the body keeps its length (the
 * Content-Length and chunk sizes stay right) and stays valid JSON. The JSON
 * scan is lexical (it finds "name" followed by ':'), which also works on
 * chunked bodies as long as a value does not straddle a chunk boundary;
 * nested object or array values are left alone.
 *
 * Deliberately left out: compressed bodies (not decoded), form bodies.
 */
#include "capture_int.h"

#include <stdlib.h>
#include <string.h>

static const char *const default_headers[] = {"authorization", "proxy-authorization", "cookie",
                                              "set-cookie"};

static int header_is_secret(const struct repro_redact_rules *r, struct repro_slice name)
{
    size_t i;
    if (!r->no_defaults)
        for (i = 0; i < sizeof default_headers / sizeof *default_headers; i++)
            if (repro_slice_ieq(name, default_headers[i]))
                return 1;
    for (i = 0; i < r->n_headers; i++)
        if (repro_slice_ieq(name, r->headers[i]))
            return 1;
    return 0;
}

/* Whether any header line of the head names a secret header: a cheap scan
 * that spares the full parse for the common message without secrets. */
static int head_mentions_secret(const struct repro_redact_rules *r, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len, *line = memchr(p, '\n', len);

    while (line != NULL && line + 1 < end) {
        const uint8_t *s = line + 1, *colon;
        size_t room = (size_t)(end - s);
        line = memchr(s, '\n', room);
        colon = memchr(s, ':', line ? (size_t)(line - s) : room);
        if (colon != NULL && header_is_secret(r, (struct repro_slice){s, (size_t)(colon - s)}))
            return 1;
    }
    return 0;
}

struct edit {
    size_t off, len;
    const char *with;
};

#define MAX_EDITS 128

static int param_is_secret(const struct repro_redact_rules *r, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < r->n_query_params; i++)
        if (strlen(r->query_params[i]) == n && memcmp(r->query_params[i], p, n) == 0)
            return 1;
    return 0;
}

/* Adds edits for secret query parameter values in the request target. */
static size_t query_edits(const struct repro_redact_rules *r, const uint8_t *base,
                          struct repro_slice target, struct edit *e, size_t n)
{
    const uint8_t *q = memchr(target.ptr, '?', target.len);
    size_t i, end;

    if (q == NULL || r->n_query_params == 0)
        return n;
    i = (size_t)(q - target.ptr) + 1;
    end = target.len;
    while (i < end && n < MAX_EDITS) {
        size_t s = i, eq = 0;
        while (i < end && target.ptr[i] != '&' && target.ptr[i] != '#') {
            if (target.ptr[i] == '=' && eq == 0)
                eq = i;
            i++;
        }
        if (eq > s && param_is_secret(r, target.ptr + s, eq - s) && i > eq + 1) {
            e[n].off = (size_t)(target.ptr + eq + 1 - base);
            e[n].len = i - eq - 1;
            e[n].with = "REDACTED";
            n++;
        }
        if (i < end && target.ptr[i] == '#')
            break;
        i++;
    }
    return n;
}

static int looks_json(const struct repro_http_head *h, const uint8_t *body, size_t len)
{
    size_t i;
    for (i = 0; i < h->n_headers; i++)
        if (repro_slice_ieq(h->headers[i].name, "content-type")) {
            struct repro_slice v = h->headers[i].value;
            size_t k;
            for (k = 0; k + 4 <= v.len; k++)
                if (memcmp(v.ptr + k, "json", 4) == 0)
                    return 1;
        }
    for (i = 0; i < len && i < 64; i++) {
        if (body[i] == '{' || body[i] == '[')
            return 1;
        if (body[i] != ' ' && body[i] != '\r' && body[i] != '\n' && body[i] != '\t')
            break;
    }
    return 0;
}

/* Masks the value after each "name": in b[0..len). Returns how many. */
static int mask_json(const struct repro_redact_rules *r, uint8_t *b, size_t len)
{
    size_t i = 0, f;
    int n = 0;

    while (i < len) {
        uint8_t *q = memchr(b + i, '"', len - i);
        size_t s, e, v;
        if (q == NULL)
            break;
        s = (size_t)(q - b) + 1;
        e = s;
        while (e < len && b[e] != '"') {
            if (b[e] == '\\')
                e++;
            e++;
        }
        if (e >= len)
            break;
        i = e + 1;
        for (v = i; v < len && (b[v] == ' ' || b[v] == '\t' || b[v] == '\r' || b[v] == '\n'); v++)
            ;
        if (v >= len || b[v] != ':')
            continue;
        for (f = 0; f < r->n_json_fields; f++)
            if (strlen(r->json_fields[f]) == e - s && memcmp(r->json_fields[f], b + s, e - s) == 0)
                break;
        if (f == r->n_json_fields)
            continue;
        for (v++; v < len && (b[v] == ' ' || b[v] == '\t' || b[v] == '\r' || b[v] == '\n'); v++)
            ;
        if (v >= len || b[v] == '{' || b[v] == '[')
            continue;
        if (b[v] == '"') {
            size_t k = v + 1;
            while (k < len && b[k] != '"') {
                if (b[k] == '\\' && k + 1 < len)
                    b[k++] = '*';
                b[k++] = '*';
            }
            i = k + 1;
        } else {
            size_t k = v;
            while (k < len && b[k] != ',' && b[k] != '}' && b[k] != ']' && b[k] != ' ' &&
                   b[k] != '\r' && b[k] != '\n' && b[k] != '\t')
                k++;
            if (k > v) {
                b[v] = '0';
                memset(b + v + 1, ' ', k - v - 1);
            }
            i = k;
        }
        n++;
    }
    return n;
}

static int cmp_edit(const void *a, const void *b)
{
    const struct edit *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

int repro__redact(const struct repro_redact_rules *rules, enum repro_http_kind kind,
                  struct repro_slice raw, struct repro_http_info *info, struct repro_buf *out)
{
    struct repro_http_head head, nh;
    struct edit edits[MAX_EDITS];
    size_t n = 0, i, pos = 0, body_off;
    int json = 0, body;

    if (rules->n_query_params == 0 && rules->n_json_fields == 0 &&
        !head_mentions_secret(rules, raw.ptr, info->head_len))
        return 0;
    if (repro_http_parse_head(&head, kind, raw.ptr, info->head_len, info->head_len + 1, NULL,
                              NULL) != REPRO_HTTP_DONE)
        return 0;
    for (i = 0; i < head.n_headers && n < MAX_EDITS; i++) {
        if (head.headers[i].value.len > 0 && header_is_secret(rules, head.headers[i].name)) {
            edits[n].off = (size_t)(head.headers[i].value.ptr - raw.ptr);
            edits[n].len = head.headers[i].value.len;
            edits[n].with = "[REDACTED]";
            n++;
        }
    }
    if (kind == REPRO_HTTP_REQUEST)
        n = query_edits(rules, raw.ptr, head.target, edits, n);
    body_off = info->head_len;
    if (rules->n_json_fields > 0 && raw.len > body_off &&
        looks_json(&head, raw.ptr + body_off, raw.len - body_off))
        json = 1;
    if (n == 0 && !json)
        return 0;

    qsort(edits, n, sizeof *edits, cmp_edit);
    repro_buf_init(out, raw.len + n * 16 + 64);
    for (i = 0; i < n; i++) {
        if (edits[i].off < pos)
            continue;
        if (repro_buf_append(out, raw.ptr + pos, edits[i].off - pos) != REPRO_OK ||
            repro_buf_append(out, edits[i].with, strlen(edits[i].with)) != REPRO_OK)
            goto fail;
        pos = edits[i].off + edits[i].len;
    }
    if (repro_buf_append(out, raw.ptr + pos, raw.len - pos) != REPRO_OK)
        goto fail;
    body_off = (size_t)((ptrdiff_t)info->head_len + (ptrdiff_t)out->len - (ptrdiff_t)raw.len);
    if (json && mask_json(rules, out->data + body_off, out->len - body_off) == 0 && n == 0) {
        repro_buf_release(out);
        return 0;
    }
    if (repro_http_parse_head(&nh, kind, out->data, body_off, body_off + 1, NULL, NULL) !=
        REPRO_HTTP_DONE)
        goto fail;
    body = info->body;
    repro_http_info_from_head(info, &nh, out->data);
    info->body = body;
    return 1;
fail:
    repro_buf_release(out);
    return -1;
}
