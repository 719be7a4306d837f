/*
 * Response comparison: a staging response against the recorded production
 * one, field by field, with noise rules.
 *
 * Status, then headers (multi-valued, in order, names in any case; a
 * default ignore list for values that differ on every response), then the
 * body: structurally when both sides parse as JSON (jansson, Debian's
 * libjansson: no hand-written JSON parser), else byte for byte. What
 * capture redacted is a wildcard: the recorded side's REPRO_REDACT_MARK
 * matches any text in its place, in header values, JSON strings and plain
 * bodies. A recorded body cut at the capture's cap is compared by its
 * SHA-256 digest when both digests are known.
 *
 * Noise rules: more headers to ignore, JSON paths to ignore ($.a.b[*].c,
 * $.*.id; a path ignores its whole subtree) and masks (POSIX extended
 * regexes; their matches become "<masked>" on both sides first).
 *
 * Each difference carries where it is, a key for counting the same field
 * across many requests (indexes as [*]: what baseline noise detection
 * counts), and short printable excerpts of both values. At most
 * MAX_DIFFS are kept per response.
 *
 * Left out: content decoding (the caller hands decoded bodies), choosing
 * which bodies to compare (verdicts belong to the replay run).
 */
#include "repro/replay.h"

#include "repro/http.h"

#include "jpath.h"

#include <ctype.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_DIFFS 64
#define EXCERPT 120
#define MASKED "<masked>"

static const char *const default_ignores[] = {
    "date", "server", "set-cookie", "expires", "last-modified", "etag", "age", "via",
    "x-request-id", "x-correlation-id", "traceparent", "x-amzn-trace-id",
    "content-length", "transfer-encoding", "connection", "keep-alive",
};

struct repro_comparer {
    char **ignore; /* lower case */
    size_t n_ignore;
    struct jpath *paths;
    size_t n_paths;
    regex_t *masks;
    size_t n_masks;
};

static const char *const kind_names[REPRO_DIFF__COUNT] = {
    "status", "header", "header_missing", "header_extra", "body", "body_digest",
    "json_value", "json_type", "json_missing", "json_extra",
};

const char *repro_diff_kind_name(enum repro_diff_kind k)
{
    return (unsigned)k < REPRO_DIFF__COUNT ? kind_names[k] : "unknown";
}

/* ---- rules ---------------------------------------------------------------- */

void repro_comparer_free(struct repro_comparer *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_ignore; i++)
        repro_free(c->ignore[i]);
    repro_free(c->ignore);
    for (size_t i = 0; i < c->n_paths; i++)
        repro__jpath_release(&c->paths[i]);
    repro_free(c->paths);
    for (size_t i = 0; i < c->n_masks; i++)
        regfree(&c->masks[i]);
    repro_free(c->masks);
    repro_free(c);
}

int repro_comparer_new(const struct repro_compare_rules *r, struct repro_comparer **out,
                       struct repro_error *err)
{
    static const struct repro_compare_rules none;
    struct repro_comparer *c;
    size_t n_def;
    int rc = REPRO_E_NOMEM;

