/*
 * Redaction of secrets before anything is stored (docs/capture.md,
 * "Redaction"). It is fail-closed: bytes that could hold a secret and that
 * cannot be parsed with certainty are redacted or not stored.
 *
 * Heads are rewritten line by line with a lenient scanner of their own, not
 * with repro_http_parse_head(), so that a head the parser rejects (too long,
 * too many fields, conflicting Content-Length, whitespace before a colon,
 * obs-fold), a chunked trailer and a head cut by a gap or by the end of the
 * connection are all redacted alike: the start line and header names stay,
 * the value of a secret field becomes "[REDACTED]" (obs-fold continuation
 * lines of it are dropped), a line that is not "name: value" with a token
 * name becomes "[REDACTED]" entirely. Query strings of the request target
 * and of Referer, Location and Origin lose the values of secret parameters
 * (names compared after percent-decoding).
 *
 * Bodies (only after a head that parsed): chunked coding is removed and
 * applied again as one chunk, gzip and deflate are decoded
 * (repro_http_inflate, shared with replay, which decodes staging's bodies
 * the same way; up to the per-message cap), then JSON (capture/redact_json.c) and
 * application/x-www-form-urlencoded bodies lose their secret fields, and
 * Content-Length is rewritten to the new length, so the stored message keeps
 * valid framing. A body that must be scrubbed but cannot be (a capture gap
 * in it, chunked framing that cannot be followed, a coding that cannot be
 * decoded, JSON that does not parse) is not stored; its length (and, for
 * an undecodable coding, the SHA-256 of its bytes as captured) goes in the
 * note. Other bodies (HTML, images) are stored as they are.
 *
 * Expected workload: a few secrets in heads of a few hundred bytes; bodies
 * are only copied when they are JSON, forms, encoded or chunked with a
 * secret in their trailers.
 */
#include "redact.h"

#include <nettle/sha2.h>
#include <stdio.h>
#include <string.h>

/* A built-in name with its length: every name of every message meets
 * these lists, and a length that differs rejects it at once. */
struct name {
    const char *s;
    size_t len;
};
#define NAME(lit) {lit, sizeof(lit) - 1}

static const struct name default_headers[] = {
    NAME("authorization"), NAME("proxy-authorization"), NAME("cookie"),      NAME("set-cookie"),
    NAME("x-api-key"),     NAME("x-auth-token"),        NAME("x-csrf-token")};

static const struct name default_fields[] = {
    NAME("password"),     NAME("passwd"),        NAME("pwd"),         NAME("secret"),
    NAME("client_secret"), NAME("token"),        NAME("access_token"), NAME("refresh_token"),
    NAME("id_token"),     NAME("api_key"),       NAME("apikey"),      NAME("auth"),
    NAME("credentials"),  NAME("private_key"),   NAME("session"),     NAME("sessionid"),
    NAME("csrftoken"),    NAME("csrf_token")};

/* Headers whose value is a URL with a query string to scrub. */
static const struct name url_headers[] = {NAME("referer"), NAME("location"), NAME("origin"),
                                          NAME("content-location")};

#define N_OF(a) (sizeof(a) / sizeof *(a))

/* ---- names ------------------------------------------------------------ */

static uint8_t lower_ascii(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

/* Every header name of every message meets every rule here: most differ
 * in their first byte, and are rejected without a call. */
static int ieq(const uint8_t *p, size_t n, const char *s)
{
    if (n == 0 || lower_ascii(p[0]) != lower_ascii((uint8_t)s[0]))
        return 0;
    return repro_slice_ieq((struct repro_slice){p, n}, s);
}

static int in_list(const uint8_t *p, size_t n, const char *const *list, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (ieq(p, n, list[i]))
            return 1;
    return 0;
}

static int in_names(const uint8_t *p, size_t n, const struct name *list, size_t len)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (list[i].len == n && ieq(p, n, list[i].s))
            return 1;
    return 0;
}

static int is_default(const struct repro_redact_rules *r, const uint8_t *p, size_t n,
                      const struct name *list, size_t len)
{
    return !r->no_defaults && in_names(p, n, list, len) && !in_list(p, n, r->keep, r->n_keep);
}

static int header_is_secret(const struct repro_redact_rules *r, const uint8_t *p, size_t n)
{
    return is_default(r, p, n, default_headers, N_OF(default_headers)) ||
           in_list(p, n, r->headers, r->n_headers);
}

/* Query and form fields (decoded names). */
static int param_is_secret(const struct repro_redact_rules *r, const uint8_t *p, size_t n)
{
    return is_default(r, p, n, default_fields, N_OF(default_fields)) ||
           in_list(p, n, r->query_params, r->n_query_params);
}

static int json_is_secret(void *ctx, const uint8_t *p, size_t n)
{
    const struct repro_redact_rules *r = ctx;
    return is_default(r, p, n, default_fields, N_OF(default_fields)) ||
           in_list(p, n, r->json_fields, r->n_json_fields);
}

