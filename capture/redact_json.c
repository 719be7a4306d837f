/*
 * JSON scrubbing for redaction: copies a JSON text and replaces the value of
 * every object member whose name is secret by the string "[REDACTED]",
 * whatever the value's type (string, number, literal, array or object).
 *
 * Why not json-c or jansson: both parse into a tree and serialise it again,
 * which changes whitespace, number spellings, escapes and (json-c) member
 * order, and drops duplicate names. Capture stores what was on the wire, so
 * everything but the redacted values must stay byte-identical; that needs a
 * scanner that knows where each value starts and ends in the input. This one
 * is a strict RFC 8259 recursive-descent recogniser (the grammar is small)
 * with a depth cap; tests/unit/test_redact.c checks it against jansson as an
 * oracle (same valid/invalid verdict, and the redacted output parses to
 * jansson's tree of the input with the secret members replaced).
 *
 * Member names are compared after decoding their escapes (\u0070assword is
 * password). Input that ends early (a truncated or capped body) is a valid
 * prefix when every byte seen fits the grammar; a secret value cut off by the
 * end is redacted up to the end. A text may hold several values separated by
 * whitespace (JSON Lines). Never logs; allocation only through out.
 */
#include "redact.h"

#include <string.h>

#define MAX_DEPTH 256
#define NAME_MAX_DECODED 64

enum { J_OK = 0, J_EOF, J_BAD };

struct jscan {
    const uint8_t *p;
    size_t len, i;
    size_t copied; /* p[0..copied) is already in out (or dropped) */
    int (*is_secret)(void *ctx, const uint8_t *name, size_t n);
    void *ctx;
    struct repro_buf *out;
    size_t n_redacted;
    int in_secret; /* inside a value being redacted: nothing nested is */
    int nomem;
};

