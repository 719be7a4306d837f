/*
 * Correlation of dynamic values: a value a recorded response introduced
 * and later requests of the same client reuse is replaced, at replay time,
 * by the value staging gave in the same place (goreplay#154, #321, #609
 * ask for this; no open-source replayer does it).
 *
 * What is learned (from the recording, before the run):
 *   - tokens: each Location header and each JSON leaf (string or integer)
 *     of each recorded response, kept only when a later request of the
 *     same client (sent after that response completed) reuses it: verbatim
 *     (a run of at least 4 bytes, not inside a longer word), or, when
 *     capture redacted it, by name (a JSON member, a query or form field,
 *     or a header of that name that holds the redaction mark).
 * What is observed (during the run, from staging responses):
 *   - each token's staging value: the Location, or the JSON leaf at the
 *     same path;
 *   - a cookie jar per client: every Set-Cookie staging sends.
 * What is applied (just before a request is sent):
 *   - tokens of the same client whose response completed before this
 *     request was sent in the recording (the causal order of the run
 *     guarantees the staging response is in) and whose staging value is
 *     known;
 *   - the jar: a redacted Cookie header becomes the cookies staging set for
 *     that client; a clear one has the values of cookies staging set
 *     replaced;
 *   - Content-Length is fixed when the body changed (chunked bodies are
 *     left alone).
 * Verbatim substitution only touches values made of URL- and JSON-safe
 * bytes (ids, tokens), so replacing them never breaks the syntax around.
 *
 * Left out: values a client computes from a response (a hash, a sum),
 * HTML forms, cookies' Path/Domain/Expiry (the jar keeps name=value only).
 */
#include "repro/replay.h"

#include "repro/http.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIN_VERBATIM 4
#define MAX_VALUE 4096
#define MAX_LEAVES 512
#define MAX_PATH 16
#define MARK REPRO_REDACT_MARK
#define MARK_LEN (sizeof MARK - 1)

enum tok_kind { TOK_LOCATION, TOK_JSON };

struct pseg {
    char *key; /* NULL: index */
    size_t index;
};

struct token {
    size_t src;
    int64_t client, avail_us;
    enum tok_kind kind;
    char *name;
    struct pseg path[MAX_PATH];
    size_t n_path;
    char *rec; /* recorded value (string content, or integer text) */
    char *stg; /* staging value, NULL until observed */
};

struct cookie {
    int64_t client;
    char *name, *value;
};

struct repro_correlator {
    pthread_mutex_t m;
    size_t n;
    int64_t *client, *sent_us;
    uint8_t *is_source; /* per input: some token comes from its response */
    struct token *tok;
    size_t n_tok;
    struct cookie *jar;
    size_t n_jar;
};

/* ---- small helpers ------------------------------------------------------- */

static int word_byte(int c)
{
    return isalnum(c) || c == '_' || c == '-';
}

/* Bytes that need no escaping in a URL or a JSON string. */
static int safe_value(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.~:/+=", *s))
            return 0;
    return 1;
}

/* Header names compare without case, '_' as '-', and an "x-" prefix. */
static int same_field(const char *a, size_t al, const char *b, size_t bl)
{
    if (al > 2 && strncasecmp(a, "x-", 2) == 0)
        a += 2, al -= 2;
    if (bl > 2 && strncasecmp(b, "x-", 2) == 0)
        b += 2, bl -= 2;
    if (al != bl)
        return 0;
    for (size_t i = 0; i < al; i++) {
        int x = tolower((unsigned char)a[i]), y = tolower((unsigned char)b[i]);
        if (x == '_')
            x = '-';
        if (y == '_')
            y = '-';
        if (x != y)
            return 0;
    }
    return 1;
}

/* A Location as a path (scheme and authority dropped). */
static char *location_path(struct repro_slice v)
{
    const char *p = (const char *)v.ptr, *end = p + v.len;
    const char *sep = v.len > 3 ? memmem(p, v.len, "://", 3) : NULL;
    if (sep) {
        const char *slash = memchr(sep + 3, '/', (size_t)(end - (sep + 3)));
        p = slash ? slash : end;
    }
    return repro_strndup(p, (size_t)(end - p));
}

static char *leaf_text(const json_t *v)
{
    char num[32];
    if (json_is_string(v))
        return json_string_length(v) <= MAX_VALUE && !memchr(json_string_value(v), 0,
                                                             json_string_length(v))
                   ? repro_strndup(json_string_value(v), json_string_length(v))
                   : NULL;
    if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        return repro_strndup(num, strlen(num));
    }
    return NULL;
}

