/*
 * The metrics server of app/metrics.c on its own, for test_metrics.py:
 *
 *   metrics_server HOSTPORT [TIMEOUT_MS]
 *
 * serves a fixed set of families (a counter per drop reason, gauges with
 * awkward values, label values and help text that need escaping, and a
 * counter of renders that grows with each scrape), prints "LISTENING PORT"
 * on stdout once it listens, and stops when stdin closes, printing
 * "STOPPED scrapes=N errors=N timeouts=N". A start failure prints the
 * error on stderr and exits 2.
 */
#include "app/metrics.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic uint64_t renders;

static int render(void *ctx, struct repro_buf *out)
{
    static const char *const reasons[] = {"kernel", "queue_full", "memory_cap"};
    const struct repro_metrics_label odd[] = {{"path", "C:\\dir \"quoted\"\nnext line"},
                                              {"empty", ""}};
    uint64_t n = atomic_fetch_add(&renders, 1) + 1;
    int rc = REPRO_OK;
    size_t i;
    (void)ctx;

    REPRO_TRY(rc, repro_metrics_family(out, "repro_test_renders_total", REPRO_METRICS_COUNTER,
                                       "Times the metrics were rendered."));
    REPRO_TRY(rc, repro_metrics_counter(out, "repro_test_renders_total", NULL, 0, n));
    REPRO_TRY(rc, repro_metrics_family(out, "repro_test_dropped_packets_total",
                                       REPRO_METRICS_COUNTER,
                                       "Packets dropped, by reason.\nA second line \\ too."));
    for (i = 0; i < sizeof reasons / sizeof *reasons; i++) {
        struct repro_metrics_label l = {"reason", reasons[i]};
        REPRO_TRY(rc, repro_metrics_counter(out, "repro_test_dropped_packets_total", &l, 1,
                                            i == 2 ? UINT64_C(9007199254740993) : i));
    }
    REPRO_TRY(rc, repro_metrics_family(out, "repro_test_value", REPRO_METRICS_GAUGE,
                                       "Awkward values and labels."));
    REPRO_TRY(rc, repro_metrics_gauge(out, "repro_test_value", odd, 2, 0.1));
    REPRO_TRY(rc, repro_metrics_gauge(out, "repro_test_value", (struct repro_metrics_label[]){{"v", "inf"}},
                                      1, INFINITY));
    REPRO_TRY(rc, repro_metrics_gauge(out, "repro_test_value", (struct repro_metrics_label[]){{"v", "-inf"}},
                                      1, -INFINITY));
    REPRO_TRY(rc, repro_metrics_gauge(out, "repro_test_value", (struct repro_metrics_label[]){{"v", "nan"}},
                                      1, NAN));
    REPRO_TRY(rc, repro_metrics_gauge(out, "repro_test_value", (struct repro_metrics_label[]){{"v", "big"}},
                                      1, -1.5e300));
    return rc;
}

int main(int argc, char **argv)
{
    struct repro_metrics_limits lim = {0};
    struct repro_metrics_server *s = NULL;
    struct repro_metrics_server_stats st;
    struct repro_error err = {0};
    char c;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: metrics_server HOSTPORT [TIMEOUT_MS]\n");
        return 64;
    }
    if (argc == 3)
        lim.timeout_ms = atoi(argv[2]);
    if (repro_metrics_server_start_with(argv[1], &lim, render, NULL, &s, &err) != REPRO_OK) {
        fprintf(stderr, "metrics_server: %s\n", err.msg);
        return 2;
    }
    printf("LISTENING %d\n", repro_metrics_server_port(s));
    fflush(stdout);
    while (read(0, &c, 1) > 0)
        ;
    repro_metrics_server_stats(s, &st);
    repro_metrics_server_stop(s);
    printf("STOPPED scrapes=%llu errors=%llu timeouts=%llu\n", (unsigned long long)st.scrapes,
           (unsigned long long)st.errors, (unsigned long long)st.timeouts);
    return 0;
}