static void skip_ws(struct jscan *s)
{
    while (s->i < s->len &&
           (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

static int hex4(const uint8_t *p, unsigned *v)
{
    unsigned k, x = 0;
    for (k = 0; k < 4; k++) {
        int d = repro_hex_digit(p[k]);
        if (d < 0)
            return -1;
        x = (x << 4) | (unsigned)d;
    }
    *v = x;
    return 0;
}

/* Appends code point cp as UTF-8 to name (when it fits). */
static void put_cp(uint8_t *name, size_t *n, unsigned cp)
{
    uint8_t b[4];
    size_t k, m;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        m = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        m = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        m = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | (cp >> 18));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        m = 4;
    }
    for (k = 0; k < m; k++) {
        if (*n < NAME_MAX_DECODED + 1)
            name[*n] = b[k];
        (*n)++;
    }
}

/* A string starting at the opening quote. When name is not NULL the
 * decoded bytes go there (*name_len may exceed the buffer: then the name is
 * too long to be secret). */
static int scan_string(struct jscan *s, uint8_t *name, size_t *name_len)
{
    size_t n = 0;

    s->i++; /* opening quote */
    while (s->i < s->len) {
        uint8_t c = s->p[s->i];
        unsigned cp, lo;
        if (c == '"') {
            s->i++;
            if (name_len)
                *name_len = n;
            return J_OK;
        }
        if (c < 0x20)
            return J_BAD;
        if (c != '\\') {
            if (name && n < NAME_MAX_DECODED + 1)
                name[n] = c;
            n++;
            s->i++;
            continue;
        }
        if (s->i + 1 >= s->len)
            return J_EOF;
        c = s->p[s->i + 1];
        switch (c) {
        case '"':
        case '\\':
        case '/': cp = c; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (s->i + 6 > s->len)
                return J_EOF;
            if (hex4(s->p + s->i + 2, &cp) != 0)
                return J_BAD;
            if (cp >= 0xd800 && cp < 0xdc00) {
                /* a high surrogate must be followed by a low one */
                if (s->i + 12 > s->len)
                    return J_EOF;
                if (s->p[s->i + 6] != '\\' || s->p[s->i + 7] != 'u' ||
                    hex4(s->p + s->i + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    return J_BAD;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                s->i += 6;
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                return J_BAD;
            }
            if (name)
                put_cp(name, &n, cp);
            else
                n++;
            s->i += 6;
            continue;
        default: return J_BAD;
        }
        if (name && n < NAME_MAX_DECODED + 1)
            name[n] = (uint8_t)cp;
        n++;
        s->i += 2;
    }
    return J_EOF;
}

static int digits(struct jscan *s)
{
    size_t st = s->i;
    while (s->i < s->len && s->p[s->i] >= '0' && s->p[s->i] <= '9')
        s->i++;
    if (s->i > st)
        return J_OK;
    return s->i == s->len ? J_EOF : J_BAD;
}

/* A number that is complete at the end of the input is J_OK: whether more
 * digits would follow does not change what is redacted, and a text that is
 * just a number must be valid. */
static int scan_number(struct jscan *s)
{
    int rc;
    if (s->p[s->i] == '-' && ++s->i >= s->len)
        return J_EOF;
    if (s->p[s->i] == '0') {
        if (++s->i >= s->len)
            return J_OK;
    } else if ((rc = digits(s)) != J_OK) {
        return rc;
    }
    if (s->i >= s->len)
        return J_OK;
    if (s->p[s->i] == '.') {
        s->i++;
        if ((rc = digits(s)) != J_OK)
            return rc;
        if (s->i >= s->len)
            return J_OK;
    }
    if (s->p[s->i] == 'e' || s->p[s->i] == 'E') {
        if (++s->i >= s->len)
            return J_EOF;
        if ((s->p[s->i] == '+' || s->p[s->i] == '-') && ++s->i >= s->len)
            return J_EOF;
        if ((rc = digits(s)) != J_OK)
            return rc;
    }
    return J_OK;
}

static int scan_literal(struct jscan *s, const char *lit)
{
    size_t n = strlen(lit), k;
    for (k = 0; k < n; k++) {
        if (s->i + k >= s->len)
            return J_EOF;
        if (s->p[s->i + k] != (uint8_t)lit[k])
            return J_BAD;
    }
    s->i += n;
    return J_OK;
}

static int scan_value(struct jscan *s, int depth);

#define J_NEXT 3 /* another member or element follows */

/* After a member or an element: the closing byte ends the container, a
 * comma announces the next item. */
static int after_item(struct jscan *s, uint8_t close)
{
    skip_ws(s);
    if (s->i >= s->len)
        return J_EOF;
    if (s->p[s->i] == close) {
        s->i++;
        return J_OK;
    }
    if (s->p[s->i] != ',')
        return J_BAD;
    s->i++;
    skip_ws(s);
    return s->i >= s->len ? J_EOF : J_NEXT;
}

/* Copies p[copied..from) to out, then the marker; the value's bytes up to
 * to are dropped. */
static void redact_range(struct jscan *s, size_t from, size_t to)
{
    if (repro_buf_append(s->out, s->p + s->copied, from - s->copied) != REPRO_OK ||
        repro_buf_append(s->out, "\"" REPRO_REDACT_MARK "\"", sizeof REPRO_REDACT_MARK + 1) !=
            REPRO_OK)
        s->nomem = 1;
    s->copied = to;
    s->n_redacted++;
}

static int scan_object(struct jscan *s, int depth)
{
    uint8_t name[NAME_MAX_DECODED + 1];
    size_t name_len;
    int rc;

    s->i++; /* '{' */
    skip_ws(s);
    if (s->i >= s->len)
        return J_EOF;
    if (s->p[s->i] == '}') {
        s->i++;
        return J_OK;
    }
    for (;;) {
        int secret;
        size_t vs;
        if (s->p[s->i] != '"')
            return J_BAD;
        if ((rc = scan_string(s, name, &name_len)) != J_OK)
            return rc;
        secret =
            !s->in_secret && name_len <= NAME_MAX_DECODED && s->is_secret(s->ctx, name, name_len);
        skip_ws(s);
        if (s->i >= s->len)
            return J_EOF;
        if (s->p[s->i] != ':')
            return J_BAD;
        s->i++;
        skip_ws(s);
        if (s->i >= s->len)
            return J_EOF;
        vs = s->i;
        s->in_secret += secret;
        rc = scan_value(s, depth + 1);
        s->in_secret -= secret;
        if (secret && rc != J_BAD)
            redact_range(s, vs, rc == J_OK ? s->i : s->len);
        if (rc != J_OK)
            return rc;
        if ((rc = after_item(s, '}')) != J_NEXT)
            return rc;
    }
}

static int scan_array(struct jscan *s, int depth)
{
    int rc;

    s->i++; /* '[' */
    skip_ws(s);
    if (s->i >= s->len)
        return J_EOF;
    if (s->p[s->i] == ']') {
        s->i++;
        return J_OK;
    }
    for (;;) {
        if ((rc = scan_value(s, depth + 1)) != J_OK)
            return rc;
        if ((rc = after_item(s, ']')) != J_NEXT)
            return rc;
    }
}

/* A value at s->i (whitespace already skipped, s->i < len). */
static int scan_value(struct jscan *s, int depth)
{
    uint8_t c = s->p[s->i];

    if (depth > MAX_DEPTH)
        return J_BAD;
    switch (c) {
    case '{': return scan_object(s, depth);
    case '[': return scan_array(s, depth);
    case '"': return scan_string(s, NULL, NULL);
    case 't': return scan_literal(s, "true");
    case 'f': return scan_literal(s, "false");
    case 'n': return scan_literal(s, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return scan_number(s);
        return J_BAD;
    }
}

enum repro_json_scrub repro__json_scrub(const uint8_t *p, size_t len,
                                        int (*is_secret)(void *ctx, const uint8_t *name, size_t n),
                                        void *ctx, struct repro_buf *out, size_t *n_redacted)
{
    struct jscan s;
    int rc = J_OK, any = 0;

    memset(&s, 0, sizeof s);
    s.p = p;
    s.len = len;
    s.is_secret = is_secret;
    s.ctx = ctx;
    s.out = out;
    for (;;) {
        skip_ws(&s);
        if (s.i >= len)
            break;
        rc = scan_value(&s, 0);
        any = 1;
        if (rc != J_OK)
            break;
        /* values of a JSON Lines text are apart: "-0" "05" is not "-005" */
        if (s.i < len && s.p[s.i] != ' ' && s.p[s.i] != '\t' && s.p[s.i] != '\n' &&
            s.p[s.i] != '\r') {
            rc = J_BAD;
            break;
        }
    }
    *n_redacted = s.n_redacted;
    if (rc == J_BAD || !any)
        return rc == J_BAD ? REPRO_JSON_INVALID : REPRO_JSON_EMPTY;
    if (s.copied < len && repro_buf_append(out, p + s.copied, len - s.copied) != REPRO_OK)
        s.nomem = 1;
    if (s.nomem)
        return REPRO_JSON_NOMEM;
    return rc == J_EOF ? REPRO_JSON_PREFIX : REPRO_JSON_OK;
}