/* ---- learning ------------------------------------------------------------- */

struct learn {
    struct repro_correlator *c;
    size_t src;
    int64_t client, avail_us;
    struct pseg path[MAX_PATH];
    size_t depth, leaves;
    int nomem;
};

static int push_token(struct repro_correlator *c, const struct token *t)
{
    struct token *v = repro_realloc(c->tok, (c->n_tok + 1) * sizeof *v);
    if (!v)
        return REPRO_E_NOMEM;
    c->tok = v;
    c->tok[c->n_tok++] = *t;
    return REPRO_OK;
}

static void token_release(struct token *t)
{
    repro_free(t->name);
    repro_free(t->rec);
    repro_free(t->stg);
    for (size_t i = 0; i < t->n_path; i++)
        repro_free(t->path[i].key);
}

static void add_leaf(struct learn *l, const char *name, const json_t *v)
{
    struct token t = {.src = l->src, .client = l->client, .avail_us = l->avail_us,
                      .kind = TOK_JSON};
    if ((!json_is_string(v) && !json_is_integer(v)) || l->leaves++ >= MAX_LEAVES)
        return;
    if (json_is_string(v) && (json_string_length(v) > MAX_VALUE ||
                              memchr(json_string_value(v), 0, json_string_length(v))))
        return; /* not an id or a token */
    t.rec = leaf_text(v);
    t.name = repro_strndup(name, strlen(name));
    t.n_path = l->depth;
    int ok = t.rec && t.name;
    for (size_t i = 0; i < l->depth; i++) {
        t.path[i].index = l->path[i].index;
        t.path[i].key = l->path[i].key ? repro_strndup(l->path[i].key, strlen(l->path[i].key)) : NULL;
        ok = ok && (!l->path[i].key || t.path[i].key);
    }
    if (!ok || push_token(l->c, &t) != REPRO_OK) {
        l->nomem = 1;
        token_release(&t);
    }
}

static void walk(struct learn *l, const char *name, const json_t *v)
{
    if (json_is_object(v) || json_is_array(v)) {
        if (l->depth == MAX_PATH)
            return;
        if (json_is_object(v)) {
            const char *k;
            json_t *x;
            json_object_foreach((json_t *)v, k, x)
            {
                l->path[l->depth++] = (struct pseg){.key = (char *)k};
                walk(l, k, x);
                l->depth--;
            }
        } else {
            for (size_t i = 0; i < json_array_size(v); i++) {
                l->path[l->depth++] = (struct pseg){.index = i};
                walk(l, name, json_array_get(v, i));
                l->depth--;
            }
        }
        return;
    }
    if (name)
        add_leaf(l, name, v);
}

/* Whether request q reuses token t. */
static int reuses(const struct token *t, struct repro_slice q)
{
    const char *p = (const char *)q.ptr;
    size_t len = q.len, nl = strlen(t->name);

    if (strcmp(t->rec, MARK) == 0) {
        /* by name: "name":"[REDACTED]", name=[REDACTED] (or encoded), a header */
        for (const char *m = memmem(p, len, MARK, MARK_LEN); m;
             m = memmem(m + 1, len - (size_t)(m + 1 - p), MARK, MARK_LEN)) {
            const char *before = m;
            if (before > p && before[-1] == '"')
                before--;
            while (before > p && (before[-1] == ' ' || before[-1] == ':' || before[-1] == '='))
                before--;
            if (before > p && before[-1] == '"')
                before--;
            if ((size_t)(before - p) >= nl && memcmp(before - nl, t->name, nl) == 0 &&
                (before - nl == p || !word_byte((unsigned char)before[-nl - 1])))
                return 1;
        }
        for (const char *m = memmem(p, len, REPRO_REDACT_MARK_URL, strlen(REPRO_REDACT_MARK_URL)); m;
             m = memmem(m + 1, len - (size_t)(m + 1 - p), REPRO_REDACT_MARK_URL,
                        strlen(REPRO_REDACT_MARK_URL)))
            if ((size_t)(m - p) > nl && m[-1] == '=' && memcmp(m - 1 - nl, t->name, nl) == 0)
                return 1;
        /* a header line "Name: [REDACTED]" */
        for (const char *line = p; line < p + len;) {
            const char *eol = memchr(line, '\n', (size_t)(p + len - line));
            const char *colon = memchr(line, ':', (size_t)((eol ? eol : p + len) - line));
            if (colon && same_field(line, (size_t)(colon - line), t->name, nl)) {
                const char *v = colon + 1;
                while (*v == ' ')
                    v++;
                if ((size_t)(p + len - v) >= MARK_LEN && memcmp(v, MARK, MARK_LEN) == 0)
                    return 1;
            }
            if (!eol || (eol + 1 < p + len && (eol[1] == '\r' || eol[1] == '\n')))
                break; /* the head ends */
            line = eol + 1;
        }
        return 0;
    }
    size_t rl = strlen(t->rec);
    if (rl < MIN_VERBATIM || !safe_value(t->rec))
        return 0;
    for (const char *m = memmem(p, len, t->rec, rl); m;
         m = memmem(m + 1, len - (size_t)(m + 1 - p), t->rec, rl)) {
        int left = m == p || !word_byte((unsigned char)m[-1]);
        int right = m + rl == p + len || !word_byte((unsigned char)m[rl]);
        if (left && right)
            return 1;
    }
    return 0;
}