    if (!r)
        r = &none;
    *out = NULL;
    c = repro_calloc(1, sizeof *c);
    if (!c)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot set up the comparison: out of memory");
    n_def = r->no_default_ignores ? 0 : sizeof default_ignores / sizeof *default_ignores;
    c->ignore = repro_calloc(n_def + r->n_ignore_headers + 1, sizeof *c->ignore);
    c->paths = repro_calloc(r->n_ignore_json_paths + 1, sizeof *c->paths);
    c->masks = repro_calloc(r->n_masks + 1, sizeof *c->masks);
    if (!c->ignore || !c->paths || !c->masks)
        goto fail;
    for (size_t i = 0; i < n_def + r->n_ignore_headers; i++) {
        const char *name = i < n_def ? default_ignores[i] : r->ignore_headers[i - n_def];
        char *low = repro_strdup(name);
        if (!low)
            goto fail;
        for (char *p = low; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        c->ignore[c->n_ignore++] = low;
    }
    for (size_t i = 0; i < r->n_ignore_json_paths; i++) {
        if ((rc = repro__jpath_parse(r->ignore_json_paths[i], &c->paths[i], err)) != REPRO_OK)
            goto fail;
        c->n_paths++;
    }
    for (size_t i = 0; i < r->n_masks; i++) {
        int e = regcomp(&c->masks[i], r->masks[i], REG_EXTENDED);
        if (e != 0) {
            char why[128];
            regerror(e, &c->masks[i], why, sizeof why);
            rc = repro_error_set(err, REPRO_E_INVAL, "cannot compile mask '%s': %s",
                                 r->masks[i], why);
            goto fail;
        }
        c->n_masks++;
    }
    *out = c;
    return REPRO_OK;
fail:
    repro_comparer_free(c);
    if (rc == REPRO_E_NOMEM)
        repro_error_set(err, rc, "cannot set up the comparison: out of memory");
    return rc;
}

/* ---- differences ---------------------------------------------------------- */

void repro_diffs_release(struct repro_diffs *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++) {
        repro_free(d->v[i].where);
        repro_free(d->v[i].key);
        repro_free(d->v[i].expected);
        repro_free(d->v[i].actual);
    }
    repro_free(d->v);
    memset(d, 0, sizeof *d);
}

/* A printable excerpt (core's repro_excerpt) of p[0..len) from a little
 * before off, "..." in front when it does not start at 0. */
static char *excerpt(const void *p, size_t len, size_t off)
{
    /* off may lie past the end: it can come from the masked text */
    size_t start = off > len ? len : off;
    start = start > 20 ? start - 20 : 0;
    char *out = repro_malloc(EXCERPT + 8);
    if (!out)
        return NULL;
    strcpy(out, start ? "..." : "");
    repro_excerpt(out + strlen(out), EXCERPT + 1, (const uint8_t *)p + start, len - start);
    return out;
}

static int add_diff(struct repro_diffs *d, enum repro_diff_kind kind, const char *where,
                    const char *key, char *expected, char *actual)
{
    if (d->n >= MAX_DIFFS) {
        repro_free(expected);
        repro_free(actual);
        return REPRO_OK;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 8;
        struct repro_diff *v = repro_realloc(d->v, cap * sizeof *v);
        if (!v)
            goto nomem;
        d->v = v;
        d->cap = cap;
    }
    struct repro_diff *x = &d->v[d->n];
    x->kind = kind;
    x->where = repro_strdup(where);
    x->key = repro_strdup(key);
    x->expected = expected;
    x->actual = actual;
    if (!x->where || !x->key) {
        repro_free(x->where);
        repro_free(x->key);
        goto nomem;
    }
    d->n++;
    return REPRO_OK;
nomem:
    repro_free(expected);
    repro_free(actual);
    return REPRO_E_NOMEM;
}

/* ---- text with masks and redaction marks ---------------------------------- */

/* s[0..len) with every mask match replaced; *out transferred (malloc). */
static int apply_masks(const struct repro_comparer *c, const char *s, size_t len, char **out,
                       size_t *out_len)
{
    struct repro_buf b;
    repro_buf_init(&b, SIZE_MAX);
    if (repro_buf_append(&b, s, len) != REPRO_OK)
        goto nomem;
    for (size_t m = 0; m < c->n_masks; m++) {
        struct repro_buf nb;
        size_t pos = 0;
        /* REG_STARTEND bounds the match, but sanitizers' regexec still reads
         * up to a NUL: keep one after the bytes */
        if (repro_buf_reserve(&b, 1) != REPRO_OK)
            goto nomem;
        b.data[b.len] = 0;
        repro_buf_init(&nb, SIZE_MAX);
        while (pos <= b.len) {
            regmatch_t mt = {.rm_so = (regoff_t)pos, .rm_eo = (regoff_t)b.len};
            if (b.len == 0 ||
                regexec(&c->masks[m], (const char *)b.data, 1, &mt, pos ? REG_STARTEND | REG_NOTBOL
                                                                        : REG_STARTEND) != 0)
                break;
            size_t so = (size_t)mt.rm_so, eo = (size_t)mt.rm_eo;
            if (repro_buf_append(&nb, b.data + pos, so - pos) != REPRO_OK ||
                repro_buf_append(&nb, MASKED, sizeof MASKED - 1) != REPRO_OK) {
                repro_buf_release(&nb);
                goto nomem;
            }
            if (eo == so) { /* empty match: keep one byte and go on */
                if (so < b.len && repro_buf_append(&nb, b.data + so, 1) != REPRO_OK) {
                    repro_buf_release(&nb);
                    goto nomem;
                }
                eo = so + 1;
            }
            pos = eo;
        }
        if (pos < b.len && repro_buf_append(&nb, b.data + pos, b.len - pos) != REPRO_OK) {
            repro_buf_release(&nb);
            goto nomem;
        }
        repro_buf_release(&b);
        b = nb;
    }
    if (repro_buf_append(&b, "", 1) != REPRO_OK)
        goto nomem;
    *out = (char *)b.data;
    *out_len = b.len - 1;
    return REPRO_OK;
nomem:
    repro_buf_release(&b);
    return REPRO_E_NOMEM;
}

