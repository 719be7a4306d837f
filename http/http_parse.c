/*
 * HTTP/1.x message heads and chunked framing (RFC 9112 sections 2-7).
 *
 * Pure parsers: no allocation, no state beyond what the caller passes,
 * results are slices into the caller's bytes. Lenient where deployed
 * servers are lenient (bare LF line endings, empty lines before a request,
 * a missing reason phrase, obs-fold continuation lines are skipped) and
 * strict where leniency would break framing (bad or conflicting
 * Content-Length, Transfer-Encoding in a request not ending in chunked,
 * whitespace before the colon, control bytes in the start line).
 *
 * Expected workload: heads of a few hundred bytes, parsed once each.
 */
#include "repro/http.h"
#include "http_int.h"

#include <string.h>

static const uint8_t lower_tab[256] = {
#define L4(i) L1(i), L1(i + 1), L1(i + 2), L1(i + 3)
#define L1(i) (uint8_t)((i) >= 'A' && (i) <= 'Z' ? (i) + 32 : (i))
#define L16(i) L4(i), L4(i + 4), L4(i + 8), L4(i + 12)
#define L64(i) L16(i), L16(i + 16), L16(i + 32), L16(i + 48)
    L64(0), L64(64), L64(128), L64(192)
#undef L64
#undef L16
#undef L4
#undef L1
};

const uint8_t repro__http_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static inline int is_tchar(uint8_t c)
{
    return repro__http_tchar[c];
}

int repro_slice_ieq(struct repro_slice s, const char *str)
{
    size_t i;
    /* One walk, stopping at the first difference: no strlen of str (this
     * runs for every header name against every rule). */
    for (i = 0; i < s.len; i++)
        if (str[i] == '\0' || lower_tab[s.ptr[i]] != lower_tab[(uint8_t)str[i]])
            return 0;
    return str[i] == '\0';
}

unsigned repro_http_name_bit(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    return (unsigned)((n * 17 + lower_tab[p[0]] * 3u + lower_tab[p[n - 1]] * 5u) & 255);
}

const struct repro_http_header *repro_http_find_header(const struct repro_http_head *h,
                                                       const char *name)
{
    size_t i;
    for (i = 0; i < h->n_headers; i++)
        if (repro_slice_ieq(h->headers[i].name, name))
            return &h->headers[i];
    return NULL;
}

/* Whether a comma-separated header value lists token (case-insensitive). */
static int list_has(struct repro_slice v, const char *token)
{
    size_t i = 0;
    while (i < v.len) {
        size_t s, e;
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        s = i;
        while (i < v.len && v.ptr[i] != ',')
            i++;
        e = i;
        while (e > s && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t'))
            e--;
        if (e > s && repro_slice_ieq((struct repro_slice){v.ptr + s, e - s}, token))
            return 1;
    }
    return 0;
}

/* Last element of a comma-separated list, trimmed. */
static struct repro_slice list_last(struct repro_slice v)
{
    size_t e = v.len, s;
    while (e > 0 && (v.ptr[e - 1] == ' ' || v.ptr[e - 1] == '\t' || v.ptr[e - 1] == ','))
        e--;
    s = e;
    while (s > 0 && v.ptr[s - 1] != ',')
        s--;
    while (s < e && (v.ptr[s] == ' ' || v.ptr[s] == '\t'))
        s++;
    return (struct repro_slice){v.ptr + s, e - s};
}

/* Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 8.6). */
static int parse_content_length(struct repro_slice v, int64_t *out)
{
    int64_t first = -1;
    size_t i = 0;

    while (i < v.len) {
        int64_t n = 0;
        size_t digits = 0;
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
            i++;
        while (i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9') {
            if (n > (INT64_C(1) << 58))
                return -1;
            n = n * 10 + (v.ptr[i] - '0');
            i++;
            digits++;
        }
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t'))
            i++;
        if (digits == 0 || (i < v.len && v.ptr[i] != ','))
            return -1;
        if (first >= 0 && n != first)
            return -1;
        first = n;
        if (i < v.len)
            i++; /* comma */
    }
    if (first < 0)
        return -1;
    *out = first;
    return 0;
}

/* Finds the end of the line starting at off: returns the offset just past
 * LF and sets *eol to the offset of the line's end (before CR LF), or
 * returns 0 when no LF is in range. */
static size_t line_end(const uint8_t *p, size_t len, size_t off, size_t *eol, int *bare_lf)
{
    const uint8_t *lf = memchr(p + off, '\n', len - off);
    size_t e;
    if (lf == NULL)
        return 0;
    e = (size_t)(lf - p);
    *eol = e;
    if (e > off && p[e - 1] == '\r')
        *eol = e - 1;
    else
        *bare_lf = 1;
    return e + 1;
}

static int parse_version(const uint8_t *p, size_t len, int *maj, int *min)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[5] < '0' || p[5] > '9' || p[6] != '.' ||
        p[7] < '0' || p[7] > '9')
        return -1;
    *maj = p[5] - '0';
    *min = p[7] - '0';
    return 0;
}