void repro_correlator_free(struct repro_correlator *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_tok; i++)
        token_release(&c->tok[i]);
    for (size_t i = 0; i < c->n_jar; i++) {
        repro_free(c->jar[i].name);
        repro_free(c->jar[i].value);
    }
    repro_free(c->jar);
    repro_free(c->tok);
    repro_free(c->client);
    repro_free(c->sent_us);
    repro_free(c->is_source);
    pthread_mutex_destroy(&c->m);
    repro_free(c);
}

size_t repro_correlator_n_tokens(const struct repro_correlator *c)
{
    return c->n_tok;
}

int repro_correlator_new(const struct repro_replay_plan *plan, const struct repro_replay_req *reqs,
                         const struct repro_slice *requests, const struct repro_slice *responses,
                         struct repro_correlator **out, struct repro_error *err)
{
    struct repro_correlator *c = repro_calloc(1, sizeof *c);
    struct repro_http_head *h = repro_malloc(sizeof *h);
    struct repro_buf tmp;
    size_t n = plan->n_steps;

    *out = NULL;
    repro_buf_init(&tmp, 64u << 20);
    if (!c || !h)
        goto nomem;
    pthread_mutex_init(&c->m, NULL);
    c->n = n;
    c->client = repro_calloc(n, sizeof *c->client);
    c->sent_us = repro_calloc(n, sizeof *c->sent_us);
    if (!c->client || !c->sent_us)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        c->client[i] = reqs[i].client_key;
        c->sent_us[i] = reqs[i].sent_us;
    }
    for (size_t i = 0; i < n; i++) {
        struct repro_slice r = responses[i];
        size_t first = c->n_tok;
        if (r.len == 0 || reqs[i].answered_us < 0 ||
            repro_http_parse_head(h, REPRO_HTTP_RESPONSE, r.ptr, r.len, r.len, NULL, NULL) !=
                REPRO_HTTP_DONE)
            continue;
        const struct repro_http_header *loc = repro_http_find_header(h, "location");
        if (loc && loc->value.len > 0) {
            struct token t = {.src = i, .client = reqs[i].client_key,
                              .avail_us = reqs[i].answered_us, .kind = TOK_LOCATION};
            t.name = repro_strndup("location", 8);
            t.rec = location_path(loc->value);
            if (!t.name || !t.rec || push_token(c, &t) != REPRO_OK) {
                token_release(&t);
                goto nomem;
            }
        }
        struct repro_slice b = repro_http_message_body(r, h, &tmp);
        json_t *j = b.len ? json_loadb((const char *)b.ptr, b.len, JSON_DECODE_ANY, NULL) : NULL;
        if (j) {
            struct learn l = {.c = c, .src = i, .client = reqs[i].client_key,
                              .avail_us = reqs[i].answered_us};
            walk(&l, NULL, j);
            json_decref(j);
            if (l.nomem)
                goto nomem;
        }
        /* keep the tokens a later request of the same client reuses */
        size_t keep = first;
        for (size_t k = first; k < c->n_tok; k++) {
            struct token *t = &c->tok[k];
            int used = 0;
            for (size_t q = 0; q < n && !used; q++)
                used = q != i && reqs[q].client_key == t->client && reqs[q].sent_us > t->avail_us &&
                       reuses(t, requests[q]);
            if (used)
                c->tok[keep++] = *t;
            else
                token_release(t);
        }
        c->n_tok = keep;
    }
    repro_buf_release(&tmp);
    repro_free(h);
    c->is_source = repro_calloc(n ? n : 1, 1);
    if (!c->is_source) {
        repro_correlator_free(c);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot learn dynamic values: out of memory");
    }
    for (size_t k = 0; k < c->n_tok; k++)
        c->is_source[c->tok[k].src] = 1;
    *out = c;
    return REPRO_OK;