static const uint8_t *find(const uint8_t *h, size_t hl, const char *n, size_t nl)
{
    return nl == 0 ? h : memmem(h, hl, n, nl);
}

/*
 * Whether actual matches expected, where each REPRO_REDACT_MARK in expected
 * matches any run of bytes. Returns the offset of the first difference in
 * expected, or SIZE_MAX when they match.
 */
static size_t glob_match(const uint8_t *e, size_t el, const uint8_t *a, size_t al)
{
    static const char mark[] = REPRO_REDACT_MARK;
    const size_t ml = sizeof mark - 1;
    const uint8_t *m = find(e, el, mark, ml);

    if (!m || ml == 0) {
        size_t i = 0;
        while (i < el && i < al && e[i] == a[i])
            i++;
        return i == el && i == al ? SIZE_MAX : i;
    }
    /* literal prefix, then segments between marks found in order, and the
     * literal suffix at the end */
    size_t pre = (size_t)(m - e);
    if (al < pre || memcmp(e, a, pre) != 0) {
        size_t i = 0;
        while (i < pre && i < al && e[i] == a[i])
            i++;
        return i;
    }
    size_t ei = pre + ml, ai = pre;
    for (;;) {
        const uint8_t *next = find(e + ei, el - ei, mark, ml);
        if (!next) {
            size_t tail = el - ei;
            if (al - ai < tail || memcmp(a + al - tail, e + ei, tail) != 0)
                return ei;
            return SIZE_MAX;
        }
        size_t seg = (size_t)(next - (e + ei));
        const uint8_t *hit = find(a + ai, al - ai, (const char *)e + ei, seg);
        if (!hit)
            return ei;
        ai = (size_t)(hit - a) + seg;
        ei += seg + ml;
    }
}

/* Compares two texts after masks; *first gets the first differing offset
 * in the masked expected text. Returns 1 if equal, 0 if not, <0 on error. */
static int text_equal(const struct repro_comparer *c, const void *e, size_t el, const void *a,
                      size_t al, size_t *first)
{
    char *me = NULL, *ma = NULL;
    size_t mel, mal;
    int rc;

    if (c->n_masks == 0) {
        *first = glob_match(e, el, a, al);
        return *first == SIZE_MAX;
    }
    if (apply_masks(c, e, el, &me, &mel) != REPRO_OK || apply_masks(c, a, al, &ma, &mal) != REPRO_OK) {
        repro_free(me);
        return REPRO_E_NOMEM;
    }
    *first = glob_match((const uint8_t *)me, mel, (const uint8_t *)ma, mal);
    rc = *first == SIZE_MAX;
    repro_free(me);
    repro_free(ma);
    return rc;
}

/* ---- headers -------------------------------------------------------------- */

static int ignored_header(const struct repro_comparer *c, struct repro_slice name)
{
    for (size_t i = 0; i < c->n_ignore; i++)
        if (repro_slice_ieq(name, c->ignore[i]))
            return 1;
    return 0;
}

