/*
 * Bounded growable buffers, clocks and JSON string output. Buffers fed from
 * the network or files always carry a hard cap (max) chosen by their owner.
 */
#include "repro/core.h"

#include <string.h>
#include <time.h>

void repro_buf_init(struct repro_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void repro_buf_release(struct repro_buf *b)
{
    if (b == NULL)
        return;
    repro_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void repro_buf_reset(struct repro_buf *b)
{
    b->len = 0;
}

int repro_buf_reserve(struct repro_buf *b, size_t n)
{
    size_t want, ncap;
    uint8_t *p;

    if (n > b->max || b->len > b->max - n)
        return REPRO_E_LIMIT;
    want = b->len + n;
    if (want <= b->cap)
        return REPRO_OK;
    ncap = b->cap ? b->cap : 256;
    while (ncap < want)
        ncap = ncap > SIZE_MAX / 2 ? want : ncap * 2;
    if (ncap > b->max)
        ncap = b->max;
    p = repro_realloc(b->data, ncap);
    if (p == NULL)
        return REPRO_E_NOMEM;
    b->data = p;
    b->cap = ncap;
    return REPRO_OK;
}

int repro_buf_append(struct repro_buf *b, const void *p, size_t n)
{
    int rc;
    if (n == 0)
        return REPRO_OK;
    rc = repro_buf_reserve(b, n);
    if (rc != REPRO_OK)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return REPRO_OK;
}

int repro_buf_printf(struct repro_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return REPRO_E_INVAL;
    rc = repro_buf_reserve(b, (size_t)n + 1);
    if (rc != REPRO_OK)
        return rc;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return REPRO_OK;
}

int repro_budget_take(struct repro_budget *b, size_t n)
{
    if (b == NULL)
        return 1;
    if (n > b->max - b->used) {
        b->refused += n;
        return 0;
    }
    b->used += n;
    return 1;
}

size_t repro_budget_take_upto(struct repro_budget *b, size_t n)
{
    size_t room;
    if (b == NULL)
        return n;
    room = b->max - b->used;
    if (n > room) {
        b->refused += n - room;
        n = room;
    }
    b->used += n;
    return n;
}

void repro_budget_give(struct repro_budget *b, size_t n)
{
    if (b == NULL)
        return;
    b->used = n > b->used ? 0 : b->used - n;
}

int repro_size_parse(const char *text, uint64_t *out, struct repro_error *err)
{
    uint64_t v = 0, unit = 1;
    size_t i = 0;

    *out = 0;
    while (text[i] >= '0' && text[i] <= '9') {
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            goto bad;
        v = v * 10 + digit;
        i++;
    }
    if (i == 0)
        goto bad;
    switch (text[i]) {
    case 'k': case 'K': unit = (uint64_t)1 << 10; break;
    case 'm': case 'M': unit = (uint64_t)1 << 20; break;
    case 'g': case 'G': unit = (uint64_t)1 << 30; break;
    case 't': case 'T': unit = (uint64_t)1 << 40; break;
    case '\0': break;
    default: goto bad;
    }
    if (unit > 1) {
        i++;
        /* "64M", "64MB" and "64MiB" all mean 64 x 2^20 */
        if (text[i] == 'i' && text[i + 1] == 'B')
            i += 2;
        else if (text[i] == 'B')
            i++;
    }
    if (text[i] != '\0' || v > UINT64_MAX / unit)
        goto bad;
    *out = v * unit;
    return REPRO_OK;
bad:
    return repro_error_set(err, REPRO_E_INVAL,
                           "cannot read size '%.64s': expected a number of bytes with an "
                           "optional suffix k, M, G or T (powers of 1024) such as 65536, "
                           "512k or 256M",
                           text);
}

uint64_t repro_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t repro_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec repro_deadline_ms(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    size_t need, i;
    uint32_t cp;

    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        need = 2;
        cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        need = 3;
        cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        need = 4;
        cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need)
        return 0;
    for (i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((need == 2 && cp < 0x80) || (need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need;
}

int repro_json_str(struct repro_buf *b, const void *vp, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = vp;
    size_t i = 0, run;
    int rc = repro_buf_append(b, "\"", 1);

    while (rc == REPRO_OK && i < len) {
        uint8_t c = p[i];
        char esc[8];
        size_t u = utf8_len(p + i, len - i);

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x7f) {
            run = i;
            while (run < len && p[run] >= 0x20 && p[run] != '"' && p[run] != '\\' && p[run] < 0x7f)
                run++;
            rc = repro_buf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        if (c >= 0x80 && u > 1) {
            rc = repro_buf_append(b, p + i, u);
            i += u;
            continue;
        }
        switch (c) {
        case '"': rc = repro_buf_append(b, "\\\"", 2); break;
        case '\\': rc = repro_buf_append(b, "\\\\", 2); break;
        case '\n': rc = repro_buf_append(b, "\\n", 2); break;
        case '\r': rc = repro_buf_append(b, "\\r", 2); break;
        case '\t': rc = repro_buf_append(b, "\\t", 2); break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            rc = repro_buf_append(b, esc, 6);
        }
        i++;
    }
    if (rc == REPRO_OK)
        rc = repro_buf_append(b, "\"", 1);
    return rc;
}

int repro_json_cstr(struct repro_buf *b, const char *s)
{
    if (s == NULL)
        return repro_buf_append(b, "null", 4);
    return repro_json_str(b, s, strlen(s));
}

int repro_json_time_us(struct repro_buf *b, int64_t us)
{
    if (us < 0)
        return repro_buf_append(b, "null", 4);
    return repro_buf_printf(b, "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
}

double repro_mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}