#define FAIL(off, text)                                                     \
    do {                                                                    \
        if (err_off)                                                        \
            *err_off = (off);                                               \
        if (why)                                                            \
            *why = (text);                                                  \
        return REPRO_HTTP_MALFORMED;                                        \
    } while (0)

static enum repro_http_outcome parse_start_line(struct repro_http_head *h, const uint8_t *p,
                                                size_t eol, size_t *err_off, const char **why)
{
    size_t i = 0, s;

    if (h->kind == REPRO_HTTP_REQUEST) {
        while (i < eol && is_tchar(p[i]))
            i++;
        if (i == 0 || i >= eol || p[i] != ' ')
            FAIL(i, "bad request method");
        h->method = (struct repro_slice){p, i};
        s = ++i;
        while (i < eol && p[i] > 0x20 && p[i] != 0x7f)
            i++;
        if (i == s || i >= eol || p[i] != ' ')
            FAIL(i, "bad request target");
        h->target = (struct repro_slice){p + s, i - s};
        i++;
        if (parse_version(p + i, eol - i, &h->version_major, &h->version_minor) != 0)
            FAIL(i, "bad HTTP version in request line");
        return REPRO_HTTP_DONE;
    }
    if (eol < 12 || parse_version(p, 8, &h->version_major, &h->version_minor) != 0 || p[8] != ' ')
        FAIL(0, "bad status line");
    for (i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            FAIL(i, "bad status code");
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (h->status < 100)
        FAIL(9, "status code below 100");
    if (eol > 12 && p[12] != ' ')
        FAIL(12, "bad status line");
    s = eol > 12 ? 13 : 12;
    for (i = s; i < eol; i++)
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            FAIL(i, "control byte in reason phrase");
    h->reason = (struct repro_slice){p + s, eol - s};
    return REPRO_HTTP_DONE;
}

/* Whether a field value may not hold byte c: a control byte other than
 * HTAB, or DEL (RFC 9110 section 5.5). */
static inline int bad_value_byte(uint8_t c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

/* The first byte of p[s..e) bad_value_byte() rejects, or e. Values are
 * most of a head's bytes, so eight are tested at once: a word with a byte
 * below 0x20 or equal to 0x7f (the tests are exact as yes/no, and their
 * lowest flagged byte is a real one: a false flag needs a borrow from a
 * real one below it) is looked at from that byte on. */
static inline __attribute__((always_inline)) size_t first_bad_value_byte(const uint8_t *p, size_t s,
                                                                          size_t e)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);

    while (e - s >= 8) {
        uint64_t w, d, m;
        size_t k = s;
        memcpy(&w, p + s, 8);
        d = w ^ (ones * 0x7f);
        m = (((w - ones * 0x20) & ~w) | ((d - ones) & ~d)) & highs;
        if (m != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            k += (size_t)__builtin_ctzll(m) >> 3;
#endif
            for (; k < s + 8; k++)
                if (bad_value_byte(p[k]))
                    return k;
        }
        s += 8;
    }
    for (; s < e; s++)
        if (bad_value_byte(p[s]))
            return s;
    return e;
}

/*
 * The common field line at off, in one pass: a token from the first byte,
 * ':', optional SP/HTAB, then value bytes none of which is a control byte
 * (HTAB aside) or DEL, up to CR LF or LF. Returns the offset after the
 * line with *colon, *vs (the value's first byte) and *eol set as the
 * general path would set them (no LF can come earlier: none of those
 * bytes is one), or 0 when the line is anything else (the general path
 * then decides, errors and need-more included).
 */
