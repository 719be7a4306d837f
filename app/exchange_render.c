/*
 * app/exchange_render: stored exchanges as JSON and as text. The first
 * failed append ends the output: its code is returned.
 */
#include "app/exchange_render.h"

#include "repro/capture.h"

#include <stdio.h>

int repro_app_xflags_json(struct repro_buf *b, unsigned flags)
{
    unsigned bit;
    int rc = repro_buf_append(b, "[", 1), first = 1;
    for (bit = 0; bit < 32 && rc == REPRO_OK; bit++) {
        const char *name;
        if (!(flags & (1u << bit)))
            continue;
        name = repro_xflag_name(1u << bit);
        if (name == NULL)
            continue;
        if (!first)
            rc = repro_buf_append(b, ",", 1);
        first = 0;
        if (rc == REPRO_OK)
            rc = repro_json_cstr(b, name);
    }
    return rc == REPRO_OK ? repro_buf_append(b, "]", 1) : rc;
}

/* Appends ",\"key\":" and s (or null). */
static int field_str(struct repro_buf *b, const char *key, const char *s)
{
    int rc = repro_buf_printf(b, ",\"%s\":", key);
    return rc ? rc : repro_json_cstr(b, s);
}

static int field_time(struct repro_buf *b, const char *key, int64_t us)
{
    int rc = repro_buf_printf(b, ",\"%s\":", key);
    return rc ? rc : repro_json_time_us(b, us);
}

static int bodies_json(struct repro_buf *b, const struct repro_exchange_row *r)
{
    int rc = repro_buf_printf(b, ",\"request\":");
    if (rc == REPRO_OK)
        rc = repro_json_str(b, r->request.ptr, r->request.len);
    if (rc == REPRO_OK)
        rc = repro_buf_printf(b, ",\"response\":");
    if (rc == REPRO_OK)
        rc = repro_json_str(b, r->response.ptr, r->response.len);
    return rc;
}

int repro_app_exchange_json(struct repro_buf *b, const struct repro_exchange_row *r,
                            int with_bodies)
{
    int rc = repro_buf_printf(
        b, "{\"id\":%lld,\"capture_id\":%lld,\"connection_id\":%lld,\"seq\":%lld,\"client\":",
        (long long)r->id, (long long)r->capture_id, (long long)r->connection_id, (long long)r->seq);

    if (rc == REPRO_OK)
        rc = repro_json_cstr(b, r->client);
    if (rc == REPRO_OK && (rc = field_str(b, "server", r->server)) == REPRO_OK &&
        (rc = field_str(b, "method", r->method)) == REPRO_OK &&
        (rc = field_str(b, "uri", r->uri)) == REPRO_OK &&
        (rc = field_str(b, "host", r->host)) == REPRO_OK)
        rc = field_str(b, "http_version", r->http_version);
    if (rc == REPRO_OK)
        rc = r->status > 0 ? repro_buf_printf(b, ",\"status\":%d", r->status)
                           : repro_buf_printf(b, ",\"status\":null");
    if (rc == REPRO_OK && (rc = field_str(b, "reason", r->reason)) == REPRO_OK &&
        (rc = field_str(b, "interim", r->interim)) == REPRO_OK &&
        (rc = field_time(b, "request_time", r->request_first_us)) == REPRO_OK &&
        (rc = field_time(b, "request_end_time", r->request_last_us)) == REPRO_OK &&
        (rc = field_time(b, "response_time", r->response_first_us)) == REPRO_OK)
        rc = field_time(b, "response_end_time", r->response_last_us);
    if (rc == REPRO_OK)
        rc = repro_buf_printf(
            b, ",\"request_bytes\":%lld,\"response_bytes\":%lld,\"complete\":%s,\"flags\":",
            (long long)r->request_bytes, (long long)r->response_bytes,
            r->complete ? "true" : "false");
    if (rc == REPRO_OK && (rc = repro_app_xflags_json(b, r->flags)) == REPRO_OK)
        rc = field_str(b, "note", r->note);
    if (rc == REPRO_OK && with_bodies)
        rc = bodies_json(b, r);
    return rc ? rc : repro_buf_append(b, "}", 1);
}

int repro_app_exchange_text(struct repro_buf *b, const struct repro_exchange_row *r)
{
    char t[40], status[16];
    unsigned bit;
    int rc, first = 1;

    repro_time_text(t, sizeof t, r->request_first_us >= 0 ? r->request_first_us
                                                          : r->response_first_us);
    if (r->status > 0)
        snprintf(status, sizeof status, "%d", r->status);
    else
        snprintf(status, sizeof status, "-");
    rc = repro_buf_printf(b, "%-6lld %s  %s -> %s  %s %s  %s  %lld/%lld bytes", (long long)r->id,
                          t, r->client, r->server, r->method ? r->method : "-",
                          r->uri ? r->uri : "-", status, (long long)r->request_bytes,
                          (long long)r->response_bytes);
    for (bit = 0; bit < 32 && rc == REPRO_OK; bit++) {
        const char *name = (r->flags & (1u << bit)) ? repro_xflag_name(1u << bit) : NULL;
        if (name == NULL)
            continue;
        rc = repro_buf_printf(b, "%s%s", first ? "  [" : ",", name);
        first = 0;
    }
    return rc ? rc : repro_buf_printf(b, "%s\n", first ? "" : "]");
}
