/*
 * Rewriting requests before they are sent: --host, --set-header,
 * --remove-header, --rewrite-path, --set-query, --set-cookie (how staging
 * credentials replace the values capture redacted) and --set-json-field.
 *
 * Heads go through the shared head rewriter (http/http_rewrite.c): every
 * byte not edited is sent as recorded. The target is rewritten as text
 * (path prefix, then query parameters by their raw name); the Cookie
 * header by cookie name (a header capture redacted whole becomes just the
 * cookies given); a JSON body is parsed with jansson, the fields set, and
 * written compact with a new Content-Length.
 *
 * Left out: bodies other than JSON (forms), percent-encoding the values
 * given (pass them encoded).
 */
#include "repro/replay.h"

#include "repro/http.h"

#include "jpath.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EDITS 64

struct kv {
    char *name, *value;
};

struct json_set {
    struct jpath path;
    json_t *value;
};

struct repro_replay_rewrite {
    char *host;
    struct kv *set_h, *paths, *queries, *cookies;
    size_t n_set_h, n_paths, n_queries, n_cookies;
    char **rm_h;
    size_t n_rm_h;
    struct json_set *json;
    size_t n_json;
};

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || strchr("!#$%&'*+-.^_`|~", s[i])))
            return 0;
    return 1;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static void kv_release(struct kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        repro_free(v[i].name);
        repro_free(v[i].value);
    }
    repro_free(v);
}

void repro_replay_rewrite_free(struct repro_replay_rewrite *rw)
{
    if (!rw)
        return;
    repro_free(rw->host);
    kv_release(rw->set_h, rw->n_set_h);
    kv_release(rw->paths, rw->n_paths);
    kv_release(rw->queries, rw->n_queries);
    kv_release(rw->cookies, rw->n_cookies);
    for (size_t i = 0; i < rw->n_rm_h; i++)
        repro_free(rw->rm_h[i]);
    repro_free(rw->rm_h);
    for (size_t i = 0; i < rw->n_json; i++) {
        repro__jpath_release(&rw->json[i].path);
        json_decref(rw->json[i].value);
    }
    repro_free(rw->json);
    repro_free(rw);
}

/* Splits each "A<sep>B" of in[0..n) into *out. what names the option. */
static int split_all(const char *const *in, size_t n, char sep, const char *what, struct kv **out,
                     size_t *n_out, struct repro_error *err)
{
    *n_out = 0;
    *out = n ? repro_calloc(n, sizeof **out) : NULL;
    if (n && !*out)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *s = in[i], *at = strchr(s, sep);
        if (!at || at == s || has_ctl(s))
            return repro_error_set(err, REPRO_E_INVAL, "cannot use %s '%s': expected %s", what, s,
                                   sep == ':' ? "'Name: value'" : "NAME=VALUE");
        const char *v = at + 1;
        while (sep == ':' && *v == ' ')
            v++;
        (*out)[i].name = repro_strndup(s, (size_t)(at - s));
        (*out)[i].value = repro_strndup(v, strlen(v));
        (*n_out)++;
        if (!(*out)[i].name || !(*out)[i].value)
            return repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
        if (sep == ':' && !is_token((*out)[i].name, strlen((*out)[i].name)))
            return repro_error_set(err, REPRO_E_INVAL, "cannot use %s '%s': '%s' is not a header name",
                                   what, s, (*out)[i].name);
    }
    return REPRO_OK;
}

int repro_replay_rewrite_new(const struct repro_replay_rewrite_opts *o,
                             struct repro_replay_rewrite **out, struct repro_error *err)
{
    struct repro_replay_rewrite *rw;
    int rc;