/* The values of header name in h joined with ", " (malloc). */
static char *joined(const struct repro_http_head *h, struct repro_slice name, size_t *count,
                    size_t *len)
{
    struct repro_buf b;
    repro_buf_init(&b, SIZE_MAX);
    *count = 0;
    for (size_t i = 0; i < h->n_headers; i++) {
        const struct repro_http_header *x = &h->headers[i];
        if (x->name.len != name.len || strncasecmp((const char *)x->name.ptr,
                                                   (const char *)name.ptr, name.len) != 0)
            continue;
        if ((*count && repro_buf_append(&b, ", ", 2) != REPRO_OK) ||
            repro_buf_append(&b, x->value.ptr, x->value.len) != REPRO_OK)
            goto nomem;
        (*count)++;
    }
    if (repro_buf_append(&b, "", 1) != REPRO_OK)
        goto nomem;
    *len = b.len - 1;
    return (char *)b.data;
nomem:
    repro_buf_release(&b);
    return NULL;
}

/* "header Name" and its key "header name". */
static void header_where(struct repro_slice name, char *where, char *key, size_t n)
{
    int len = name.len > 200 ? 200 : (int)name.len;
    snprintf(where, n, "header %.*s", len, (const char *)name.ptr);
    snprintf(key, n, "header %.*s", len, (const char *)name.ptr);
    for (char *p = key; *p; p++)
        *p = (char)tolower((unsigned char)*p);
}

/* 1 when an earlier header of h has this name (each name is looked at once). */
static int seen_before(const struct repro_http_head *h, size_t i)
{
    for (size_t k = 0; k < i; k++)
        if (h->headers[k].name.len == h->headers[i].name.len &&
            strncasecmp((const char *)h->headers[k].name.ptr, (const char *)h->headers[i].name.ptr,
                        h->headers[i].name.len) == 0)
            return 1;
    return 0;
}

/* skip_cenc: a body was decoded, so Content-Encoding says nothing more. */
static int compare_headers(const struct repro_comparer *c, const struct repro_http_head *e,
                           const struct repro_http_head *a, int skip_cenc, struct repro_diffs *d)
{
    char where[256], key[256];
    int rc = REPRO_OK;

    for (size_t i = 0; i < e->n_headers && rc == REPRO_OK; i++) {
        struct repro_slice name = e->headers[i].name;
        size_t ne, na, el, al, first;
        if (ignored_header(c, name) || seen_before(e, i) ||
            (skip_cenc && repro_slice_ieq(name, "content-encoding")))
            continue;
        char *ev = joined(e, name, &ne, &el), *av = joined(a, name, &na, &al);
        if (!ev || !av) {
            repro_free(ev);
            repro_free(av);
            return REPRO_E_NOMEM;
        }
        header_where(name, where, key, sizeof where);
        if (na == 0) {
            rc = add_diff(d, REPRO_DIFF_HEADER_MISSING, where, key, excerpt(ev, el, 0), NULL);
            repro_free(ev);
            repro_free(av);
            continue;
        }
        int eq = text_equal(c, ev, el, av, al, &first);
        if (eq < 0)
            rc = eq;
        else if (!eq)
            rc = add_diff(d, REPRO_DIFF_HEADER, where, key, excerpt(ev, el, 0), excerpt(av, al, 0));
        repro_free(ev);
        repro_free(av);
    }
    for (size_t i = 0; i < a->n_headers && rc == REPRO_OK; i++) {
        struct repro_slice name = a->headers[i].name;
        size_t ne, na, el, al;
        if (ignored_header(c, name) || seen_before(a, i) ||
            (skip_cenc && repro_slice_ieq(name, "content-encoding")))
            continue;
        char *ev = joined(e, name, &ne, &el);
        if (!ev)
            return REPRO_E_NOMEM;
        repro_free(ev);
        if (ne)
            continue;
        char *av = joined(a, name, &na, &al);
        if (!av)
            return REPRO_E_NOMEM;
        header_where(name, where, key, sizeof where);
        rc = add_diff(d, REPRO_DIFF_HEADER_EXTRA, where, key, NULL, excerpt(av, al, 0));
        repro_free(av);
    }
    return rc;
}