static size_t quick_field(const uint8_t *p, size_t len, size_t off, size_t *colon, size_t *vs,
                          size_t *eol, int *bare_lf)
{
    size_t i = off, v, e;

    /* four bytes a step, then one: names are most of the rest */
    while (i + 4 <= len &&
           (is_tchar(p[i]) & is_tchar(p[i + 1]) & is_tchar(p[i + 2]) & is_tchar(p[i + 3])))
        i += 4;
    while (i < len && is_tchar(p[i]))
        i++;
    if (i == off || i >= len || p[i] != ':')
        return 0;
    for (v = i + 1; v < len && (p[v] == ' ' || p[v] == '\t'); v++)
        ;
    e = first_bad_value_byte(p, v, len);
    if (e < len && p[e] == '\n') {
        *bare_lf = 1;
    } else if (!(e + 1 < len && p[e] == '\r' && p[e + 1] == '\n')) {
        return 0;
    }
    *colon = i;
    *vs = v;
    *eol = e;
    return e + (p[e] == '\n' ? 1 : 2);
}

/*
 * Whether the field name n equals lit, a lower-case literal of letters and
 * '-' of len bytes. Names are tchar bytes here, and for those OR-ing 0x20
 * folds case exactly against such a literal (only CR, no tchar, would
 * also become '-'), so eight bytes are compared at once.
 */
static int name_is(struct repro_slice n, const char *lit, size_t len)
{
    const uint64_t fold = UINT64_C(0x2020202020202020);
    size_t i = 0;

    if (n.len != len)
        return 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, n.ptr + i, 8);
        memcpy(&b, lit + i, 8);
        if ((a | fold) != b)
            return 0;
    }
    for (; i < len; i++)
        if ((n.ptr[i] | 0x20) != (uint8_t)lit[i])
            return 0;
    return 1;
}
#define NAME_IS(n, lit) name_is((n), lit, sizeof(lit) - 1)

/* Applies the framing-relevant meaning of one header. */
static enum repro_http_outcome apply_header(struct repro_http_head *h,
                                            const struct repro_http_header *hd, int *seen_cl,
                                            size_t off, size_t *err_off, const char **why)
{
    struct repro_slice n = hd->name;

    switch (lower_tab[n.ptr[0]]) {
    case 'c':
        if (NAME_IS(n, "content-length")) {
            int64_t cl;
            if (parse_content_length(hd->value, &cl) != 0)
                FAIL(off, "bad Content-Length");
            if (*seen_cl && cl != h->content_length)
                FAIL(off, "conflicting Content-Length headers");
            *seen_cl = 1;
            h->content_length = cl;
        } else if (NAME_IS(n, "content-type")) {
            if (h->content_type.ptr == NULL)
                h->content_type = hd->value;
        } else if (NAME_IS(n, "content-encoding")) {
            if (hd->value.len > 0)
                h->content_encoding = hd->value;
        } else if (NAME_IS(n, "connection")) {
            if (list_has(hd->value, "close"))
                h->flags |= REPRO_HTTP_H_CONN_CLOSE;
            if (list_has(hd->value, "keep-alive"))
                h->flags |= REPRO_HTTP_H_CONN_KEEPALIVE;
        }
        break;
    case 't':
        if (NAME_IS(n, "transfer-encoding")) {
            if (repro_slice_ieq(list_last(hd->value), "chunked")) {
                h->flags |= REPRO_HTTP_H_CHUNKED;
                h->flags &= ~REPRO_HTTP_H_TE_OTHER;
            } else if (list_last(hd->value).len > 0) {
                h->flags |= REPRO_HTTP_H_TE_OTHER;
                h->flags &= ~REPRO_HTTP_H_CHUNKED;
            }
        }
        break;
    case 'h':
        if (NAME_IS(n, "host") && h->host.len == 0)
            h->host = hd->value;
        break;
    case 'u':
        if (NAME_IS(n, "upgrade"))
            h->flags |= REPRO_HTTP_H_UPGRADE;
        break;
    case 'e':
        if (NAME_IS(n, "expect") && list_has(hd->value, "100-continue"))
            h->flags |= REPRO_HTTP_H_EXPECT_CONTINUE;
        break;
    default:
        break;
    }
    return REPRO_HTTP_DONE;
}