nomem:
    repro_buf_release(&tmp);
    repro_free(h);
    repro_correlator_free(c);
    return repro_error_set(err, REPRO_E_NOMEM, "cannot learn dynamic values: out of memory");
}

/* ---- observing staging ---------------------------------------------------- */

static void jar_set(struct repro_correlator *c, int64_t client, struct repro_slice v)
{
    const char *p = (const char *)v.ptr, *semi = memchr(p, ';', v.len);
    size_t pair = semi ? (size_t)(semi - p) : v.len;
    const char *eq = memchr(p, '=', pair);
    if (!eq || eq == p)
        return;
    size_t nl = (size_t)(eq - p);
    while (nl > 0 && p[nl - 1] == ' ')
        nl--;
    char *name = repro_strndup(p, nl), *value = repro_strndup(eq + 1, (size_t)(p + pair - (eq + 1)));
    if (!name || !value)
        goto drop;
    for (size_t i = 0; i < c->n_jar; i++)
        if (c->jar[i].client == client && strcmp(c->jar[i].name, name) == 0) {
            repro_free(c->jar[i].value);
            c->jar[i].value = value;
            repro_free(name);
            return;
        }
    struct cookie *j = repro_realloc(c->jar, (c->n_jar + 1) * sizeof *j);
    if (!j)
        goto drop;
    c->jar = j;
    c->jar[c->n_jar++] = (struct cookie){client, name, value};
    return;
drop:
    repro_free(name);
    repro_free(value);
}

/* Whether the head of r (up to its empty line) holds a Set-Cookie. */
static int sets_cookie(struct repro_slice r)
{
    const uint8_t *end = memmem(r.ptr, r.len, "\r\n\r\n", 4);
    size_t n = end ? (size_t)(end - r.ptr) : r.len;
    for (const uint8_t *p = memchr(r.ptr, '\n', n); p && p + 11 < r.ptr + n;
         p = memchr(p + 1, '\n', (size_t)(r.ptr + n - (p + 1))))
        if (strncasecmp((const char *)p + 1, "set-cookie:", 11) == 0)
            return 1;
    return 0;
}

void repro_correlator_observe(struct repro_correlator *c, size_t i, struct repro_slice r)
{
    struct repro_http_head *h = NULL;
    struct repro_buf tmp;
    json_t *j = NULL;
    int parsed = 0;

    /* most responses carry nothing to learn: no parsing for them (this
     * runs on the replay's reader thread, once per response) */
    if (i >= c->n || !r.len || (!c->is_source[i] && !sets_cookie(r)))
        return;
    h = repro_malloc(sizeof *h);
    if (!h)
        goto out;
    repro_buf_init(&tmp, 64u << 20);
    pthread_mutex_lock(&c->m);
    if (r.len && repro_http_parse_head(h, REPRO_HTTP_RESPONSE, r.ptr, r.len, r.len, NULL, NULL) ==
                     REPRO_HTTP_DONE) {
        for (size_t k = 0; k < h->n_headers; k++)
            if (repro_slice_ieq(h->headers[k].name, "set-cookie"))
                jar_set(c, c->client[i], h->headers[k].value);
        parsed = 1;
    }
    for (size_t k = 0; parsed && k < c->n_tok; k++) {
        struct token *t = &c->tok[k];
        if (t->src != i)
            continue;
        char *v = NULL;
        if (t->kind == TOK_LOCATION) {
            const struct repro_http_header *loc = repro_http_find_header(h, "location");
            v = loc ? location_path(loc->value) : NULL;
        } else {
            if (!j) {
                struct repro_slice b = repro_http_message_body(r, h, &tmp);
                j = b.len ? json_loadb((const char *)b.ptr, b.len, JSON_DECODE_ANY, NULL) : NULL;
                if (!j)
                    break;
            }
            const json_t *x = j;
            for (size_t s = 0; x && s < t->n_path; s++)
                x = t->path[s].key ? json_object_get(x, t->path[s].key)
                                   : json_array_get(x, t->path[s].index);
            v = x ? leaf_text(x) : NULL;
        }
        if (v) {
            repro_free(t->stg);
            t->stg = v;
        }
    }
    pthread_mutex_unlock(&c->m);
    json_decref(j);
    repro_buf_release(&tmp);
out:
    repro_free(h);
}

