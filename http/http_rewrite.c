/*
 * The head writer/rewriter: a lenient line scanner over message heads and
 * an edit list applied to them (set, replace or remove a header field,
 * change the request target or Host), RFC 9112 sections 3 and 5.
 *
 * One scanner serves two users: capture's redaction (capture/redact.c),
 * which must rewrite heads the strict parser rejects (whitespace before a
 * colon, obs-fold, a head cut short) and so takes lines as they are, and
 * replay, which builds the request it sends from a captured one. Edits are
 * minimal: a field that is changed keeps its name's spelling, the bytes up
 * to its value and its line ending; every other byte is copied as it was.
 *
 * Deliberately left out: bodies (the caller appends them, fixing
 * Content-Length with an edit), checking field values beyond CR/LF/NUL.
 */
#include "repro/http.h"
#include "http_int.h"

#include <string.h>

static int tchar(uint8_t c)
{
    return repro__http_tchar[c];
}

static inline __attribute__((always_inline)) struct repro_slice trim(const uint8_t *p, size_t s,
                                                                      size_t e)
{
    while (s < e && (p[s] == ' ' || p[s] == '\t'))
        s++;
    while (e > s && (p[e - 1] == ' ' || p[e - 1] == '\t'))
        e--;
    return (struct repro_slice){p + s, e - s};
}

/* The name of the field line p[off..eol): what precedes its first colon,
 * white space trimmed (set whenever there is a colon). Returns the colon,
 * or NULL when the line is not "name: value" with a token name. */
static const uint8_t *lenient_name(const uint8_t *p, size_t off, size_t eol,
                                   struct repro_slice *name)
{
    const uint8_t *colon = memchr(p + off, ':', eol - off);
    size_t k;

    if (colon == NULL)
        return NULL;
    *name = trim(p, off, (size_t)(colon - p));
    if (name->len == 0)
        return NULL;
    for (k = 0; k < name->len; k++)
        if (!tchar(name->ptr[k]))
            return NULL;
    return colon;
}

size_t repro_http_head_line(const uint8_t *p, size_t n, size_t off, struct repro_http_line *l)
{
    const uint8_t *lf = off < n ? memchr(p + off, '\n', n - off) : NULL, *colon;
    size_t k;

    /* Called for every head line capture redacts: set fields, no memset. */
    l->name = l->value = (struct repro_slice){NULL, 0};
    l->after_colon = 0;
    l->start = off;
    if (lf == NULL) {
        l->eol = l->next = n;
    } else {
        l->next = (size_t)(lf - p) + 1;
        l->eol = l->next - 1;
    }
    if (l->eol > off && p[l->eol - 1] == '\r')
        l->eol--;
    l->value_start = l->eol;
    if (l->eol == l->start) {
        l->kind = l->next > l->start ? REPRO_HTTP_LINE_END : REPRO_HTTP_LINE_OTHER;
        return l->next;
    }
    if (p[off] == ' ' || p[off] == '\t') {
        l->kind = REPRO_HTTP_LINE_CONT;
        return l->next;
    }
    l->kind = REPRO_HTTP_LINE_OTHER;
    /* Nearly every line is "token:" from its first byte: then the token
     * is the name lenient_name() would find (no ':' or white space is a
     * tchar), in one pass. */
    for (k = off; k < l->eol && tchar(p[k]); k++)
        ;
    if (k > off && k < l->eol && p[k] == ':') {
        l->name = (struct repro_slice){p + off, k - off};
        colon = p + k;
    } else if ((colon = lenient_name(p, off, l->eol, &l->name)) == NULL) {
        return l->next;
    }
    l->kind = REPRO_HTTP_LINE_FIELD;
    l->after_colon = (size_t)(colon - p) + 1;
    l->value = trim(p, l->after_colon, l->eol);
    l->value_start = l->value.len ? (size_t)(l->value.ptr - p) : l->eol;
    return l->next;
}