    *out = NULL;
    if (!o || (!o->host && !o->n_set_headers && !o->n_remove_headers && !o->n_rewrite_paths &&
               !o->n_set_queries && !o->n_set_cookies && !o->n_set_json_fields))
        return REPRO_OK;
    if (o->n_set_headers + o->n_remove_headers + 4 > MAX_EDITS)
        return repro_error_set(err, REPRO_E_INVAL, "cannot rewrite: at most %d header options",
                               MAX_EDITS - 4);
    rw = repro_calloc(1, sizeof *rw);
    if (!rw)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
    if (o->host && (!*o->host || has_ctl(o->host) || strchr(o->host, ' '))) {
        rc = repro_error_set(err, REPRO_E_INVAL, "cannot use --host '%s'", o->host);
        goto fail;
    }
    if (o->host && !(rw->host = repro_strndup(o->host, strlen(o->host)))) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
        goto fail;
    }
    if ((rc = split_all(o->set_headers, o->n_set_headers, ':', "--set-header", &rw->set_h,
                        &rw->n_set_h, err)) != REPRO_OK ||
        (rc = split_all(o->rewrite_paths, o->n_rewrite_paths, '=', "--rewrite-path", &rw->paths,
                        &rw->n_paths, err)) != REPRO_OK ||
        (rc = split_all(o->set_queries, o->n_set_queries, '=', "--set-query", &rw->queries,
                        &rw->n_queries, err)) != REPRO_OK ||
        (rc = split_all(o->set_cookies, o->n_set_cookies, '=', "--set-cookie", &rw->cookies,
                        &rw->n_cookies, err)) != REPRO_OK)
        goto fail;
    for (size_t i = 0; i < rw->n_paths; i++)
        if (rw->paths[i].name[0] != '/' || rw->paths[i].value[0] != '/' ||
            strpbrk(rw->paths[i].value, " ")) {
            rc = repro_error_set(err, REPRO_E_INVAL,
                                 "cannot use --rewrite-path '%s=%s': both sides are paths from '/'",
                                 rw->paths[i].name, rw->paths[i].value);
            goto fail;
        }
    rw->rm_h = o->n_remove_headers ? repro_calloc(o->n_remove_headers, sizeof *rw->rm_h) : NULL;
    for (size_t i = 0; i < o->n_remove_headers; i++) {
        const char *h = o->remove_headers[i];
        if (!is_token(h, strlen(h))) {
            rc = repro_error_set(err, REPRO_E_INVAL, "cannot use --remove-header '%s': not a header name", h);
            goto fail;
        }
        if (!rw->rm_h || !(rw->rm_h[i] = repro_strndup(h, strlen(h)))) {
            rc = repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
            goto fail;
        }
        rw->n_rm_h++;
    }
    rw->json = o->n_set_json_fields ? repro_calloc(o->n_set_json_fields, sizeof *rw->json) : NULL;
    for (size_t i = 0; i < o->n_set_json_fields; i++) {
        const char *s = o->set_json_fields[i], *eq = strchr(s, '=');
        char path[1024];
        if (!rw->json) {
            rc = repro_error_set(err, REPRO_E_NOMEM, "cannot set up rewriting: out of memory");
            goto fail;
        }
        if (!eq || (size_t)(eq - s) >= sizeof path) {
            rc = repro_error_set(err, REPRO_E_INVAL, "cannot use --set-json-field '%s': expected PATH=VALUE", s);
            goto fail;
        }
        memcpy(path, s, (size_t)(eq - s));
        path[eq - s] = 0;
        if ((rc = repro__jpath_parse(path, &rw->json[i].path, err)) != REPRO_OK)
            goto fail;
        rw->n_json++;
        for (size_t k = 0; k < rw->json[i].path.n; k++)
            if (rw->json[i].path.segs[k].kind == SEG_ANY_KEY ||
                rw->json[i].path.segs[k].kind == SEG_ANY_INDEX) {
                rc = repro_error_set(err, REPRO_E_INVAL,
                                     "cannot use --set-json-field '%s': no wildcards in a path to set", s);
                goto fail;
            }
        rw->json[i].value = json_loads(eq + 1, JSON_DECODE_ANY, NULL);
        if (!rw->json[i].value)
            rw->json[i].value = json_string(eq + 1);
        if (!rw->json[i].value) {
            rc = repro_error_set(err, REPRO_E_INVAL, "cannot use --set-json-field '%s': the value is not UTF-8", s);
            goto fail;
        }
    }
    *out = rw;
    return REPRO_OK;
fail:
    repro_replay_rewrite_free(rw);
    return rc;
}

/* ---- applying ------------------------------------------------------------- */