/* ---- applying ------------------------------------------------------------- */

struct edit {
    struct repro_buf b; /* the request being rewritten */
    struct repro_corr_subst *subs;
    size_t max_subs, *n_subs;
};

static void note(struct edit *e, const char *kind, const char *name, const char *o, size_t ol,
                 const char *n, size_t nl)
{
    if (*e->n_subs < e->max_subs) {
        struct repro_corr_subst *s = &e->subs[*e->n_subs];
        snprintf(s->kind, sizeof s->kind, "%s", kind);
        snprintf(s->name, sizeof s->name, "%s", name);
        snprintf(s->old_val, sizeof s->old_val, "%.*s", (int)(ol < 63 ? ol : 63), o);
        snprintf(s->new_val, sizeof s->new_val, "%.*s", (int)(nl < 63 ? nl : 63), n);
    }
    (*e->n_subs)++;
}

/* Replaces b[off, off+len) with p[0..n). */
static int splice(struct repro_buf *b, size_t off, size_t len, const void *p, size_t n)
{
    if (n > len && repro_buf_reserve(b, n - len) != REPRO_OK)
        return REPRO_E_NOMEM;
    memmove(b->data + off + n, b->data + off + len, b->len - off - len);
    memcpy(b->data + off, p, n);
    b->len = b->len - len + n;
    return REPRO_OK;
}

static size_t head_end(const struct repro_buf *b)
{
    const uint8_t *e = memmem(b->data, b->len, "\r\n\r\n", 4);
    return e ? (size_t)(e - b->data) + 4 : b->len;
}

/* Replaces every occurrence of find at which ok() holds. */
static int replace_all(struct edit *e, const char *find, size_t fl, const char *with, size_t wl,
                       int bounded, int *changed)
{
    size_t off = 0;
    while (off < e->b.len) {
        const uint8_t *m = memmem(e->b.data + off, e->b.len - off, find, fl);
        if (!m)
            break;
        size_t at = (size_t)(m - e->b.data);
        int ok = !bounded || ((at == 0 || !word_byte(e->b.data[at - 1])) &&
                              (at + fl == e->b.len || !word_byte(e->b.data[at + fl])));
        if (!ok) {
            off = at + 1;
            continue;
        }
        if (splice(&e->b, at, fl, with, wl) != REPRO_OK)
            return REPRO_E_NOMEM;
        *changed = 1;
        off = at + wl;
    }
    return REPRO_OK;
}

/* Applies one head edit to e->b with the shared rewriter (http/): the
 * name keeps its spelling, every other byte stays. */
static int edit_head(struct edit *e, const struct repro_http_edit *ed)
{
    struct repro_buf nb;
    size_t head_len = 0;
    int rc;

    repro_buf_init(&nb, e->b.max);
    rc = repro_http_head_rewrite(REPRO_HTTP_REQUEST, e->b.data, e->b.len, ed, 1, &nb, &head_len,
                                 NULL);
    if (rc == REPRO_OK)
        rc = repro_buf_append(&nb, e->b.data + head_len, e->b.len - head_len);
    if (rc != REPRO_OK) {
        repro_buf_release(&nb);
        return rc == REPRO_E_MALFORMED ? REPRO_OK : rc; /* no head to edit: as recorded */
    }
    repro_buf_release(&e->b);
    e->b = nb;
    return REPRO_OK;
}

/* The field lines of e's head, one at a time (the shared lenient scanner):
 * *off starts at 0; 0 at the end of the head. */
static int next_field(const struct edit *e, size_t *off, struct repro_http_line *l)
{
    while (*off < e->b.len) {
        *off = repro_http_head_line(e->b.data, e->b.len, *off, l);
        if (l->kind == REPRO_HTTP_LINE_END)
            return 0;
        if (l->kind == REPRO_HTTP_LINE_FIELD)
            return 1;
    }
    return 0;
}