size_t repro_http_head_field_quick(const uint8_t *p, size_t n, size_t off, struct repro_slice *name)
{
    const uint8_t *lf;
    size_t k = off;

    /* ':' and the line's end are no tchar: the walk stops at or before them */
    while (k < n && tchar(p[k]))
        k++;
    if (k == off || k >= n || p[k] != ':')
        return 0;
    lf = memchr(p + k, '\n', n - k);
    if (lf == NULL)
        return 0;
    *name = (struct repro_slice){p + off, k - off};
    return (size_t)(lf - p) + 1;
}

const struct repro_http_edit *repro_http_edit_find(const struct repro_http_edit *edits, size_t n,
                                                   struct repro_slice name)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const char *en = edits[i].op == REPRO_HTTP_EDIT_HOST ? "host" : edits[i].name;
        if (edits[i].op != REPRO_HTTP_EDIT_TARGET && en != NULL && repro_slice_ieq(name, en))
            return &edits[i];
    }
    return NULL;
}

/* Values and targets must not break the head's framing: no control bytes
 * but HTAB (RFC 9110 section 5.5), no white space in a target. */
static int bad_value(struct repro_slice v, int is_target)
{
    size_t i;
    if (is_target && v.len == 0)
        return 1;
    for (i = 0; i < v.len; i++)
        if ((v.ptr[i] < 0x20 && v.ptr[i] != '\t') || v.ptr[i] == 0x7f ||
            (is_target && v.ptr[i] <= ' '))
            return 1;
    return 0;
}

static int check_edits(const struct repro_http_edit *e, size_t n, struct repro_error *err)
{
    size_t i, k;

    for (i = 0; i < n; i++) {
        const char *name = e[i].name;
        switch (e[i].op) {
        case REPRO_HTTP_EDIT_TARGET:
        case REPRO_HTTP_EDIT_HOST:
            if (bad_value(e[i].value, e[i].op == REPRO_HTTP_EDIT_TARGET))
                return repro_error_set(err, REPRO_E_INVAL, "cannot rewrite a head: edit %zu: "
                                       "bad %s", i, e[i].op == REPRO_HTTP_EDIT_HOST ? "host"
                                                                                   : "target");
            break;
        case REPRO_HTTP_EDIT_SET:
        case REPRO_HTTP_EDIT_REPLACE:
        case REPRO_HTTP_EDIT_REMOVE:
            if (name == NULL || name[0] == '\0')
                return repro_error_set(err, REPRO_E_INVAL,
                                       "cannot rewrite a head: edit %zu has no field name", i);
            for (k = 0; name[k] != '\0'; k++)
                if (!tchar((uint8_t)name[k]))
                    return repro_error_set(err, REPRO_E_INVAL,
                                           "cannot rewrite a head: field name '%s' is not a "
                                           "token", name);
            if (e[i].op != REPRO_HTTP_EDIT_REMOVE && bad_value(e[i].value, 0))
                return repro_error_set(err, REPRO_E_INVAL,
                                       "cannot rewrite a head: bad value for '%s'", name);
            break;
        default:
            return repro_error_set(err, REPRO_E_INVAL, "cannot rewrite a head: edit %zu: "
                                   "unknown operation", i);
        }
    }
    return REPRO_OK;
}

/* First-error-wins appends. */
struct wr {
    struct repro_buf *out;
    int rc;
};

static void put(struct wr *w, const void *p, size_t n)
{
    if (w->rc == REPRO_OK && n > 0)
        w->rc = repro_buf_append(w->out, p, n);
}

/* The start line, with the target replaced when asked (requests:
 * METHOD SP target SP version; the target runs to the last space). */
static void write_start(struct wr *w, enum repro_http_kind kind, const uint8_t *p,
                        const struct repro_http_line *l, const struct repro_http_edit *target)
{
    const uint8_t *sp1, *sp2;

    if (kind != REPRO_HTTP_REQUEST || target == NULL ||
        (sp1 = memchr(p, ' ', l->eol)) == NULL) {
        put(w, p, l->next);
        return;
    }
    sp2 = p + l->eol;
    while (sp2 > sp1 + 1 && sp2[-1] != ' ')
        sp2--;
    sp2 = sp2 == sp1 + 1 ? p + l->eol : sp2 - 1;
    put(w, p, (size_t)(sp1 - p) + 1);
    put(w, target->value.ptr, target->value.len);
    put(w, sp2, l->next - (size_t)(sp2 - p));
}

