/*
 * app/replay_render: the views of `repro replays` (docs/formats.md).
 * Differences are stored as JSON (replay/report.c's form) and read back
 * with jansson to print them readably.
 */
#include "app/replay_render.h"

#include <jansson.h>
#include <string.h>

struct runs_ctx {
    int json;
    FILE *out;
};

static int print_run(void *vctx, const struct repro_replay_run_row *r)
{
    struct runs_ctx *c = vctx;
    char when[64];
    repro_time_text(when, sizeof when, r->started_us);
    if (!c->json) {
        fprintf(c->out,
                "%-5lld %s  %-22s %-8s sent %lld: %lld match, %lld mismatch, %lld error, "
                "%lld timeout, %lld crash, %lld unanswered  %.2f s\n",
                (long long)r->id, when, r->target, r->status, (long long)r->sent,
                (long long)r->matched, (long long)r->mismatched, (long long)r->errors,
                (long long)r->timeouts, (long long)r->crashes, (long long)r->unanswered,
                r->duration_s > 0 ? r->duration_s : 0.0);
        return ferror(c->out) ? REPRO_E_IO : 0;
    }
    json_t *o = json_pack("{s:I, s:s, s:s?, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
                          "run_id", (json_int_t)r->id, "target", r->target, "baseline", r->baseline,
                          "status", r->status, "selection", r->selection, "sent", (json_int_t)r->sent,
                          "matched", (json_int_t)r->matched, "mismatched", (json_int_t)r->mismatched,
                          "errors", (json_int_t)r->errors, "timeouts", (json_int_t)r->timeouts,
                          "crashes", (json_int_t)r->crashes, "unanswered", (json_int_t)r->unanswered,
                          "duration_s", r->duration_s, "requests_per_s", r->requests_per_s);
    if (!o)
        return REPRO_E_NOMEM;
    json_object_set_new(o, "started", json_real((double)r->started_us / 1e6));
    json_object_set_new(o, "speed", r->speed > 0 ? json_real(r->speed) : json_string("max"));
    json_object_set_new(o, "schedule_error_us",
                        json_pack("{s:f, s:f, s:f}", "p50", r->sched_p50_us, "p99", r->sched_p99_us,
                                  "max", r->sched_max_us));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        return REPRO_E_NOMEM;
    fprintf(c->out, "%s\n", text);
    free(text);
    return ferror(c->out) ? REPRO_E_IO : 0;
}

int repro_app_replay_runs(struct repro_store *s, int64_t run_id, int json, FILE *out,
                          struct repro_error *err)
{
    struct runs_ctx c = {json, out};
    return repro_store_replay_runs(s, run_id, print_run, &c, err);
}

static int print_finding(void *vctx, const struct repro_replay_result_row *r)
{
    FILE *out = vctx;
    fprintf(out, "exchange %lld%s: %s", (long long)r->exchange_id, r->loop ? " (loop)" : "",
            r->verdict);
    if (r->status)
        fprintf(out, ", status %d", r->status);
    if (r->error)
        fprintf(out, ", %s", r->error);
    if (r->latency_us >= 0)
        fprintf(out, ", %.0f us", r->latency_us);
    fprintf(out, "\n");
    json_t *d = r->differences_json ? json_loads(r->differences_json, 0, NULL) : NULL;
    for (size_t i = 0; i < json_array_size(d); i++) {
        json_t *x = json_array_get(d, i);
        const char *e = json_string_value(json_object_get(x, "expected"));
        const char *a = json_string_value(json_object_get(x, "actual"));
        fprintf(out, "    %-28s expected %s, got %s\n",
                json_string_value(json_object_get(x, "where")), e ? e : "(absent)",
                a ? a : "(absent)");
    }
    json_decref(d);
    return ferror(out) ? REPRO_E_IO : 0;
}

int repro_app_replay_diff(struct repro_store *s, int64_t run_id, FILE *out,
                          struct repro_error *err)
{
    int rc = repro_app_replay_runs(s, run_id, 0, out, err);
    return rc ? rc : repro_store_replay_results(s, run_id, 1, print_finding, out, err);
}
