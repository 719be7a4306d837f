/*
 * Fuzz target for the metrics exporter (app/metrics.h): the bytes a scraper
 * (or anyone who can reach --metrics) sends, and the text the writer
 * escapes.
 *
 * The input is one connection's bytes. They go through the request reader
 * whole, one byte at a time and in pieces of 1..64 bytes (sizes derived
 * from the input): every way must reach the same decision, a decided
 * request must ignore further bytes, and the route must be one of the
 * enum. Then the input, cut at its first NUL, is used as a HELP text and
 * as a label value: the writer's output must be exactly three lines (no
 * byte of the input may break a line) and unescaping the label value must
 * give the input back. Violations abort().
 */
#include "app/metrics.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_metrics.c:%d: check failed: %s\n", __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct decision {
    int done;
    enum repro_metrics_route route;
    int head_only;
};

/* piece 0: whole; otherwise pieces of 1..piece bytes chosen by seed. */
static struct decision read_request(const uint8_t *data, size_t size, size_t piece, uint32_t seed)
{
    struct repro_metrics_request rq;
    struct decision d;
    size_t off = 0;

    repro_metrics_request_init(&rq, 512);
    while (off < size) {
        size_t n = size - off;
        uint8_t *copy;
        enum repro_http_outcome rc;
        if (piece > 0) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % piece;
            if (n > size - off)
                n = size - off;
        }
        copy = malloc(n); /* exact size: ASan sees reads past the piece */
        CHECK(copy != NULL);
        memcpy(copy, data + off, n);
        rc = repro_metrics_request_feed(&rq, copy, n);
        free(copy);
        CHECK(rc == REPRO_HTTP_DONE || rc == REPRO_HTTP_NEED_MORE);
        CHECK((rc == REPRO_HTTP_DONE) == (rq.done != 0));
        off += n;
        if (rq.done)
            break;
    }
    d.done = rq.done;
    d.route = rq.route;
    d.head_only = rq.head_only;
    if (d.done) {
        CHECK(d.route >= REPRO_METRICS_R_METRICS && d.route <= REPRO_METRICS_R_TOO_LARGE);
        CHECK(repro_metrics_request_feed(&rq, data, size) == REPRO_HTTP_DONE);
        CHECK(rq.route == d.route && rq.head_only == d.head_only);
        CHECK(repro_metrics_route_status(d.route, NULL) >= 200);
    }
    repro_metrics_request_release(&rq);
    return d;
}

static int same(struct decision a, struct decision b)
{
    return a.done == b.done && (!a.done || (a.route == b.route && a.head_only == b.head_only));
}

/* Undoes label-value escaping of p[0..n) into out; returns its length. */
static size_t unescape(const uint8_t *p, size_t n, char *out)
{
    size_t i, k = 0;
    for (i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            i++;
            out[k++] = p[i] == 'n' ? '\n' : (char)p[i];
        } else {
            out[k++] = (char)p[i];
        }
    }
    return k;
}

static void check_writer(const uint8_t *data, size_t size)
{
    size_t len = strnlen((const char *)data, size), lines = 0, i;
    char *text = malloc(len + 1), *back = malloc(len + 1);
    struct repro_buf b;
    struct repro_metrics_label l = {"reason", NULL};
    const uint8_t *open, *close;

    CHECK(text != NULL && back != NULL);
    memcpy(text, data, len);
    text[len] = '\0';
    l.value = text;
    repro_buf_init(&b, 8 * len + 256);
    CHECK(repro_metrics_family(&b, "repro_fuzz_total", REPRO_METRICS_COUNTER, text) == REPRO_OK);
    CHECK(repro_metrics_counter(&b, "repro_fuzz_total", &l, 1, 1) == REPRO_OK);
    for (i = 0; i < b.len; i++)
        lines += b.data[i] == '\n';
    CHECK(lines == 3 && b.data[b.len - 1] == '\n');
    /* The label value lies between the first '="' of the sample line and
     * its closing '"} 1'. */
    open = (const uint8_t *)strstr((const char *)b.data, "\nrepro_fuzz_total{reason=\"");
    CHECK(open != NULL);
    open += strlen("\nrepro_fuzz_total{reason=\"");
    close = b.data + b.len - strlen("\"} 1\n");
    CHECK(close >= open && memcmp(close, "\"} 1\n", 5) == 0);
    CHECK(unescape(open, (size_t)(close - open), back) == len && memcmp(back, text, len) == 0);
    repro_buf_release(&b);
    free(text);
    free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t seed = size > 0 ? data[0] : 1;
    struct decision whole = read_request(data, size, 0, 0);

    CHECK(same(whole, read_request(data, size, 1, 0)));
    CHECK(same(whole, read_request(data, size, 64, seed)));
    if (size <= 4096)
        check_writer(data, size);
    return 0;
}