enum repro_http_outcome repro_http_parse_head(struct repro_http_head *h, enum repro_http_kind kind,
                                              const uint8_t *p, size_t len, size_t max_head,
                                              size_t *err_off, const char **why)
{
    size_t off, next, eol;
    int bare_lf = 0, seen_cl = 0;
    enum repro_http_outcome rc;

    h->kind = kind;
    h->method = h->target = h->reason = h->host = (struct repro_slice){NULL, 0};
    h->status = 0;
    h->version_major = h->version_minor = 0;
    h->content_length = -1;
    h->flags = 0;
    h->head_len = 0;
    h->n_headers = 0;
    h->content_type = h->content_encoding = (struct repro_slice){NULL, 0};
    memset(h->name_bits, 0, sizeof h->name_bits);
    if (len > max_head)
        len = max_head;

    next = line_end(p, len, 0, &eol, &bare_lf);
    if (next == 0)
        goto need_more;
    rc = parse_start_line(h, p, eol, err_off, why);
    if (rc != REPRO_HTTP_DONE)
        return rc;

    for (off = next;; off = next) {
        struct repro_http_header *hd;
        size_t i, vs, ve, colon, q;

        if (h->n_headers < REPRO_HTTP_MAX_HEADERS &&
            (q = quick_field(p, len, off, &colon, &vs, &eol, &bare_lf)) > 0) {
            next = q;
        } else {
            next = line_end(p, len, off, &eol, &bare_lf);
            if (next == 0)
                goto need_more;
            if (eol == off)
                break; /* the empty line ending the head */
            if (p[off] == ' ' || p[off] == '\t') {
                if (h->n_headers == 0)
                    FAIL(off, "continuation line before any header");
                continue; /* obs-fold: skipped (RFC 9112 5.2 allows replacing by SP) */
            }
            for (i = off; i < eol && is_tchar(p[i]); i++)
                ;
            if (i == off || i >= eol || p[i] != ':')
                FAIL(i, "bad header line");
            if (h->n_headers == REPRO_HTTP_MAX_HEADERS)
                FAIL(off, "too many header fields");
            colon = i;
            for (vs = i + 1; vs < eol && (p[vs] == ' ' || p[vs] == '\t'); vs++)
                ;
            /* (trailing SP and HTAB are no bad bytes: [vs, eol) is the value's test) */
            if ((i = first_bad_value_byte(p, vs, eol)) < eol)
                FAIL(i, "control byte in header value");
        }
        for (ve = eol; ve > vs && (p[ve - 1] == ' ' || p[ve - 1] == '\t'); ve--)
            ;
        hd = &h->headers[h->n_headers++];
        hd->name = (struct repro_slice){p + off, colon - off};
        hd->value = (struct repro_slice){p + vs, ve - vs};
        repro_http_name_set_add(h->name_bits, hd->name.ptr, hd->name.len);
        rc = apply_header(h, hd, &seen_cl, off, err_off, why);
        if (rc != REPRO_HTTP_DONE)
            return rc;
    }
    if ((h->flags & (REPRO_HTTP_H_CHUNKED | REPRO_HTTP_H_TE_OTHER)) && seen_cl)
        h->flags |= REPRO_HTTP_H_CL_AND_TE;
    if (bare_lf)
        h->flags |= REPRO_HTTP_H_BARE_LF;
    h->head_len = next;
    return REPRO_HTTP_DONE;

need_more:
    if (len >= max_head)
        FAIL(len, "message head too long");
    return REPRO_HTTP_NEED_MORE;
}

