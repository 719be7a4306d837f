/*
 * app/capture_rows: capture records to store rows, and the sink that
 * stores a capture session. Conversions copy scalars and borrow bytes;
 * they never allocate.
 */
#include "app/capture_rows.h"

#include <string.h>

void repro_app_conn_row(const struct repro_conn_info *c, int64_t capture_id,
                        struct repro_store_conn *out)
{
    memset(out, 0, sizeof *out);
    out->id = c->store_id > 0 ? c->store_id : 0; /* capture starts it at -1 */
    out->local_id = c->id;
    out->capture_id = capture_id;
    out->family = c->family;
    memcpy(out->client_ip, c->client_ip, sizeof out->client_ip);
    memcpy(out->server_ip, c->server_ip, sizeof out->server_ip);
    out->client_port = c->client_port;
    out->server_port = c->server_port;
    out->opened_us = c->opened_us;
    out->closed_us = c->closed_us;
    out->end_reason = repro_conn_end_name(c->end_reason);
    out->mid_stream = c->mid_stream;
    out->is_http = c->is_http;
    out->bytes_c2s = c->bytes_c2s;
    out->bytes_s2c = c->bytes_s2c;
    out->gap_bytes = c->gap_bytes;
    out->n_exchanges = c->n_exchanges;
}

void repro_app_exchange_row(const struct repro_conn_info *c, const struct repro_exchange *x,
                            int64_t capture_id, struct repro_store_exchange *out)
{
    memset(out, 0, sizeof *out);
    out->capture_id = capture_id;
    out->connection_id = c->store_id > 0 ? c->store_id : 0;
    out->conn_local_id = c->id;
    out->seq = x->seq;
    out->method = x->method;
    out->uri = x->uri;
    out->host = x->host;
    out->reason = x->reason;
    out->request = x->request;
    out->response = x->response;
    out->http_version = x->version;
    out->interim = x->interim;
    out->note = x->note;
    out->status = x->status;
    out->request_first_us = x->req_first_us;
    out->request_last_us = x->req_last_us;
    out->response_first_us = x->resp_first_us;
    out->response_last_us = x->resp_last_us;
    out->request_bytes = x->request_bytes;
    out->response_bytes = x->response_bytes;
    out->flags = x->flags;
    out->complete = (x->flags & REPRO_XF_INCOMPLETE) == 0;
    memcpy(out->request_digest, x->request_digest, sizeof out->request_digest);
    memcpy(out->response_digest, x->response_digest, sizeof out->response_digest);
    out->has_request_digest = x->has_request_digest;
    out->has_response_digest = x->has_response_digest;
}

size_t repro_app_capture_counters(const struct repro_capture_stats *st,
                                  struct repro_store_counter *out)
{
    static const char *const skipped[REPRO_SKIP__COUNT] = {
        [REPRO_SKIP_NOT_IP] = "skipped_not_ip",
        [REPRO_SKIP_NOT_TCP] = "skipped_not_tcp",
        [REPRO_SKIP_FRAGMENT] = "skipped_fragments",
        [REPRO_SKIP_LINKTYPE] = "skipped_link_type",
    };
    size_t n = 0;
    int k;

#define COUNTER(field, doc)                                                 \
    out[n].name = #field;                                                   \
    out[n++].value = st->field;
    REPRO_CAPTURE_COUNTERS(COUNTER)
#undef COUNTER
    for (k = 0; k < REPRO_SKIP__COUNT; k++) {
        if (skipped[k] == NULL)
            continue;
        out[n].name = skipped[k];
        out[n++].value = st->skipped[k];
    }
    return n;
}

/* The writer's figures as counters; returns how many (at most 7). */
static size_t committed_counters(const struct repro_capture_stats *st,
                                 const struct repro_store_writer_stats *ws,
                                 struct repro_store_counter *out)
{
    size_t n = 0;

#define ADD(label, v)                                                       \
    out[n].name = label;                                                    \
    out[n++].value = (v);
    ADD("stored_connections", ws->connections)
    ADD("exchanges_not_stored", st->exchanges > ws->exchanges ? st->exchanges - ws->exchanges : 0)
    ADD("store_transactions", ws->transactions)
    ADD("store_busy_retries", ws->busy_retries)
    ADD("store_blocked_ms", ws->blocked_ms)
    ADD("pruned_exchanges", ws->pruned_exchanges)
    ADD("pruned_connections", ws->pruned_connections)
#undef ADD
    return n;
}

int repro_app_capture_end(struct repro_store *s, int64_t capture_id,
                          const struct repro_capture_stats *st,
                          const struct repro_app_capture_outcome *how, struct repro_error *err)
{
    struct repro_store_counter counters[REPRO_APP_CAPTURE_N_COUNTERS + 7 + REPRO_APP_CAPTURE_MAX_EXTRA];
    struct repro_store_capture_end row;
    size_t i, n;

    if (how->n_extra > REPRO_APP_CAPTURE_MAX_EXTRA)
        return repro_error_set(err, REPRO_E_INVAL,
                               "cannot finish the capture record: %zu extra counters, more than %d",
                               how->n_extra, REPRO_APP_CAPTURE_MAX_EXTRA);
    n = repro_app_capture_counters(st, counters);
    if (how->committed) {
        /* What the summary counts is what the database holds. */
        for (i = 0; i < n; i++)
            if (strcmp(counters[i].name, "exchanges") == 0)
                counters[i].value = how->committed->exchanges;
        n += committed_counters(st, how->committed, counters + n);
    }
    for (i = 0; i < how->n_extra; i++)
        counters[n++] = how->extra[i];
    row.status = how->status;
    row.counters = counters;
    row.n_counters = n;
    row.error = how->error;
    return repro_store_capture_end(s, capture_id, &row, err);
}

/* ---- the store sink ---------------------------------------------------- */

static int sink_conn_open(void *ctx, struct repro_conn_info *c)
{
    struct repro_app_store_sink *ss = ctx;
    struct repro_store_conn row;
    struct repro_store_row r = {REPRO_ROW_CONN_OPEN, {.conn = &row}};

    repro_app_conn_row(c, ss->capture_id, &row);
    if (ss->writer)
        return repro_store_writer_put(ss->writer, &r, ss->err);
    return repro_store_conn_insert(ss->store, &row, &c->store_id, ss->err);
}

static int sink_exchange(void *ctx, const struct repro_conn_info *c, const struct repro_exchange *x)
{
    struct repro_app_store_sink *ss = ctx;
    struct repro_store_exchange row;
    struct repro_store_row r = {REPRO_ROW_EXCHANGE, {.exchange = &row}};

    repro_app_exchange_row(c, x, ss->capture_id, &row);
    if (ss->writer)
        return repro_store_writer_put(ss->writer, &r, ss->err);
    return repro_store_exchange_insert(ss->store, &row, NULL, ss->err);
}

static int sink_conn_close(void *ctx, const struct repro_conn_info *c)
{
    struct repro_app_store_sink *ss = ctx;
    struct repro_store_conn row;
    struct repro_store_row r = {REPRO_ROW_CONN_CLOSE, {.conn = &row}};

    repro_app_conn_row(c, ss->capture_id, &row);
    if (ss->writer)
        return repro_store_writer_put(ss->writer, &r, ss->err);
    return repro_store_conn_update(ss->store, &row, ss->err);
}

struct repro_capture_sink repro_app_store_sink(struct repro_app_store_sink *ss)
{
    struct repro_capture_sink sink = {ss, sink_conn_open, sink_exchange, sink_conn_close};
    return sink;
}
