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