int repro_http_body_kind(const struct repro_http_head *h, struct repro_slice req_method)
{
    if (h->kind == REPRO_HTTP_REQUEST) {
        if (h->flags & REPRO_HTTP_H_CHUNKED)
            return REPRO_HTTP_BODY_CHUNKED;
        if (h->flags & REPRO_HTTP_H_TE_OTHER)
            return -1;
        return h->content_length > 0 ? REPRO_HTTP_BODY_LENGTH : REPRO_HTTP_BODY_NONE;
    }
    if (h->status == 101)
        return REPRO_HTTP_BODY_TUNNEL;
    if (h->status < 200 || h->status == 204 || h->status == 304)
        return REPRO_HTTP_BODY_NONE;
    if (repro_slice_ieq(req_method, "HEAD"))
        return REPRO_HTTP_BODY_NONE;
    if (repro_slice_ieq(req_method, "CONNECT") && h->status < 300)
        return REPRO_HTTP_BODY_TUNNEL;
    if (h->flags & REPRO_HTTP_H_CHUNKED)
        return REPRO_HTTP_BODY_CHUNKED;
    if (h->flags & REPRO_HTTP_H_TE_OTHER)
        return REPRO_HTTP_BODY_CLOSE;
    if (h->content_length >= 0)
        return h->content_length > 0 ? REPRO_HTTP_BODY_LENGTH : REPRO_HTTP_BODY_NONE;
    return REPRO_HTTP_BODY_CLOSE;
}

/* Chunked scanner states. */
enum {
    CH_SIZE = 0, /* hex digits of the chunk size */
    CH_EXT,      /* chunk extension up to LF */
    CH_DATA,     /* remaining data bytes */
    CH_DATA_CR,  /* CR (or bare LF) after the data */
    CH_DATA_LF,  /* LF after the data's CR */
    CH_TRAILER,  /* start of a trailer line or the final empty line */
    CH_TRAILER_LINE,
    CH_FINAL_LF /* LF of the final empty line */
};

#define CHUNK_LINE_MAX 4096u

/* The scanner; on_data (optional) sees every run of data bytes. */
static enum repro_http_outcome chunked_scan(struct repro_http_chunked *c, const uint8_t *p,
                                            size_t len, size_t max_trailer, size_t *consumed,
                                            void (*on_data)(void *ctx, const uint8_t *p, size_t n),
                                            void *ctx)
{
    size_t i = 0;

    while (i < len) {
        uint8_t b = p[i];
        int v;

        switch (c->state) {
        case CH_SIZE:
            v = repro_hex_digit(b);
            if (v >= 0) {
                if (c->remaining >> 56)
                    goto bad;
                c->remaining = c->remaining * 16 + (uint64_t)v;
                c->n_digits++;
                i++;
                break;
            }
            if (c->n_digits == 0)
                goto bad;
            if (b == ';' || b == ' ' || b == '\t' || b == '\r') {
                c->state = CH_EXT;
                c->line_len = 0;
                i++;
                break;
            }
            if (b != '\n')
                goto bad;
            /* fall through: bare LF ends the size line */
            c->state = CH_EXT;
            c->line_len = 0;
            /* fall through */
        case CH_EXT:
            if (b == '\n') {
                i++;
                c->n_digits = 0;
                if (c->remaining == 0) {
                    c->state = CH_TRAILER;
                    c->trailer_bytes = 0;
                } else {
                    c->state = CH_DATA;
                }
                break;
            }
            if (++c->line_len > CHUNK_LINE_MAX)
                goto bad;
            i++;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            if (on_data != NULL && n > 0)
                on_data(ctx, p + i, n);
            c->remaining -= n;
            i += n;
            if (c->remaining == 0)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (b == '\r') {
                c->state = CH_DATA_LF;
                i++;
            } else if (b == '\n') {
                c->state = CH_SIZE;
                i++;
            } else {
                goto bad;
            }
            break;
        case CH_DATA_LF:
            if (b != '\n')
                goto bad;
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            if (b == '\r') {
                c->state = CH_FINAL_LF;
                i++;
                break;
            }
            if (b == '\n') {
                i++;
                goto done;
            }
            c->state = CH_TRAILER_LINE;
            c->line_len = 0;
            /* fall through */
        case CH_TRAILER_LINE:
            if (++c->trailer_bytes > max_trailer || ++c->line_len > CHUNK_LINE_MAX)
                goto bad;
            if (b == '\n')
                c->state = CH_TRAILER;
            i++;
            break;
        case CH_FINAL_LF:
            if (b != '\n')
                goto bad;
            i++;
            goto done;
        default:
            goto bad;
        }
    }
    *consumed = i;
    return REPRO_HTTP_NEED_MORE;
done:
    memset(c, 0, sizeof *c);
    *consumed = i;
    return REPRO_HTTP_DONE;
bad:
    *consumed = i;
    return REPRO_HTTP_MALFORMED;
}