/* The new target into t; 1 when it changed. */
static int new_target(const struct repro_replay_rewrite *rw, struct repro_slice target,
                      struct repro_buf *t)
{
    const char *p = (const char *)target.ptr;
    size_t len = target.len;
    const char *q = memchr(p, '?', len);
    size_t path_len = q ? (size_t)(q - p) : len;
    int changed = 0;

    repro_buf_reset(t);
    for (size_t i = 0; i < rw->n_paths; i++) {
        size_t fl = strlen(rw->paths[i].name);
        if (path_len >= fl && memcmp(p, rw->paths[i].name, fl) == 0) {
            repro_buf_append(t, rw->paths[i].value, strlen(rw->paths[i].value));
            repro_buf_append(t, p + fl, path_len - fl);
            changed = 1;
            break;
        }
    }
    if (!changed)
        repro_buf_append(t, p, path_len);
    /* query: name=value pairs by raw name */
    const char *query = q ? q + 1 : NULL;
    size_t qlen = q ? len - path_len - 1 : 0;
    int first = 1;
    uint8_t *done = rw->n_queries ? repro_calloc(rw->n_queries, 1) : NULL;
    for (size_t off = 0; query && off <= qlen;) {
        const char *amp = memchr(query + off, '&', qlen - off);
        size_t pl = amp ? (size_t)(amp - (query + off)) : qlen - off;
        const char *pair = query + off, *eq = memchr(pair, '=', pl);
        size_t nl = eq ? (size_t)(eq - pair) : pl;
        const char *val = NULL;
        for (size_t i = 0; i < rw->n_queries; i++)
            if (strlen(rw->queries[i].name) == nl && memcmp(rw->queries[i].name, pair, nl) == 0) {
                val = rw->queries[i].value;
                if (done)
                    done[i] = 1;
            }
        repro_buf_append(t, first ? "?" : "&", 1);
        first = 0;
        if (val) {
            repro_buf_printf(t, "%.*s=%s", (int)nl, pair, val);
            changed = 1;
        } else {
            repro_buf_append(t, pair, pl);
        }
        if (!amp)
            break;
        off += pl + 1;
    }
    for (size_t i = 0; i < rw->n_queries; i++)
        if (!done || !done[i]) {
            repro_buf_printf(t, "%s%s=%s", first ? "?" : "&", rw->queries[i].name,
                             rw->queries[i].value);
            first = 0;
            changed = 1;
        }
    repro_free(done);
    return changed;
}

/* The new Cookie value into c. */
static void new_cookie(const struct repro_replay_rewrite *rw, const struct repro_http_header *h,
                       struct repro_buf *c)
{
    uint8_t done[64] = {0};
    repro_buf_reset(c);
    if (h && !repro_slice_ieq(h->value, REPRO_REDACT_MARK)) {
        const char *p = (const char *)h->value.ptr, *end = p + h->value.len;
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end, *eq = memchr(p, '=', (size_t)(stop - p));
            size_t nl = eq ? (size_t)(eq - p) : (size_t)(stop - p);
            const char *val = NULL;
            for (size_t i = 0; i < rw->n_cookies; i++)
                if (strlen(rw->cookies[i].name) == nl && memcmp(rw->cookies[i].name, p, nl) == 0) {
                    val = rw->cookies[i].value;
                    if (i < sizeof done)
                        done[i] = 1;
                }
            if (c->len)
                repro_buf_append(c, "; ", 2);
            if (val)
                repro_buf_printf(c, "%.*s=%s", (int)nl, p, val);
            else
                repro_buf_append(c, p, (size_t)(stop - p));
            p = semi ? semi + 1 : end;
            while (p < end && *p == ' ')
                p++;
        }
    }
    for (size_t i = 0; i < rw->n_cookies; i++)
        if (i >= sizeof done || !done[i])
            repro_buf_printf(c, "%s%s=%s", c->len ? "; " : "", rw->cookies[i].name,
                             rw->cookies[i].value);
}

/* Sets path to value in root (the last key may be new); 0 when the path
 * does not lead anywhere. */
