/*
 * replay_engine_bench: the replay engine alone (replay/engine.c, no store,
 * no comparison) against a running HTTP server, on synthetic recorded
 * traces. bench/replay_bench.sh drives it next to wrk against the same
 * nginx; see bench/README.md.
 *
 *   replay_engine_bench timing PORT RATE SECONDS CONNS PATH
 *       a trace recorded at RATE requests/s over CONNS keep-alive
 *       connections (each answered 1.5 ms after it was sent, as a service
 *       with that latency would be), replayed at speed 1: prints the
 *       schedule error (actual - intended send time) p50/p99/p99.9/max and
 *       the drift of the last request.
 *   replay_engine_bench max PORT N CONNS PATH
 *       N requests recorded as wrk sends them (CONNS connections, each
 *       sending its next request when the previous answer came), replayed
 *       at speed max: prints requests/s (sent / (last answer - first
 *       send)).
 *
 * Output: one line of key=value pairs on stdout. Exit 0, 1 when requests
 * failed, 2 on a fatal error, 64 on usage.
 */
#include "repro/replay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
    fprintf(stderr, "usage: replay_engine_bench timing PORT RATE SECONDS CONNS PATH\n"
                    "       replay_engine_bench max PORT N CONNS PATH\n");
    return 64;
}

static int count(void *ctx, const struct repro_replay_result *r)
{
    (void)ctx;
    (void)r;
    return 0;
}

int main(int argc, char **argv)
{
    int timing;
    size_t n, conns;
    double rate = 0;
    if (argc == 7 && strcmp(argv[1], "timing") == 0) {
        timing = 1;
        rate = atof(argv[3]);
        n = (size_t)(rate * atof(argv[4]));
        conns = (size_t)atoi(argv[5]);
    } else if (argc == 6 && strcmp(argv[1], "max") == 0) {
        timing = 0;
        n = (size_t)atol(argv[3]);
        conns = (size_t)atoi(argv[4]);
    } else {
        return usage();
    }
    const char *path = argv[argc - 1];
    if (n == 0 || conns == 0 || (timing && rate <= 0))
        return usage();

    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: repro-bench\r\n\r\n",
             path);
    struct repro_slice q = {(const uint8_t *)req, strlen(req)};
    struct repro_replay_req *r = calloc(n, sizeof *r);
    struct repro_slice *qs = calloc(n, sizeof *qs);
    if (!r || !qs)
        return 2;
    for (size_t i = 0; i < n; i++) {
        size_t c = i % conns, k = i / conns;
        int64_t sent, answered;
        if (timing) {
            sent = (int64_t)((double)i * 1e6 / rate);
            answered = sent + 1500;
        } else {
            /* rounds of T = 100 us: conn c sends its k-th request at
             * k*T + c*T/conns and has the answer 0.9 T later */
            sent = (int64_t)(k * 100000 + c * 100000 / conns) / 1000;
            answered = sent + 90;
        }
        r[i] = (struct repro_replay_req){.exchange_id = (int64_t)i + 1, .conn_id = (int64_t)c,
                                         .seq = k, .sent_us = sent, .answered_us = answered,
                                         .conn_opened_us = -1, .conn_closed_us = -1};
        qs[i] = q;
    }

    struct repro_replay_plan *plan = NULL;
    struct repro_error err = {0};
    if (repro_replay_plan_build(r, n, &plan, &err) != REPRO_OK) {
        fprintf(stderr, "replay_engine_bench: %s\n", err.msg);
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct repro_replay_opts o = {.target = (const struct sockaddr *)&a, .target_len = sizeof a,
                                  .speed = timing ? 1.0 : 0, .timeout_ms = 5000,
                                  /* FIFO=1: as repro replay --realtime */
                                  .sched_fifo = timing && getenv("FIFO") != NULL};
    struct repro_replay_stats st;
    if (repro_replay_run(plan, qs, &o, count, NULL, &st, &err) != REPRO_OK) {
        fprintf(stderr, "replay_engine_bench: %s\n", err.msg);
        return 2;
    }
    uint64_t errors = st.sent - st.answered;
    double secs = (double)(st.last_done_ns - st.first_send_ns) / 1e9;
    if (timing)
        printf("mode=timing requests=%zu answered=%llu errors=%llu sched_p50_us=%.1f "
               "sched_p99_us=%.1f sched_p999_us=%.1f sched_max_us=%.1f sender_fifo=%d\n",
               n, (unsigned long long)st.answered, (unsigned long long)errors,
               (double)st.sched_p50_ns / 1e3, (double)st.sched_p99_ns / 1e3,
               (double)st.sched_p999_ns / 1e3, (double)st.sched_max_ns / 1e3, st.sender_fifo);
    else
        printf("mode=max requests=%zu answered=%llu errors=%llu seconds=%.3f requests_per_s=%.0f\n",
               n, (unsigned long long)st.answered, (unsigned long long)errors, secs,
               secs > 0 ? (double)st.sent / secs : 0.0);
    repro_replay_plan_free(plan);
    free(qs);
    free(r);
    return errors ? 1 : 0;
}
