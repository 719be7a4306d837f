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