static int json_set(json_t *root, const struct jpath *p, json_t *value)
{
    json_t *x = root;
    for (size_t i = 0; i + 1 < p->n && x; i++)
        x = p->segs[i].kind == SEG_KEY ? json_object_get(x, p->segs[i].name)
                                       : json_array_get(x, p->segs[i].index);
    if (!x)
        return 0;
    const struct seg *last = &p->segs[p->n - 1];
    if (last->kind == SEG_KEY && json_is_object(x))
        return json_object_set(x, last->name, value) == 0;
    if (last->kind == SEG_INDEX && json_is_array(x) && last->index < json_array_size(x))
        return json_array_set(x, last->index, value) == 0;
    return 0;
}

int repro_replay_rewrite_apply(const struct repro_replay_rewrite *rw, struct repro_slice in,
                               struct repro_buf *out, struct repro_error *err)
{
    struct repro_http_head *h = repro_malloc(sizeof *h);
    struct repro_http_edit edits[MAX_EDITS];
    struct repro_buf target, cookie, body, clen;
    size_t n = 0, head_len = 0;
    int rc = REPRO_OK;
    char *json_text = NULL;

    repro_buf_reset(out);
    repro_buf_init(&target, 1u << 20);
    repro_buf_init(&cookie, 1u << 20);
    repro_buf_init(&body, 64u << 20);
    repro_buf_init(&clen, 64);
    if (!h) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "cannot rewrite a request: out of memory");
        goto out;
    }
    if (repro_http_parse_head(h, REPRO_HTTP_REQUEST, in.ptr, in.len, in.len, NULL, NULL) !=
        REPRO_HTTP_DONE) {
        rc = repro_error_set(err, REPRO_E_MALFORMED, "cannot rewrite a request whose head does not parse");
        goto out;
    }
    if (rw->host)
        edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_HOST,
                                              .value = {(const uint8_t *)rw->host, strlen(rw->host)}};
    for (size_t i = 0; i < rw->n_set_h; i++)
        edits[n++] = (struct repro_http_edit){
            .op = REPRO_HTTP_EDIT_SET, .name = rw->set_h[i].name,
            .value = {(const uint8_t *)rw->set_h[i].value, strlen(rw->set_h[i].value)}};
    for (size_t i = 0; i < rw->n_rm_h; i++)
        edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_REMOVE, .name = rw->rm_h[i]};
    if ((rw->n_paths || rw->n_queries) && new_target(rw, h->target, &target))
        edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_TARGET,
                                              .value = {target.data, target.len}};
    if (rw->n_cookies) {
        new_cookie(rw, repro_http_find_header(h, "cookie"), &cookie);
        edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_SET, .name = "Cookie",
                                              .value = {cookie.data, cookie.len}};
    }
    struct repro_slice rest = {in.ptr + h->head_len, in.len - h->head_len};
    if (rw->n_json && rest.len) {
        struct repro_slice b = repro_http_message_body(in, h, &body);
        json_t *j = json_loadb((const char *)b.ptr, b.len, 0, NULL);
        int set = 0;
        for (size_t i = 0; j && i < rw->n_json; i++)
            set |= json_set(j, &rw->json[i].path, rw->json[i].value);
        if (set && (json_text = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL) {
            rest = (struct repro_slice){(const uint8_t *)json_text, strlen(json_text)};
            repro_buf_printf(&clen, "%zu", rest.len);
            edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_SET, .name = "Content-Length",
                                                  .value = {clen.data, clen.len}};
            edits[n++] = (struct repro_http_edit){.op = REPRO_HTTP_EDIT_REMOVE,
                                                  .name = "Transfer-Encoding"};
        }
        json_decref(j);
    }
    if ((rc = repro_http_head_rewrite(REPRO_HTTP_REQUEST, in.ptr, in.len, edits, n, out,
                                      &head_len, err)) == REPRO_OK &&
        (rc = repro_buf_append(out, rest.ptr, rest.len)) != REPRO_OK)
        repro_error_set(err, rc, "cannot rewrite a request: out of memory");
out:
    repro_free(json_text);
    repro_buf_release(&clen);
    repro_buf_release(&body);
    repro_buf_release(&cookie);
    repro_buf_release(&target);
    repro_free(h);
    return rc;
}
