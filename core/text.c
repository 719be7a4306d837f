/*
 * Times and IP addresses as text: one formatter for every component that
 * shows or stores them (capture's endpoints, the store's columns, crash
 * connections, listings). Addresses are inet_ntop(3)'s text (RFC 5952 for
 * IPv6), so what is stored compares equal whoever wrote it.
 */
#include "repro/core.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void repro_time_text(char *out, size_t out_len, int64_t us)
{
    time_t t;
    struct tm tm;
    size_t n;

    if (us < 0) {
        snprintf(out, out_len, "-");
        return;
    }
    t = (time_t)(us / 1000000);
    gmtime_r(&t, &tm);
    n = strftime(out, out_len, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out + n, out_len - n, ".%06lld", (long long)(us % 1000000));
}

void repro_ip_format(char *out, size_t out_len, int family, const uint8_t *addr)
{
    if (out_len == 0)
        return;
    if (inet_ntop(family == 6 ? AF_INET6 : AF_INET, addr, out, (socklen_t)out_len) == NULL)
        out[0] = '\0';
}

void repro_endpoint_format(char *out, size_t out_len, int family, const uint8_t *addr,
                           uint16_t port)
{
    char ip[REPRO_IP_TEXT_MAX];

    repro_ip_format(ip, sizeof ip, family, addr);
    if (family == 6)
        snprintf(out, out_len, "[%s]:%u", ip, port);
    else
        snprintf(out, out_len, "%s:%u", ip, port);
}

/* The units a duration may carry, in microseconds. */
static int64_t duration_unit_us(char unit)
{
    switch (unit) {
    case 's':
        return 1000000;
    case 'm':
        return 60 * (int64_t)1000000;
    case 'h':
        return 3600 * (int64_t)1000000;
    case 'd':
        return 86400 * (int64_t)1000000;
    default:
        return 0;
    }
}

int repro_duration_parse(const char *text, int64_t *out_us, struct repro_error *err)
{
    /* A hundred years: far above any retention, far below INT64_MAX us. */
    const int64_t max_us = (int64_t)100 * 366 * 86400 * 1000000;
    int64_t v = 0, unit_us;
    size_t i = 0;

    *out_us = 0;
    while (text[i] >= '0' && text[i] <= '9') {
        v = v * 10 + (text[i] - '0');
        if (v > max_us) /* checked per digit: v * 10 cannot overflow */
            goto bad;
        i++;
    }
    if (i == 0)
        goto bad;
    if (text[i] == '\0' && v == 0)
        return REPRO_OK; /* "0": off, whatever the unit */
    unit_us = duration_unit_us(text[i]);
    if (unit_us == 0 || text[i + 1] != '\0' || v > max_us / unit_us)
        goto bad;
    *out_us = v * unit_us;
    return REPRO_OK;
bad:
    return repro_error_set(err, REPRO_E_INVAL,
                           "cannot read duration '%.64s': expected a number and a unit "
                           "(s, m, h or d) such as 90s, 30m, 12h or 7d, at most 100 years",
                           text);
}

/* Reads exactly `digits` decimal digits at *p into *v. */
static int fixed_digits(const char **p, int digits, int *v)
{
    int x = 0;
    for (int i = 0; i < digits; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9')
            return 0;
        x = x * 10 + ((*p)[i] - '0');
    }
    *p += digits;
    *v = x;
    return 1;
}

/* ".frac" (1 to 9 digits) at *p, as microseconds (truncated). */
static int fraction_us(const char **p, int64_t *us)
{
    int64_t v = 0, scale = 100000;
    int n = 0;
    *us = 0;
    if (**p != '.')
        return 1;
    for ((*p)++; **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (n < 6) {
            v += (**p - '0') * scale;
            scale /= 10;
        }
    }
    if (n == 0 || n > 9)
        return 0;
    *us = v;
    return 1;
}

static int epoch_parse(const char *s, int64_t *us)
{
    int64_t sec = 0, frac;
    int n = 0;
    for (; *s >= '0' && *s <= '9'; s++, n++) {
        if (sec > (INT64_MAX / 1000000 - 9) / 10)
            return REPRO_E_INVAL;
        sec = sec * 10 + (*s - '0');
    }
    if (n == 0 || !fraction_us(&s, &frac) || *s)
        return REPRO_E_INVAL;
    *us = sec * 1000000 + frac;
    return REPRO_OK;
}

int repro_time_parse(const char *s, int64_t *us)
{
    struct tm tm;
    int y, mo, d, h = 0, mi = 0, sec = 0;
    int64_t frac = 0;
    time_t t;

    if (*s == '@')
        return epoch_parse(s + 1, us);
    if (!fixed_digits(&s, 4, &y) || *s++ != '-' || !fixed_digits(&s, 2, &mo) || *s++ != '-' ||
        !fixed_digits(&s, 2, &d))
        return REPRO_E_INVAL;
    if (*s == ' ' || *s == 'T') {
        s++;
        if (!fixed_digits(&s, 2, &h) || *s++ != ':' || !fixed_digits(&s, 2, &mi))
            return REPRO_E_INVAL;
        if (*s == ':' && (s++, !fixed_digits(&s, 2, &sec) || !fraction_us(&s, &frac)))
            return REPRO_E_INVAL;
    }
    if (*s == 'Z')
        s++;
    if (*s || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return REPRO_E_INVAL;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = timegm(&tm);
    /* timegm normalises 31 February into March: refuse what moved */
    if (t < 0 || tm.tm_mday != d || tm.tm_mon != mo - 1)
        return REPRO_E_INVAL;
    *us = (int64_t)t * 1000000 + frac;
    return REPRO_OK;
}

/* A positive decimal id at *p. */
static int id_at(const char **p, int64_t *v)
{
    int64_t x = 0;
    int n = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++, n++) {
        if (x > (INT64_MAX - 9) / 10)
            return 0;
        x = x * 10 + (**p - '0');
    }
    *v = x;
    return n > 0 && x > 0;
}

int repro_id_ranges_parse(const char *s, struct repro_id_range *out, size_t max, size_t *n)
{
    *n = 0;
    do {
        struct repro_id_range r;
        if (!id_at(&s, &r.lo))
            return REPRO_E_INVAL;
        r.hi = r.lo;
        if (*s == '-' && (s++, !id_at(&s, &r.hi) || r.hi < r.lo))
            return REPRO_E_INVAL;
        if (*s && *s != ',')
            return REPRO_E_INVAL;
        if (*n == max)
            return REPRO_E_LIMIT;
        out[(*n)++] = r;
    } while (*s++ == ',');
    return REPRO_OK;
}