static int apply_token(struct edit *e, const struct token *t)
{
    int changed = 0, rc = REPRO_OK;
    char pat[256], rep[MAX_VALUE + 256];
    size_t nl = strlen(t->name);

    if (strcmp(t->rec, MARK) != 0) {
        if (!safe_value(t->stg) || strcmp(t->rec, t->stg) == 0)
            return REPRO_OK;
        rc = replace_all(e, t->rec, strlen(t->rec), t->stg, strlen(t->stg), 1, &changed);
        if (rc == REPRO_OK && changed)
            note(e, t->kind == TOK_LOCATION ? "location" : "json", t->name, t->rec, strlen(t->rec),
                 t->stg, strlen(t->stg));
        return rc;
    }
    if (nl > 128)
        return REPRO_OK;
    /* JSON member */
    json_t *js = json_string(t->stg);
    char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (q) {
        int n1 = snprintf(pat, sizeof pat, "\"%s\":\"%s\"", t->name, MARK);
        int n2 = snprintf(rep, sizeof rep, "\"%s\":%s", t->name, q);
        if (n2 < (int)sizeof rep)
            rc = replace_all(e, pat, (size_t)n1, rep, (size_t)n2, 0, &changed);
        if (rc == REPRO_OK) {
            n1 = snprintf(pat, sizeof pat, "\"%s\": \"%s\"", t->name, MARK);
            n2 = snprintf(rep, sizeof rep, "\"%s\": %s", t->name, q);
            if (n2 < (int)sizeof rep)
                rc = replace_all(e, pat, (size_t)n1, rep, (size_t)n2, 0, &changed);
        }
        repro_free(q);
    }
    /* query or form field */
    if (rc == REPRO_OK && safe_value(t->stg)) {
        const char *marks[] = {REPRO_REDACT_MARK_URL, MARK};
        for (int m = 0; m < 2 && rc == REPRO_OK; m++) {
            int n1 = snprintf(pat, sizeof pat, "%s=%s", t->name, marks[m]);
            int n2 = snprintf(rep, sizeof rep, "%s=%s", t->name, t->stg);
            if (n2 < (int)sizeof rep)
                rc = replace_all(e, pat, (size_t)n1, rep, (size_t)n2, 0, &changed);
        }
    }
    /* a header of that name (X-Csrf-Token for csrf_token) holding the mark */
    if (rc == REPRO_OK && !strpbrk(t->stg, "\r\n")) {
        struct repro_http_line l;
        char field[256];
        size_t off = 0;
        field[0] = 0;
        while (next_field(e, &off, &l))
            if (l.name.len < sizeof field &&
                same_field((const char *)l.name.ptr, l.name.len, t->name, nl) &&
                repro_slice_ieq(l.value, MARK)) {
                memcpy(field, l.name.ptr, l.name.len);
                field[l.name.len] = 0;
                break;
            }
        if (field[0]) {
            struct repro_http_edit ed = {.op = REPRO_HTTP_EDIT_REPLACE, .name = field,
                                         .value = {(const uint8_t *)t->stg, strlen(t->stg)}};
            rc = edit_head(e, &ed);
            changed = rc == REPRO_OK;
        }
    }
    if (rc == REPRO_OK && changed)
        note(e, "field", t->name, MARK, MARK_LEN, t->stg, strlen(t->stg));
    return rc;
}

/* The Cookie header from the jar: a redacted one becomes the cookies
 * staging set for this client; in a clear one, their values replace the
 * recorded ones. */
