/*
 * Fuzz target: arbitrary bytes as a capture file through the whole
 * pipeline — libpcap's reader, decoding, reassembly, HTTP framing,
 * pairing, redaction — into an in-memory store. Checks the invariants the
 * sink can see (slices in bounds, flags known, wire bytes >= stored bytes)
 * and aborts on a violation.
 */
#include "app/capture_rows.h"
#include "repro/capture.h"
#include "repro/store.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>

static struct repro_store *store;
static struct repro_app_store_sink store_sink; /* straight into the store */
static struct repro_capture_sink into_store;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "invariant violated: %s\n", what);
        abort();
    }
}

static int on_open(void *ctx, struct repro_conn_info *c)
{
    (void)ctx;
    return into_store.conn_open(into_store.ctx, c);
}

static int on_exchange(void *ctx, const struct repro_conn_info *c, const struct repro_exchange *x)
{
    (void)ctx;
    check((x->flags & ~0xfffu) == 0, "unknown exchange flag");
    check(x->request.len == 0 || x->request.ptr != NULL, "request slice");
    check(x->response.len == 0 || x->response.ptr != NULL, "response slice");
    check(x->method.len == 0 || (x->method.ptr >= x->request.ptr &&
                                 x->method.ptr + x->method.len <= x->request.ptr + x->request.len),
          "method inside the request");
    check(x->uri.len == 0 || (x->uri.ptr >= x->request.ptr &&
                              x->uri.ptr + x->uri.len <= x->request.ptr + x->request.len),
          "uri inside the request");
    check((x->flags & REPRO_XF_REDACTED) || (x->flags & REPRO_XF_BODY_CAPPED) ||
              x->request_bytes >= x->request.len,
          "request wire bytes >= stored bytes");
    check(c->store_id > 0, "connection stored before its exchanges");
    return into_store.exchange(into_store.ctx, c, x);
}

static int on_close(void *ctx, const struct repro_conn_info *c)
{
    (void)ctx;
    return into_store.conn_close(into_store.ctx, c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *fields[] = {"password"};
    static const char *params[] = {"token"};
    struct repro_redact_rules rules = {0, NULL, 0, params, 1, fields, 1, NULL, 0};
    struct repro_capture_sink sink = {NULL, on_open, on_exchange, on_close};
    struct repro_capture_limits lim;
    struct repro_capture *cap;
    char ebuf[PCAP_ERRBUF_SIZE];
    FILE *f;
    pcap_t *p;
    struct pcap_pkthdr *h;
    const u_char *bytes;
    uint64_t n = 0;
    int64_t cid = 1;

    if (size == 0)
        return 0;
    /* A fresh in-memory database per input keeps memory flat. */
    repro_log_set_level(REPRO_LOG_ERROR); /* bad input is the norm here */
    if (repro_store_open(":memory:", 0, &store, NULL) != REPRO_OK)
        abort();
    {
        struct repro_store_capture row = {"file", "fuzz", NULL, 1, 0, 0};
        repro_store_capture_begin(store, &row, &cid, NULL);
    }
    store_sink.store = store;
    store_sink.capture_id = cid;
    into_store = repro_app_store_sink(&store_sink);
    f = fmemopen((void *)data, size, "rb");
    p = f ? pcap_fopen_offline(f, ebuf) : NULL; /* owns f from here on */
    if (p == NULL) {
        if (f)
            fclose(f);
        repro_store_close(store);
        return 0;
    }
    repro_capture_limits_default(&lim);
    lim.http.max_store = 4096;
    lim.max_stream_ooo = 8192;
    lim.max_total = 64 * 1024;
    lim.max_connections = 16;
    lim.max_pipeline = 4;
    cap = repro_capture_new(&sink, &rules, &lim);
    if (cap != NULL) {
        while (pcap_next_ex(p, &h, &bytes) == 1 && n < 100000)
            repro_capture_packet(cap, pcap_datalink(p), bytes, h->caplen,
                                 (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec, ++n, NULL);
        repro_capture_finish(cap, NULL);
        repro_capture_free(cap);
    }
    pcap_close(p);
    repro_store_close(store);
    store = NULL;
    return 0;
}