static void filter_add(struct repro__name_filter *f, const char *s, size_t n, int secret)
{
    repro_http_name_set_add(f->bits, (const uint8_t *)s, n);
    if (secret)
        repro_http_name_set_add(f->secret_bits, (const uint8_t *)s, n);
}

void repro__redact_filter_init(struct repro__name_filter *f, const struct repro_redact_rules *rules)
{
    static const struct name framing[] = {NAME("content-type"), NAME("content-encoding"),
                                          NAME("content-length")};
    static const struct repro_redact_rules none;
    const struct repro_redact_rules *r = rules ? rules : &none;
    size_t i;

    memset(f, 0, sizeof *f);
    /* what header_is_secret(), scrub_fields() and its edits compare with */
    for (i = 0; !r->no_defaults && i < N_OF(default_headers); i++)
        filter_add(f, default_headers[i].s, default_headers[i].len, 1);
    for (i = 0; i < r->n_headers; i++)
        filter_add(f, r->headers[i], strlen(r->headers[i]), 1);
    for (i = 0; i < N_OF(url_headers); i++)
        filter_add(f, url_headers[i].s, url_headers[i].len, 1);
    for (i = 0; i < N_OF(framing); i++)
        filter_add(f, framing[i].s, framing[i].len, 0);
}

/* Whether the header name p[0..n) may be one the filter marks. */
static int filter_may_name(const struct repro__name_filter *f, const uint8_t *p, size_t n)
{
    return repro_http_name_set_has(f->bits, p, n);
}

static int has_param_rules(const struct repro_redact_rules *r)
{
    return !r->no_defaults || r->n_query_params > 0;
}

static int has_body_rules(const struct repro_redact_rules *r)
{
    return !r->no_defaults || r->n_query_params > 0 || r->n_json_fields > 0;
}

/* ---- output ----------------------------------------------------------- */

struct out {
    struct repro_buf *b; /* NULL: a dry pass that only counts what it would redact */
    int failed;          /* first error wins: later appends are no-ops */
};