static int apply_jar(struct repro_correlator *c, struct edit *e, int64_t client)
{
    struct repro_http_line l;
    struct repro_slice v = {0};
    size_t off = 0;
    int found = 0, rc = REPRO_OK, changed = 0;

    while (!found && next_field(e, &off, &l))
        if (repro_slice_ieq(l.name, "cookie")) {
            v = l.value;
            found = 1;
        }
    if (!found)
        return REPRO_OK;
    struct repro_buf nv;
    repro_buf_init(&nv, 1u << 20);
    if (repro_slice_ieq(v, MARK)) {
        for (size_t i = 0; i < c->n_jar && rc == REPRO_OK; i++)
            if (c->jar[i].client == client) {
                rc = repro_buf_printf(&nv, "%s%s=%s", nv.len ? "; " : "", c->jar[i].name,
                                      c->jar[i].value);
                changed = 1;
            }
    } else {
        for (size_t p = 0; p < v.len && rc == REPRO_OK;) {
            size_t q = p;
            while (q < v.len && v.ptr[q] != ';')
                q++;
            const uint8_t *eq = memchr(v.ptr + p, '=', q - p);
            size_t nl = eq ? (size_t)(eq - (v.ptr + p)) : 0;
            const char *val = NULL;
            for (size_t i = 0; eq && i < c->n_jar && !val; i++)
                if (c->jar[i].client == client && strlen(c->jar[i].name) == nl &&
                    memcmp(c->jar[i].name, v.ptr + p, nl) == 0)
                    val = c->jar[i].value;
            if (val) {
                size_t ol = q - (p + nl + 1);
                changed = changed || ol != strlen(val) || memcmp(eq + 1, val, ol) != 0;
                rc = repro_buf_printf(&nv, "%s%.*s=%s", nv.len ? "; " : "", (int)nl,
                                      (const char *)v.ptr + p, val);
            } else {
                rc = repro_buf_printf(&nv, "%s%.*s", nv.len ? "; " : "", (int)(q - p),
                                      (const char *)v.ptr + p);
            }
            p = q + 1;
            while (p < v.len && v.ptr[p] == ' ')
                p++;
        }
    }
    if (rc == REPRO_OK && changed && nv.len > 0) {
        note(e, "cookie", "Cookie", (const char *)v.ptr, v.len, (const char *)nv.data, nv.len);
        struct repro_http_edit ed = {.op = REPRO_HTTP_EDIT_REPLACE, .name = "Cookie",
                                     .value = {nv.data, nv.len}};
        rc = edit_head(e, &ed); /* v points into e->b: used above, not after */
    }
    repro_buf_release(&nv);
    return rc;
}

/* Sets Content-Length to the body's length when the head has one. */
static int fix_length(struct edit *e)
{
    char num[32];
    struct repro_http_edit ed = {.op = REPRO_HTTP_EDIT_REPLACE, .name = "Content-Length"};
    size_t n = (size_t)snprintf(num, sizeof num, "%zu", e->b.len - head_end(&e->b));
    ed.value = (struct repro_slice){(const uint8_t *)num, n};
    return edit_head(e, &ed);
}

int repro_correlator_apply(struct repro_correlator *c, size_t i, struct repro_slice in,
                           struct repro_buf *out, struct repro_corr_subst *subs, size_t max_subs,
                           size_t *n_subs)
{
    struct edit e = {.subs = subs, .max_subs = max_subs, .n_subs = n_subs};
    int rc = REPRO_OK, any = 0;

    *n_subs = 0;
    if (i >= c->n)
        return REPRO_OK;
    pthread_mutex_lock(&c->m);
    /* this runs on the sender thread just before a write: most requests
     * have nothing to carry over, and are not copied */
    for (size_t k = 0; k < c->n_tok && !any; k++) {
        const struct token *t = &c->tok[k];
        any = t->src != i && t->client == c->client[i] && t->avail_us < c->sent_us[i] && t->stg;
    }
    for (size_t k = 0; k < c->n_jar && !any; k++)
        any = c->jar[k].client == c->client[i];
    if (!any)
        goto unlock;
    repro_buf_init(&e.b, out->max);
    if ((rc = repro_buf_append(&e.b, in.ptr, in.len)) != REPRO_OK)
        goto unlock;
    size_t body_before = e.b.len - head_end(&e.b);
    const uint8_t *chunked = memmem(e.b.data, head_end(&e.b), "hunked", 6);
    for (size_t k = 0; k < c->n_tok && rc == REPRO_OK; k++) {
        const struct token *t = &c->tok[k];
        if (t->src != i && t->client == c->client[i] && t->avail_us < c->sent_us[i] && t->stg)
            rc = apply_token(&e, t);
    }
    if (rc == REPRO_OK)
        rc = apply_jar(c, &e, c->client[i]);
    if (rc == REPRO_OK && *n_subs && !chunked && e.b.len - head_end(&e.b) != body_before)
        rc = fix_length(&e);
    if (rc == REPRO_OK && *n_subs) { /* out takes the edited bytes */
        repro_buf_release(out);
        *out = e.b;
    } else {
        repro_buf_release(&e.b);
    }
unlock:
    pthread_mutex_unlock(&c->m);
    return rc;
}