/* ---- JSON ----------------------------------------------------------------- */

struct walk {
    const struct repro_comparer *c;
    struct repro_diffs *d;
    struct seg path[64]; /* current path (names borrowed from the JSON values) */
    size_t depth;
};

static int path_ignored(const struct walk *w)
{
    for (size_t i = 0; i < w->c->n_paths; i++) {
        const struct jpath *p = &w->c->paths[i];
        size_t k;
        if (p->n != w->depth)
            continue;
        for (k = 0; k < p->n; k++) {
            const struct seg *pat = &p->segs[k], *cur = &w->path[k];
            int ok = pat->kind == SEG_ANY_KEY     ? cur->kind == SEG_KEY
                     : pat->kind == SEG_ANY_INDEX ? cur->kind == SEG_INDEX
                     : pat->kind == SEG_INDEX     ? cur->kind == SEG_INDEX && cur->index == pat->index
                                                  : cur->kind == SEG_KEY && strcmp(cur->name, pat->name) == 0;
            if (!ok)
                break;
        }
        if (k == p->n)
            return 1;
    }
    return 0;
}

static int plain_name(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

/* Renders the current path; generic: indexes as [*]. */
static void path_text(const struct walk *w, int generic, char *out, size_t n)
{
    size_t o = (size_t)snprintf(out, n, "$");
    for (size_t i = 0; i < w->depth && o < n; i++) {
        const struct seg *s = &w->path[i];
        if (s->kind == SEG_INDEX)
            o += generic ? (size_t)snprintf(out + o, n - o, "[*]")
                         : (size_t)snprintf(out + o, n - o, "[%zu]", s->index);
        else if (plain_name(s->name))
            o += (size_t)snprintf(out + o, n - o, ".%s", s->name);
        else
            o += (size_t)snprintf(out + o, n - o, "['%s']", s->name);
    }
}

static char *json_excerpt(const json_t *v)
{
    char *s, *out;
    if (!v)
        return NULL;
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s)
        return NULL;
    out = excerpt(s, strlen(s), 0);
    repro_free(s);
    return out;
}

static int json_diff(struct walk *w, enum repro_diff_kind kind, const json_t *e, const json_t *a)
{
    char where[1024], key[1024];
    path_text(w, 0, where, sizeof where);
    path_text(w, 1, key, sizeof key);
    return add_diff(w->d, kind, where, key, json_excerpt(e), json_excerpt(a));
}

static int walk_value(struct walk *w, const json_t *e, const json_t *a);

static int walk_child(struct walk *w, struct seg s, const json_t *e, const json_t *a)
{
    int rc;
    if (w->depth == sizeof w->path / sizeof *w->path)
        return REPRO_OK; /* deeper than anyone compares: equal enough */
    w->path[w->depth++] = s;
    if (path_ignored(w))
        rc = REPRO_OK;
    else if (!a)
        rc = json_diff(w, REPRO_DIFF_JSON_MISSING, e, NULL);
    else if (!e)
        rc = json_diff(w, REPRO_DIFF_JSON_EXTRA, NULL, a);
    else
        rc = walk_value(w, e, a);
    w->depth--;
    return rc;
}