enum repro_http_outcome repro_http_chunked_scan(struct repro_http_chunked *c, const uint8_t *p,
                                                size_t len, size_t max_trailer, size_t *consumed)
{
    return chunked_scan(c, p, len, max_trailer, consumed, NULL, NULL);
}

enum repro_http_outcome repro_http_chunked_scan_data(struct repro_http_chunked *c,
                                                     const uint8_t *p, size_t len,
                                                     size_t max_trailer, size_t *consumed,
                                                     void (*on_data)(void *ctx, const uint8_t *p,
                                                                     size_t n),
                                                     void *ctx)
{
    return chunked_scan(c, p, len, max_trailer, consumed, on_data, ctx);
}

enum repro_http_outcome repro_http_chunked_skip(struct repro_http_chunked *c, uint64_t n)
{
    if (c->state == CH_DATA && n < c->remaining) {
        c->remaining -= n;
        return REPRO_HTTP_DONE;
    }
    return REPRO_HTTP_MALFORMED;
}

int repro_http_dechunk(const uint8_t *p, size_t len, struct repro_buf *out)
{
    return repro_http_dechunk_trailers(p, len, out, NULL);
}

int repro_http_dechunk_trailers(const uint8_t *p, size_t len, struct repro_buf *out,
                                size_t *trailer_off)
{
    struct repro_http_chunked c;
    size_t i = 0, used;

    if (trailer_off)
        *trailer_off = 0;
    memset(&c, 0, sizeof c);
    while (i < len) {
        enum repro_http_outcome o;
        if (c.state == CH_DATA) {
            size_t n = len - i < c.remaining ? len - i : (size_t)c.remaining;
            int rc = repro_buf_append(out, p + i, n);
            if (rc != REPRO_OK)
                return rc;
            c.remaining -= n;
            i += n;
            if (c.remaining == 0)
                c.state = CH_DATA_CR;
            continue;
        }
        o = repro_http_chunked_scan(&c, p + i, 1, 64 * 1024, &used);
        i += used;
        if (o == REPRO_HTTP_NEED_MORE && trailer_off && *trailer_off == 0 &&
            c.state == CH_TRAILER)
            *trailer_off = i; /* just after the last-chunk line */
        if (o != REPRO_HTTP_NEED_MORE)
            return o;
    }
    return REPRO_HTTP_NEED_MORE;
}

int repro_http_looks_like_start(enum repro_http_kind kind, const uint8_t *p, size_t len)
{
    size_t i;

    if (kind == REPRO_HTTP_RESPONSE) {
        static const char pfx[] = "HTTP/1.";
        size_t n = len < 7 ? len : 7;
        if (memcmp(p, pfx, n) != 0)
            return 0;
        return len < 7 ? -1 : 1;
    }
    /* METHOD SP target: the method is a token of at most 20 bytes, the
     * target starts with '/', '*', or a scheme/authority character. */
    for (i = 0; i < len && i <= 20 && is_tchar(p[i]); i++)
        ;
    /* Decide on the token's length alone, so the answer for a prefix never
     * changes when more bytes arrive (the framer must find the same starts
     * however the stream was segmented). */
    if (i > 20)
        return 0;
    if (i == len)
        return -1;
    if (i == 0 || p[i] != ' ')
        return 0;
    for (size_t k = 0; k < i; k++)
        if (!(p[k] >= 'A' && p[k] <= 'Z') && p[k] != '-' && p[k] != '_')
            return 0; /* real methods are upper-case tokens */
    if (i + 1 == len)
        return -1;
    return p[i + 1] > 0x20 && p[i + 1] != 0x7f ? 1 : 0;
}

struct repro_slice repro_http_message_body(struct repro_slice raw, const struct repro_http_head *h,
                                           struct repro_buf *tmp)
{
    struct repro_slice b = {raw.ptr + h->head_len, raw.len - h->head_len};
    if (!(h->flags & REPRO_HTTP_H_CHUNKED))
        return b;
    repro_buf_reset(tmp);
    if (repro_http_dechunk(b.ptr, b.len, tmp) < 0)
        return (struct repro_slice){NULL, 0};
    return (struct repro_slice){tmp->data, tmp->len};
}