static void put(struct out *o, const void *p, size_t n)
{
    int rc;
    if (o->b == NULL || o->failed || n == 0)
        return;
    rc = repro_buf_append(o->b, p, n);
    if (rc != REPRO_OK)
        o->failed = rc;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* ---- URLs and forms --------------------------------------------------- */

/* Percent-decodes (and '+' to space) p[0..n) into d (cap bytes); returns
 * the decoded length, or cap + 1 when it does not fit. */
static size_t url_decode(const uint8_t *p, size_t n, uint8_t *d, size_t cap)
{
    size_t i, k = 0;
    for (i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '%' && i + 2 < n && repro_hex_digit(p[i + 1]) >= 0 && repro_hex_digit(p[i + 2]) >= 0) {
            c = (uint8_t)(repro_hex_digit(p[i + 1]) * 16 + repro_hex_digit(p[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (k == cap)
            return cap + 1;
        d[k++] = c;
    }
    return k;
}

/* Copies a list of name=value pairs p[0..n) (a query string, a fragment or
 * a form body; '&' and ';' separate pairs, '#' and '?' start a new list) to
 * o with the values of secret names replaced. Returns how many. */
static size_t scrub_pairs(const struct repro_redact_rules *r, struct out *o, const uint8_t *p,
                          size_t n)
{
    size_t i = 0, hits = 0;

    while (i <= n) {
        size_t s = i, eq = (size_t)-1, e;
        uint8_t name[64];
        size_t nl;
        while (i < n && p[i] != '&' && p[i] != ';' && p[i] != '#' && p[i] != '?') {
            if (p[i] == '=' && eq == (size_t)-1)
                eq = i;
            i++;
        }
        e = i;
        if (eq != (size_t)-1 && e > eq + 1 &&
            (nl = url_decode(p + s, eq - s, name, sizeof name)) <= sizeof name &&
            param_is_secret(r, name, nl)) {
            put(o, p + s, eq + 1 - s);
            puts_(o, REPRO_REDACT_MARK_URL);
            hits++;
        } else {
            put(o, p + s, e - s);
        }
        if (i < n)
            put(o, p + i, 1);
        i++;
    }
    return hits;
}

/* Copies a URL (or request target) with secret query and fragment
 * parameters redacted. */
static size_t scrub_url(const struct repro_redact_rules *r, struct out *o, const uint8_t *p,
                        size_t n)
{
    size_t q;
    if (!has_param_rules(r)) {
        put(o, p, n);
        return 0;
    }
    for (q = 0; q < n && p[q] != '?' && p[q] != '#'; q++)
        ;
    put(o, p, q < n ? q + 1 : n);
    return q < n ? scrub_pairs(r, o, p + q + 1, n - q - 1) : 0;
}

/* ---- heads ------------------------------------------------------------ */

struct line {
    size_t s, eol, next; /* [s, eol) content, [eol, next) line ending */
};

/* The line at off within p[0..n): its end is the LF or the end of input
 * (http/'s lenient head scanner). */
static struct line line_at(const uint8_t *p, size_t n, size_t off)
{
    struct repro_http_line hl;
    struct line l;
    repro_http_head_line(p, n, off, &hl);
    l.s = hl.start;
    l.eol = hl.eol;
    l.next = hl.next;
    return l;
}

/* Offset just past the empty line ending the head, or 0 if there is none
 * in p[0..n). The first line is the start line. */
static size_t head_end(const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        struct line l = line_at(p, n, off);
        if (l.next == n && l.eol == l.next)
            return 0; /* no LF */
        if (off > 0 && l.eol == l.s && l.next > l.s)
            return l.next;
        off = l.next;
    }
    return 0;
}

/* What the head says about the body, read by the same lenient scanner. */
struct head_facts {
    struct repro_slice ctype, cenc;
};

/* Header fields of a head or a trailer section. */
struct field_ctx {
    const struct repro_redact_rules *r;
    const struct repro__name_filter *nf; /* built from r */
    struct out *o;
    int64_t new_length; /* >= 0: rewrite Content-Length to it */
    int drop_cenc;      /* leave Content-Encoding out */
    struct head_facts *facts;
    size_t hits;
};

static struct repro_slice trim(const uint8_t *p, size_t s, size_t e)
{
    while (s < e && (p[s] == ' ' || p[s] == '\t'))
        s++;
    while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
        e--;
    return (struct repro_slice){p + s, e - s};
}

/* Rewrites field lines from p[off..n) up to and including the empty line
 * (or the end), with http/'s lenient line scanner; the framing edits
 * (Content-Length, Content-Encoding) go through http/'s edit list.
 * Returns the offset after what was consumed. */
static size_t scrub_fields(struct field_ctx *fc, const uint8_t *p, size_t n, size_t off)
{
    int drop_cont = 0; /* continuation lines of the previous field are dropped */
    int had_field = 0; /* a line before this one: else a continuation continues nothing */
    struct repro_http_edit edits[2];
    size_t n_edits = 0;
    char num[32];

    if (fc->drop_cenc)
        edits[n_edits++] = (struct repro_http_edit){REPRO_HTTP_EDIT_REMOVE, "content-encoding",
                                                    {NULL, 0}};
    if (fc->new_length >= 0) {
        int k = snprintf(num, sizeof num, "%lld", (long long)fc->new_length);
        edits[n_edits++] = (struct repro_http_edit){
            REPRO_HTTP_EDIT_REPLACE, "content-length", {(const uint8_t *)num, (size_t)k}};
    }
    while (off < n) {
        struct repro_http_line l;
        struct repro_slice name;
        const struct repro_http_edit *e;
        size_t next = repro_http_head_field_quick(p, n, off, &name);

        if (next > 0 && !filter_may_name(fc->nf, name.ptr, name.len)) {
            /* Most lines: a field that no rule, fact or edit below names,
             * kept as it is (what the general case would do with it). */
            put(fc->o, p + off, next - off);
            drop_cont = 0;
            had_field = 1;
            off = next;
            continue;
        }
        off = repro_http_head_line(p, n, off, &l);
        if (l.kind == REPRO_HTTP_LINE_END) {
            put(fc->o, p + l.start, l.next - l.start);
            break;
        }
        if (l.kind == REPRO_HTTP_LINE_CONT && !had_field) {
            /* whitespace before the first field (RFC 9112 5.2: reject, or
             * consume without processing): "GET / HTTP/1.1\r\n Cookie: x"
             * — whatever it holds is not stored */
            puts_(fc->o, REPRO_REDACT_MARK);
            put(fc->o, p + l.eol, l.next - l.eol);
            fc->hits++;
            had_field = drop_cont = 1;
            continue;
        }
        if (l.kind == REPRO_HTTP_LINE_CONT) {
            if (!drop_cont)
                put(fc->o, p + l.start, l.next - l.start);
            continue;
        }
        drop_cont = 0;
        had_field = 1;
        if (l.kind != REPRO_HTTP_LINE_FIELD) {
            /* not "name: value": nothing of it can be trusted */
            puts_(fc->o, REPRO_REDACT_MARK);
            put(fc->o, p + l.eol, l.next - l.eol);
            fc->hits++;
            drop_cont = 1;
            continue;
        }
        if (!filter_may_name(fc->nf, l.name.ptr, l.name.len)) {
            /* no rule, fact or edit below names it: kept as it is */
            put(fc->o, p + l.start, l.next - l.start);
            continue;
        }
        if (header_is_secret(fc->r, l.name.ptr, l.name.len)) {
            put(fc->o, p + l.start, l.after_colon - l.start);
            puts_(fc->o, " " REPRO_REDACT_MARK);
            put(fc->o, p + l.eol, l.next - l.eol);
            fc->hits++;
            drop_cont = 1;
            continue;
        }
        if (fc->facts && fc->facts->ctype.ptr == NULL && ieq(l.name.ptr, l.name.len, "content-type"))
            fc->facts->ctype = l.value;
        if (fc->facts && ieq(l.name.ptr, l.name.len, "content-encoding") && l.value.len > 0)
            fc->facts->cenc = l.value;
        e = repro_http_edit_find(edits, n_edits, l.name);
        if (e != NULL && e->op == REPRO_HTTP_EDIT_REMOVE)
            continue;
        if (e != NULL) {
            put(fc->o, p + l.start, l.value_start - l.start);
            put(fc->o, e->value.ptr, e->value.len);
            put(fc->o, p + l.eol, l.next - l.eol);
            continue;
        }
        if (in_names(l.name.ptr, l.name.len, url_headers, N_OF(url_headers))) {
            put(fc->o, p + l.start, l.value_start - l.start);
            fc->hits += scrub_url(fc->r, fc->o, p + l.value_start, l.eol - l.value_start);
            put(fc->o, p + l.eol, l.next - l.eol);
            drop_cont = 1; /* a folded URL cannot be scrubbed with certainty */
            continue;
        }
        put(fc->o, p + l.start, l.next - l.start);
    }
    return off;
}

/* Writes the start line (a request target's query scrubbed) and returns
 * the offset after it. */
static size_t scrub_start_line(const struct repro_redact_rules *r, enum repro_http_kind kind,
                               struct out *o, const uint8_t *p, size_t n, size_t *hits)
{
    struct line l = line_at(p, n, 0);
    const uint8_t *sp1, *sp2;

    if (kind != REPRO_HTTP_REQUEST || (sp1 = memchr(p, ' ', l.eol)) == NULL) {
        put(o, p, l.next);
        return l.next;
    }
    /* METHOD SP target [SP version]: the target runs to the last space */
    sp2 = p + l.eol;
    while (sp2 > sp1 + 1 && sp2[-1] != ' ')
        sp2--;
    if (sp2 == sp1 + 1)
        sp2 = p + l.eol;
    else
        sp2--;
    put(o, p, (size_t)(sp1 - p) + 1);
    *hits += scrub_url(r, o, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    put(o, sp2, l.next - (size_t)(sp2 - p));
    return l.next;
}

/* ---- bodies ----------------------------------------------------------- */

enum body_class { B_OTHER = 0, B_JSON, B_FORM, B_SNIFF };

static enum body_class class_of(struct repro_slice ct)
{
    size_t e = 0, k;
    struct repro_slice media;
    if (ct.ptr == NULL)
        return B_SNIFF;
    while (e < ct.len && ct.ptr[e] != ';')
        e++;
    media = trim(ct.ptr, 0, e);
    if (repro_slice_ieq(media, "application/x-www-form-urlencoded"))
        return B_FORM;
    for (k = 0; k + 4 <= media.len; k++)
        if (ieq(media.ptr + k, 4, "json"))
            return B_JSON;
    return B_OTHER;
}

static void sha256_hex(const uint8_t *p, size_t n, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t d[SHA256_DIGEST_SIZE];
    size_t i;
    sha256_init(&ctx);
    sha256_update(&ctx, n, p);
    sha256_digest(&ctx, sizeof d, d);
    for (i = 0; i < sizeof d; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* The body as it will be stored. */
struct body {
    struct repro_buf data;     /* decoded and scrubbed data bytes */
    struct repro_buf trailers; /* chunked: the scrubbed trailer section */
    int changed;               /* data or trailers differ from the wire */
    int data_changed;          /* data differs from the wire's (scrubbed or decoded) */
    int may_change;            /* redaction could change data past a cap */
    int decoded;
    int dropped;  /* not stored */
    int complete; /* the whole body is present */
    int capped;   /* decoding reached max_body */
    size_t hits;
};

static void drop_body(struct body *b, struct repro_redact_result *res, const char *why,
                      const uint8_t *p, size_t n, int digest)
{
    size_t k = strlen(res->note);
    char hex[65];

    b->dropped = 1;
    if (digest) {
        sha256_hex(p, n, hex);
        snprintf(res->note + k, sizeof res->note - k,
                 "%sbody not stored: %s (%zu bytes, sha256 %s)", k ? "; " : "", why, n, hex);
    } else {
        snprintf(res->note + k, sizeof res->note - k, "%sbody not stored: %s (%zu bytes)",
                 k ? "; " : "", why, n);
    }
}

static void note(struct repro_redact_result *res, const char *text)
{
    size_t k = strlen(res->note);
    snprintf(res->note + k, sizeof res->note - k, "%s%s", k ? "; " : "", text);
}

/* Scrubs the data bytes of a body according to its class. */
static int scrub_data(const struct repro_redact_rules *r, struct body *b, enum body_class cls,
                      int incomplete, struct repro_redact_result *res, const uint8_t *raw_body,
                      size_t raw_len)
{
    struct repro_buf out;
    struct out o;
    size_t hits = 0;
    int rc = REPRO_OK;

    repro_buf_init(&out, b->data.len * 2 + 4096);
    if (cls == B_SNIFF) {
        size_t i = 0;
        while (i < b->data.len && (b->data.data[i] == ' ' || b->data.data[i] == '\t' ||
                                   b->data.data[i] == '\r' || b->data.data[i] == '\n'))
            i++;
        cls = i < b->data.len && (b->data.data[i] == '{' || b->data.data[i] == '[') ? B_JSON
                                                                                    : B_OTHER;
        if (cls == B_JSON) {
            enum repro_json_scrub js = repro__json_scrub(b->data.data, b->data.len, json_is_secret,
                                                         (void *)r, &out, &hits);
            if (js == REPRO_JSON_NOMEM) {
                rc = REPRO_E_NOMEM;
            } else if (js == REPRO_JSON_INVALID || (js == REPRO_JSON_PREFIX && !incomplete)) {
                hits = 0; /* looked like JSON but is not: stored like any other body */
            }
            goto done;
        }
    }
    if (cls == B_JSON) {
        enum repro_json_scrub js =
            repro__json_scrub(b->data.data, b->data.len, json_is_secret, (void *)r, &out, &hits);
        if (js == REPRO_JSON_NOMEM)
            rc = REPRO_E_NOMEM;
        else if (js == REPRO_JSON_INVALID || (js == REPRO_JSON_PREFIX && !incomplete))
            drop_body(b, res, "JSON that does not parse", raw_body, raw_len, 0);
    } else if (cls == B_FORM && has_param_rules(r)) {
        o.b = &out;
        o.failed = 0;
        hits = scrub_pairs(r, &o, b->data.data, b->data.len);
        rc = o.failed;
    }
done:
    if (rc == REPRO_OK && hits > 0 && !b->dropped) {
        repro_buf_release(&b->data);
        b->data = out;
        b->changed = b->data_changed = 1;
        b->hits += hits;
        return REPRO_OK;
    }
    repro_buf_release(&out);
    return rc;
}

/* Whether scrubbing a body of this class could change data bytes: what
 * decides whether the unstored part of a capped body may be digested. A
 * body to sniff is JSON when its first byte other than white space is '{'
 * or '['; when no such byte was kept, it may be. */
static int may_scrub(const struct repro_redact_rules *r, enum body_class cls,
                     const struct repro_buf *data)
{
    size_t i = 0;

    if (cls == B_JSON)
        return 1;
    if (cls == B_FORM)
        return has_param_rules(r);
    if (cls != B_SNIFF)
        return 0;
    while (i < data->len && (data->data[i] == ' ' || data->data[i] == '\t' ||
                             data->data[i] == '\r' || data->data[i] == '\n'))
        i++;
    return i == data->len || data->data[i] == '{' || data->data[i] == '[';
}

/* What the digest of the stored body is (struct repro_redact_result). */
static void digest_verdict(const struct repro_http_info *info, unsigned mflags,
                           const struct body *b, struct repro_redact_result *res)
{
    int capped = (mflags & REPRO_XF_BODY_CAPPED) != 0 || b->capped;
    struct sha256_ctx ctx;

    res->digest = REPRO_REDACT_DIGEST_NONE;
    if (info == NULL || b->dropped)
        return;
    if (!b->data_changed) {
        if (!(capped && b->may_change))
            res->digest = REPRO_REDACT_DIGEST_WIRE;
        return;
    }
    if (capped || !b->complete)
        return;
    sha256_init(&ctx);
    sha256_update(&ctx, b->data.len, b->data.data);
    sha256_digest(&ctx, sizeof res->body_digest, res->body_digest);
    res->digest = REPRO_REDACT_DIGEST_OWN;
}

/* Decides what to store of the body raw[head_len..]. */
static int process_body(const struct repro_redact_rules *r, const struct repro__name_filter *nf,
                        const struct repro_http_info *info,
                        unsigned mflags, size_t max_body, const struct head_facts *hf,
                        const uint8_t *p, size_t n, struct body *b, struct repro_redact_result *res)
{
    int chunked = info->body == REPRO_HTTP_BODY_CHUNKED;
    int gap = (mflags & REPRO_XF_GAP) != 0;
    int incomplete = (mflags & (REPRO_XF_GAP | REPRO_XF_TRUNCATED | REPRO_XF_BODY_CAPPED)) != 0;
    enum repro_http_coding c = repro_http_coding_of(hf->cenc);
    enum body_class cls = class_of(hf->ctype);
    size_t trailer_off = 0;
    int rc;

    b->complete = !incomplete;
    if (n == 0 || !has_body_rules(r)) {
        if (n == 0 || !chunked)
            return REPRO_OK;
    }
    if (chunked) {
        rc = repro_http_dechunk_trailers(p, n, &b->data, &trailer_off);
        if (rc < 0)
            return rc;
        if (rc == REPRO_HTTP_MALFORMED || gap) {
            /* the chunk sizes no longer describe the stored bytes (a gap
             * collapsed them): data and trailers cannot be told apart */
            drop_body(b, res, "chunked framing broken by a capture gap", p, n, 0);
            return REPRO_OK;
        }
        if (trailer_off > 0) {
            struct out o = {&b->trailers, 0};
            struct field_ctx fc = {r, nf, &o, -1, 0, NULL, 0};
            scrub_fields(&fc, p, n, trailer_off);
            if (o.failed)
                return o.failed;
            if (fc.hits > 0) {
                b->changed = 1;
                b->hits += fc.hits;
            }
        }
        b->complete = rc == REPRO_HTTP_DONE;
        if (!has_body_rules(r))
            return REPRO_OK;
    } else if (cls == B_OTHER && c == REPRO_HTTP_CODING_NONE &&
               !(info->flags & REPRO_HTTP_H_TE_OTHER)) {
        /* Stored as it came (no coding to undo, a class nothing is
         * scrubbed in): the copy below would never be read, and most
         * bodies (HTML, images) are such. */
        return REPRO_OK;
    } else if ((rc = repro_buf_append(&b->data, p, n)) != REPRO_OK) {
        return rc;
    }
    if (c == REPRO_HTTP_CODING_OTHER || (info->flags & REPRO_HTTP_H_TE_OTHER)) {
        drop_body(b, res, "its content coding cannot be decoded", b->data.data, b->data.len, 1);
        return REPRO_OK;
    }
    if (c != REPRO_HTTP_CODING_NONE) {
        struct repro_buf dec;
        repro_buf_init(&dec, max_body + 1);
        rc = gap ? REPRO_HTTP_INFLATE_CORRUPT
                 : repro_http_inflate(b->data.data, b->data.len, c, max_body, &dec);
        if (rc < 0) {
            repro_buf_release(&dec);
            return rc;
        }
        if (rc == REPRO_HTTP_INFLATE_CORRUPT || (rc == REPRO_HTTP_INFLATE_PARTIAL && b->complete)) {
            repro_buf_release(&dec);
            drop_body(b, res,
                      gap ? "a capture gap in an encoded body"
                          : "its content coding cannot be decoded",
                      b->data.data, b->data.len, !gap);
            return REPRO_OK;
        }
        if (rc == REPRO_HTTP_INFLATE_CAPPED) {
            b->capped = 1;
            b->complete = 0;
        }
        if (rc == REPRO_HTTP_INFLATE_PARTIAL)
            b->complete = 0;
        repro_buf_release(&b->data);
        b->data = dec;
        b->decoded = b->changed = b->data_changed = 1;
        note(res, c == REPRO_HTTP_CODING_GZIP ? "Content-Encoding gzip decoded before storage"
                              : "Content-Encoding deflate decoded before storage");
    }
    if (gap && cls != B_OTHER) {
        drop_body(b, res, "a capture gap prevents scrubbing", p, n, 0);
        return REPRO_OK;
    }
    b->may_change = may_scrub(r, cls, &b->data);
    return scrub_data(r, b, cls, !b->complete, res, p, n);
}

/* Appends the stored form of the body: as it was, or reframed. */
static void write_body(struct out *o, const struct repro_http_info *info, const struct body *b,
                       const uint8_t *p, size_t n)
{
    char line[32];

    if (b->dropped)
        return;
    if (!b->changed) {
        put(o, p, n);
        return;
    }
    if (info->body != REPRO_HTTP_BODY_CHUNKED) {
        put(o, b->data.data, b->data.len);
        return;
    }
    if (b->data.len > 0) {
        snprintf(line, sizeof line, "%zx\r\n", b->data.len);
        puts_(o, line);
        put(o, b->data.data, b->data.len);
        if (b->complete)
            puts_(o, "\r\n");
    }
    if (b->complete) {
        puts_(o, "0\r\n");
        if (b->trailers.len > 0)
            put(o, b->trailers.data, b->trailers.len);
        else
            puts_(o, "\r\n");
    }
}

/* ---- the driver ------------------------------------------------------- */

/* Length of the interim (1xx, not 101) response heads that capture keeps in
 * front of a final response. */
static size_t interim_prefix(const uint8_t *p, size_t n)
{
    size_t pre = 0;
    for (;;) {
        size_t he;
        if (n - pre < 13 || memcmp(p + pre, "HTTP/", 5) != 0 || p[pre + 8] != ' ' ||
            p[pre + 9] != '1' || (p[pre + 10] == '0' && p[pre + 11] == '1'))
            return pre;
        he = head_end(p + pre, n - pre);
        if (he == 0 || he == n - pre)
            return pre;
        pre += he;
    }
}

/* Writes a head (start line and fields) of p[0..n) scrubbed. */
static size_t write_head(const struct repro_redact_rules *r, const struct repro__name_filter *nf,
                         enum repro_http_kind kind, struct out *o, const uint8_t *p, size_t n,
                         int64_t new_length, int drop_cenc, struct head_facts *facts)
{
    size_t hits = 0, off = scrub_start_line(r, kind, o, p, n, &hits);
    struct field_ctx fc = {r, nf, o, new_length, drop_cenc, facts, 0};
    scrub_fields(&fc, p, n, off);
    return hits + fc.hits;
}

/* Writes the interim heads p[0..pre), each scrubbed like any head. */
static size_t write_interim(const struct repro_redact_rules *r, const struct repro__name_filter *nf,
                            enum repro_http_kind kind, struct out *o, const uint8_t *p, size_t pre)
{
    size_t off = 0, hits = 0;
    while (off < pre) {
        size_t he = head_end(p + off, pre - off);
        if (he == 0)
            he = pre - off;
        hits += write_head(r, nf, kind, o, p + off, he, -1, 0, NULL);
        off += he;
    }
    return hits;
}

int repro__redact(const struct repro_redact_rules *rules, enum repro_http_kind kind,
                  struct repro_slice raw, const struct repro_http_info *info, unsigned mflags,
                  size_t max_body, struct repro_redact_result *res)
{
    struct repro__name_filter f;

    repro__redact_filter_init(&f, rules);
    return repro__redact_filtered(rules, &f, kind, raw, info, 0, mflags, max_body, res);
}

/* The bytes of a value span of info (content_type, content_encoding) in
 * p: ptr NULL when the head had none. */
static struct repro_slice value_of(const uint8_t *p, struct repro_http_span s)
{
    return s.off == 0 ? (struct repro_slice){NULL, 0} : (struct repro_slice){p + s.off, s.len};
}

/* The dry pass over the heads: counts what would be redacted and collects
 * Content-Type and Content-Encoding into hf. A head the strict parser took
 * as it is, none of whose names is a secret or URL header (the framer
 * watched nf->secret_bits: REPRO_HTTP_H_UNWATCHED), is not scanned field
 * by field again: its lines are all fields with token names (the parser
 * rejects anything else; obs-fold lines are only copied), none of them
 * would be redacted, and the parser noted the two values. */
static size_t dry_pass(const struct repro_redact_rules *r, const struct repro__name_filter *nf,
                       enum repro_http_kind kind, const uint8_t *raw, size_t pre,
                       const uint8_t *p, size_t hlen, const struct repro_http_info *info,
                       int head_as_parsed, struct head_facts *hf)
{
    struct out o = {NULL, 0};
    size_t hits = 0;

    if (head_as_parsed && info != NULL && pre == 0 && info->head_len == hlen &&
        (info->flags & REPRO_HTTP_H_UNWATCHED)) {
        scrub_start_line(r, kind, &o, p, hlen, &hits);
        hf->ctype = value_of(p, info->content_type);
        hf->cenc = value_of(p, info->content_encoding);
        return hits;
    }
    return write_head(r, nf, kind, &o, p, hlen, -1, 0, hf) + write_interim(r, nf, kind, &o, raw, pre);
}

int repro__redact_filtered(const struct repro_redact_rules *rules,
                           const struct repro__name_filter *nf, enum repro_http_kind kind,
                           struct repro_slice raw, const struct repro_http_info *info,
                           int head_as_parsed, unsigned mflags, size_t max_body,
                           struct repro_redact_result *res)
{
    static const struct repro_redact_rules none;
    const struct repro_redact_rules *r = rules ? rules : &none;
    struct head_facts hf = {{NULL, 0}, {NULL, 0}};
    struct body b;
    struct out o;
    const uint8_t *p;
    size_t n, pre = 0, out_pre, hlen, hits = 0;
    int rc = REPRO_OK;
    int64_t new_length = -1;

    /* field by field rather than memset: note alone is 200 bytes, and
     * info is read only when has_info, body_digest only with _OWN */
    repro_buf_init(&res->out, 0);
    res->has_info = 0;
    res->xflags = 0;
    res->note[0] = '\0';
    res->digest = REPRO_REDACT_DIGEST_NONE;
    memset(&b, 0, sizeof b);
    if (raw.len == 0)
        return 0;
    if (kind == REPRO_HTTP_RESPONSE)
        pre = interim_prefix(raw.ptr, raw.len);
    p = raw.ptr + pre;
    n = raw.len - pre;
    hlen = info != NULL ? info->head_len : head_end(p, n);
    if (hlen == 0 || hlen > n)
        hlen = n; /* a head cut short: all of it is head */

    repro_buf_init(&b.data, max_body + raw.len + 64);
    repro_buf_init(&b.trailers, raw.len + 64);
    repro_buf_init(&res->out, 2 * raw.len + max_body + 256);
    /* A dry pass over the heads writes nothing: it collects Content-Type
     * and Content-Encoding and counts what would be redacted. Most messages
     * hold no secret, and then nothing is copied at all; otherwise the
     * heads are written once the body is known. */
    hits = dry_pass(r, nf, kind, raw.ptr, pre, p, hlen, info, head_as_parsed, &hf);
    if (info != NULL)
        rc = process_body(r, nf, info, mflags, max_body, &hf, p + hlen, n - hlen, &b, res);
    if (rc != REPRO_OK)
        goto fail;
    if (info == NULL && n > hlen)
        drop_body(&b, res, "it follows a head that does not parse", p + hlen, n - hlen, 0);
    digest_verdict(info, mflags, &b, res);
    if (hits == 0 && b.hits == 0 && !b.decoded && !b.dropped && !b.changed) {
        repro_buf_release(&b.data);
        repro_buf_release(&b.trailers);
        repro_buf_release(&res->out);
        if (b.capped)
            res->xflags |= REPRO_XF_BODY_CAPPED;
        return 0;
    }
    if (b.changed && b.complete && !b.dropped && info->body == REPRO_HTTP_BODY_LENGTH)
        new_length = (int64_t)b.data.len;

    o.b = &res->out;
    o.failed = 0;
    hits = write_interim(r, nf, kind, &o, raw.ptr, pre);
    out_pre = res->out.len;
    hits += write_head(r, nf, kind, &o, p, hlen, new_length, b.decoded, NULL);
    if (info != NULL || n == hlen)
        write_body(&o, info, &b, p + hlen, n - hlen);
    if (o.failed) {
        rc = o.failed;
        goto fail;
    }
    hits += b.hits;
    if (hits > 0)
        res->xflags |= REPRO_XF_REDACTED;
    if (b.decoded)
        res->xflags |= REPRO_XF_DECODED;
    if (b.dropped)
        res->xflags |= REPRO_XF_BODY_DROPPED;
    if (b.capped)
        res->xflags |= REPRO_XF_BODY_CAPPED;
    repro_buf_release(&b.data);
    repro_buf_release(&b.trailers);
    if (info != NULL) {
        struct repro_http_head nh;
        const uint8_t *h = res->out.data + out_pre;
        size_t nhl = head_end(h, res->out.len - out_pre);
        res->info = *info;
        if (nhl > 0 &&
            repro_http_parse_head(&nh, kind, h, nhl, nhl + 1, NULL, NULL) == REPRO_HTTP_DONE) {
            repro_http_info_from_head(&res->info, &nh, res->out.data);
            res->info.body = info->body;
            res->has_info = 1;
        }
    }
    return 1;
fail:
    repro_buf_release(&b.data);
    repro_buf_release(&b.trailers);
    repro_buf_release(&res->out);
    res->xflags |= REPRO_XF_BODY_DROPPED;
    note(res, "message not stored: out of memory while redacting");
    return rc < 0 ? rc : REPRO_E_NOMEM;
}

int repro__is_h2c_upgrade(struct repro_slice raw)
{
    size_t hl = head_end(raw.ptr, raw.len), off;
    if (hl == 0)
        return 0;
    off = line_at(raw.ptr, hl, 0).next;
    while (off < hl) {
        struct line l = line_at(raw.ptr, hl, off);
        const uint8_t *colon = memchr(raw.ptr + l.s, ':', l.eol - l.s);
        off = l.next;
        if (colon != NULL &&
            repro_slice_ieq(trim(raw.ptr, l.s, (size_t)(colon - raw.ptr)), "upgrade")) {
            struct repro_slice v = trim(raw.ptr, (size_t)(colon - raw.ptr) + 1, l.eol);
            size_t k;
            for (k = 0; k + 3 <= v.len; k++)
                if (ieq(v.ptr + k, 3, "h2c") &&
                    (k == 0 || v.ptr[k - 1] == ' ' || v.ptr[k - 1] == ','))
                    return 1;
        }
    }
    return 0;
}

int repro__sniff_proto(const uint8_t *p, size_t len)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t n = len < sizeof preface - 1 ? len : sizeof preface - 1;

    if (len >= 3 && memcmp(p, preface, n) == 0)
        return REPRO_PROTO_HTTP2;
    /* TLS record: content type 20-24, version 3.x (SSL 3.0 to TLS 1.3) */
    if (len >= 3 && p[0] >= 0x14 && p[0] <= 0x18 && p[1] == 0x03 && p[2] <= 0x04)
        return REPRO_PROTO_TLS;
    return REPRO_PROTO_OTHER;
}