static int walk_value(struct walk *w, const json_t *e, const json_t *a)
{
    int rc = REPRO_OK;

    if (json_is_number(e) && json_is_number(a))
        return json_number_value(e) == json_number_value(a) &&
                       (!json_is_integer(e) || !json_is_integer(a) ||
                        json_integer_value(e) == json_integer_value(a))
                   ? REPRO_OK
                   : json_diff(w, REPRO_DIFF_JSON_VALUE, e, a);
    if (json_typeof(e) != json_typeof(a)) {
        if (json_is_boolean(e) && json_is_boolean(a))
            return json_diff(w, REPRO_DIFF_JSON_VALUE, e, a);
        return json_diff(w, REPRO_DIFF_JSON_TYPE, e, a);
    }
    switch (json_typeof(e)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)e, k, v)
        {
            struct seg s = {.kind = SEG_KEY, .name = (char *)k};
            if ((rc = walk_child(w, s, v, json_object_get(a, k))) != REPRO_OK)
                return rc;
        }
        json_object_foreach((json_t *)a, k, v)
        {
            struct seg s = {.kind = SEG_KEY, .name = (char *)k};
            if (!json_object_get(e, k) && (rc = walk_child(w, s, NULL, v)) != REPRO_OK)
                return rc;
        }
        return REPRO_OK;
    }
    case JSON_ARRAY: {
        size_t ne = json_array_size(e), na = json_array_size(a);
        for (size_t i = 0; i < ne || i < na; i++) {
            struct seg s = {.kind = SEG_INDEX, .index = i};
            if ((rc = walk_child(w, s, json_array_get(e, i), json_array_get(a, i))) != REPRO_OK)
                return rc;
        }
        return REPRO_OK;
    }
    case JSON_STRING: {
        size_t first;
        int eq = text_equal(w->c, json_string_value(e), json_string_length(e),
                            json_string_value(a), json_string_length(a), &first);
        if (eq < 0)
            return eq;
        return eq ? REPRO_OK : json_diff(w, REPRO_DIFF_JSON_VALUE, e, a);
    }
    default: /* true, false, null: equal types are equal values */
        return REPRO_OK;
    }
}

static json_t *parse_json(struct repro_slice b)
{
    size_t i = 0;
    while (i < b.len && (b.ptr[i] == ' ' || b.ptr[i] == '\t' || b.ptr[i] == '\r' || b.ptr[i] == '\n'))
        i++;
    /* only objects and arrays: a bare number or string is compared as text */
    if (i == b.len || (b.ptr[i] != '{' && b.ptr[i] != '['))
        return NULL;
    return json_loadb((const char *)b.ptr, b.len, 0, NULL);
}

/* ---- the comparison ------------------------------------------------------- */

static char *int_text(int v)
{
    char *s = repro_malloc(16);
    if (s)
        snprintf(s, 16, "%d", v);
    return s;
}

static char *hex_text(const uint8_t *d)
{
    char *s = repro_malloc(65);
    if (s)
        for (int i = 0; i < 32; i++)
            sprintf(s + 2 * i, "%02x", d[i]);
    return s;
}

int repro_compare(const struct repro_comparer *c, const struct repro_compare_msg *e,
                  const struct repro_compare_msg *a, struct repro_diffs *d,
                  struct repro_error *err)
{
    int rc = REPRO_OK;

    if (e->status != a->status)
        rc = add_diff(d, REPRO_DIFF_STATUS, "status", "status", int_text(e->status),
                      int_text(a->status));
    if (rc == REPRO_OK && e->head && a->head)
        rc = compare_headers(c, e->head, a->head, e->decoded || a->decoded, d);
    if (rc != REPRO_OK)
        goto out;

    if (e->body_cut) {
        if (!e->digest || !a->digest)
            d->body_unchecked = 1;
        else if (memcmp(e->digest, a->digest, 32) != 0)
            rc = add_diff(d, REPRO_DIFF_BODY_DIGEST, "body (sha256)", "body (sha256)",
                          hex_text(e->digest), hex_text(a->digest));
        goto out;
    }
    json_t *je = parse_json(e->body), *ja = je ? parse_json(a->body) : NULL;
    if (je && ja) {
        struct walk w = {.c = c, .d = d};
        rc = walk_value(&w, je, ja);
    } else {
        size_t first;
        int eq = text_equal(c, e->body.ptr, e->body.len, a->body.ptr, a->body.len, &first);
        if (eq < 0) {
            rc = eq;
        } else if (!eq) {
            char where[64];
            size_t at = first < a->body.len ? first : a->body.len;
            snprintf(where, sizeof where, "body at byte %zu", first);
            rc = add_diff(d, REPRO_DIFF_BODY, where, "body", excerpt(e->body.ptr, e->body.len, first),
                          excerpt(a->body.ptr, a->body.len, at));
        }
    }
    json_decref(je);
    json_decref(ja);
out:
    if (rc != REPRO_OK)
        return repro_error_set(err, rc, "cannot compare responses: out of memory");
    return REPRO_OK;
}