int repro_http_head_rewrite(enum repro_http_kind kind, const uint8_t *p, size_t len,
                            const struct repro_http_edit *edits, size_t n_edits,
                            struct repro_buf *out, size_t *head_len, struct repro_error *err)
{
    struct wr w = {out, REPRO_OK};
    struct repro_http_line l;
    unsigned char done[64] = {0}; /* edits applied (SET, HOST once each) */
    const struct repro_http_edit *target = NULL;
    size_t off, i, crlf_line = 0;
    int drop_cont = 0, rc;

    if (n_edits > sizeof done)
        return repro_error_set(err, REPRO_E_LIMIT, "cannot rewrite a head: more than %zu edits",
                               sizeof done);
    rc = check_edits(edits, n_edits, err);
    if (rc != REPRO_OK)
        return rc;
    for (i = 0; i < n_edits; i++)
        if (edits[i].op == REPRO_HTTP_EDIT_TARGET)
            target = &edits[i];
    if (len == 0)
        return repro_error_set(err, REPRO_E_MALFORMED, "cannot rewrite a head: no start line");
    off = repro_http_head_line(p, len, 0, &l);
    if (l.next == l.eol || l.kind == REPRO_HTTP_LINE_END)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "cannot rewrite a head: no complete start line");
    crlf_line = l.next - l.eol == 2;
    write_start(&w, kind, p, &l, target);
    while (off < len) {
        const struct repro_http_edit *e;
        off = repro_http_head_line(p, len, off, &l);
        if (l.kind == REPRO_HTTP_LINE_END) {
            /* Fields to set that the head did not have go last. */
            for (i = 0; i < n_edits; i++) {
                const struct repro_http_edit *a = &edits[i];
                if (done[i] || (a->op != REPRO_HTTP_EDIT_SET && a->op != REPRO_HTTP_EDIT_HOST))
                    continue;
                if (a->op == REPRO_HTTP_EDIT_HOST)
                    put(&w, "Host", 4);
                else
                    put(&w, a->name, strlen(a->name));
                put(&w, ": ", 2);
                put(&w, a->value.ptr, a->value.len);
                put(&w, crlf_line ? "\r\n" : "\n", crlf_line ? 2 : 1);
            }
            put(&w, p + l.start, l.next - l.start);
            if (head_len != NULL)
                *head_len = off;
            if (w.rc != REPRO_OK)
                return repro_error_set(err, w.rc, "cannot rewrite a head: %s",
                                       repro_strerror(w.rc));
            return REPRO_OK;
        }
        if (l.kind == REPRO_HTTP_LINE_CONT) {
            if (!drop_cont)
                put(&w, p + l.start, l.next - l.start);
            continue;
        }
        drop_cont = 0;
        e = l.kind == REPRO_HTTP_LINE_FIELD ? repro_http_edit_find(edits, n_edits, l.name) : NULL;
        if (e == NULL) {
            put(&w, p + l.start, l.next - l.start);
            continue;
        }
        drop_cont = 1; /* the field's old continuation lines go with it */
        if (e->op == REPRO_HTTP_EDIT_REMOVE || done[e - edits])
            continue; /* removed, or a duplicate of a field already set */
        done[e - edits] = 1;
        put(&w, p + l.start, l.value_start - l.start);
        put(&w, e->value.ptr, e->value.len);
        put(&w, p + l.eol, l.next - l.eol);
    }
    if (w.rc != REPRO_OK)
        return repro_error_set(err, w.rc, "cannot rewrite a head: %s", repro_strerror(w.rc));
    return repro_error_set(err, REPRO_E_MALFORMED,
                           "cannot rewrite a head: it does not end with an empty line");
}
