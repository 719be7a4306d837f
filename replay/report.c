/*
 * Replay reports: the JSON report of the command-line contract
 * (docs/formats.md, "Replay report") and JUnit XML for CI systems (one
 * test case per replayed request; a mismatch is a failure carrying its
 * differences, an error, timeout or crash is an error; unanswered requests
 * are skipped: production never answered them).
 *
 * Results accumulate in memory (a few hundred bytes per request) and both
 * files are written at close, the run's figures first, so `head` shows
 * them; a file is written to a temporary name and renamed, so a reader
 * never sees half a report.
 */
#include "repro/replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct repro_replay_report {
    char *json_path, *junit_path;
    struct repro_replay_report_meta meta;
    char *target, *baseline;
    struct repro_buf results; /* JSON objects, comma-separated */
    struct repro_buf cases;   /* <testcase> elements */
    uint64_t n, failures, errors, skipped;
    double seconds;
};

static char *dup_or_null(const char *s)
{
    return s ? repro_strdup(s) : NULL;
}

int repro_replay_report_open(const char *json_path, const char *junit_path,
                             const struct repro_replay_report_meta *meta,
                             struct repro_replay_report **out, struct repro_error *err)
{
    struct repro_replay_report *r = repro_calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        goto nomem;
    r->meta = *meta;
    r->json_path = dup_or_null(json_path);
    r->junit_path = dup_or_null(junit_path);
    r->target = dup_or_null(meta->target);
    r->baseline = dup_or_null(meta->baseline);
    repro_buf_init(&r->results, SIZE_MAX);
    repro_buf_init(&r->cases, SIZE_MAX);
    if ((json_path && !r->json_path) || (junit_path && !r->junit_path) ||
        (meta->target && !r->target) || (meta->baseline && !r->baseline))
        goto nomem;
    *out = r;
    return REPRO_OK;
nomem:
    repro_replay_report_close(r, NULL, NULL);
    return repro_error_set(err, REPRO_E_NOMEM, "cannot start the replay report: out of memory");
}

/* The start line of a request: method and target. */
static void start_line(struct repro_slice q, struct repro_slice *method, struct repro_slice *target)
{
    const uint8_t *sp = q.len ? memchr(q.ptr, ' ', q.len) : NULL;
    *method = (struct repro_slice){q.ptr, sp ? (size_t)(sp - q.ptr) : 0};
    *target = (struct repro_slice){0};
    if (sp) {
        const uint8_t *t = sp + 1, *end = q.ptr + q.len;
        const uint8_t *sp2 = memchr(t, ' ', (size_t)(end - t));
        const uint8_t *nl = memchr(t, '\r', (size_t)(end - t));
        const uint8_t *stop = sp2 && (!nl || sp2 < nl) ? sp2 : nl ? nl : end;
        *target = (struct repro_slice){t, (size_t)(stop - t)};
    }
}

static int xml_text(struct repro_buf *b, const void *vp, size_t len)
{
    const uint8_t *p = vp;
    int rc = REPRO_OK;
    for (size_t i = 0; i < len && rc == REPRO_OK; i++) {
        switch (p[i]) {
        case '<': rc = repro_buf_append(b, "&lt;", 4); break;
        case '>': rc = repro_buf_append(b, "&gt;", 4); break;
        case '&': rc = repro_buf_append(b, "&amp;", 5); break;
        case '"': rc = repro_buf_append(b, "&quot;", 6); break;
        case '\'': rc = repro_buf_append(b, "&apos;", 6); break;
        default:
            /* XML 1.0 forbids most control bytes; bytes >= 0x80 are kept
             * only as the printable '?' to stay well-formed whatever the
             * encoding */
            if (p[i] == '\t' || p[i] == '\n' || (p[i] >= 0x20 && p[i] < 0x7f))
                rc = repro_buf_append(b, &p[i], 1);
            else
                rc = repro_buf_append(b, "?", 1);
        }
    }
    return rc;
}

static int xml_cstr(struct repro_buf *b, const char *s)
{
    return xml_text(b, s, s ? strlen(s) : 0);
}

int repro_replay_diffs_json(struct repro_buf *b, const struct repro_diffs *d)
{
    int rc = repro_buf_append(b, "[", 1);
    for (size_t i = 0; rc == REPRO_OK && i < d->n; i++) {
        const struct repro_diff *x = &d->v[i];
        rc = repro_buf_printf(b, "%s{\"kind\": \"%s\", \"where\": ", i ? ", " : "",
                              repro_diff_kind_name(x->kind));
        rc = rc ? rc : repro_json_cstr(b, x->where);
        rc = rc ? rc : repro_buf_printf(b, ", \"expected\": ");
        rc = rc ? rc : repro_json_cstr(b, x->expected);
        rc = rc ? rc : repro_buf_printf(b, ", \"actual\": ");
        rc = rc ? rc : repro_json_cstr(b, x->actual);
        rc = rc ? rc : repro_buf_append(b, "}", 1);
    }
    return rc ? rc : repro_buf_append(b, "]", 1);
}

int repro_replay_subs_json(struct repro_buf *b, const struct repro_corr_subst *subs, size_t n)
{
    int rc = repro_buf_append(b, "[", 1);
    for (size_t i = 0; rc == REPRO_OK && i < n; i++) {
        const struct repro_corr_subst *s = &subs[i];
        rc = repro_buf_printf(b, "%s{\"kind\": ", i ? ", " : "");
        rc = rc ? rc : repro_json_cstr(b, s->kind);
        rc = rc ? rc : repro_buf_printf(b, ", \"name\": ");
        rc = rc ? rc : repro_json_cstr(b, s->name);
        rc = rc ? rc : repro_buf_printf(b, ", \"old\": ");
        rc = rc ? rc : repro_json_cstr(b, s->old_val);
        rc = rc ? rc : repro_buf_printf(b, ", \"new\": ");
        rc = rc ? rc : repro_json_cstr(b, s->new_val);
        rc = rc ? rc : repro_buf_append(b, "}", 1);
    }
    return rc ? rc : repro_buf_append(b, "]", 1);
}

static int json_result(struct repro_replay_report *r, const struct repro_replay_outcome *o,
                       const struct repro_replay_input *in, int recorded_status)
{
    struct repro_buf *b = &r->results;
    const struct repro_replay_result *x = o->result;
    int rc = repro_buf_printf(b, "%s\n    {\"exchange_id\": %lld, \"loop\": %u, \"verdict\": \"%s\"",
                              r->n ? "," : "", (long long)in->exchange_id, o->loop,
                              repro_verdict_name(o->verdict));
    rc = rc ? rc : repro_buf_printf(b, ", \"status\": %d, \"recorded_status\": %d", x->status,
                                    recorded_status);
    if (x->error != REPRO_REPLAY_OK)
        rc = rc ? rc : repro_buf_printf(b, ", \"error\": \"%s\"", repro_replay_errkind_name(x->error));
    else
        rc = rc ? rc : repro_buf_printf(b, ", \"error\": null");
    if (x->sent_ns >= 0)
        rc = rc ? rc : repro_buf_printf(b, ", \"schedule_error_us\": %.1f, \"latency_us\": %.1f, "
                                           "\"latency_from_intended_us\": %.1f",
                                        (double)(x->sent_ns - x->intended_ns) / 1e3,
                                        (double)(x->done_ns - x->sent_ns) / 1e3,
                                        (double)(x->done_ns - x->intended_ns) / 1e3);
    rc = rc ? rc : repro_buf_printf(b, ", \"reopened\": %s, \"still_redacted\": %s, \"noise\": %zu",
                                    x->reopened ? "true" : "false",
                                    o->still_redacted ? "true" : "false", o->n_noise);
    rc = rc ? rc : repro_buf_printf(b, ", \"differences\": ");
    rc = rc ? rc : repro_replay_diffs_json(b, o->diffs);
    rc = rc ? rc : repro_buf_printf(b, ", \"substitutions\": ");
    rc = rc ? rc : repro_replay_subs_json(b, o->subs, o->n_subs);
    return rc ? rc : repro_buf_append(b, "}", 1);
}

static int junit_case(struct repro_replay_report *r, const struct repro_replay_outcome *o,
                      const struct repro_replay_input *in)
{
    struct repro_buf *b = &r->cases;
    struct repro_slice method, target;
    const struct repro_replay_result *x = o->result;
    double secs = x->sent_ns >= 0 ? (double)(x->done_ns - x->sent_ns) / 1e9 : 0;

    start_line(in->request, &method, &target);
    int rc = repro_buf_printf(b, "    <testcase classname=\"replay.%s\" name=\"#%lld ",
                              repro_verdict_name(o->verdict), (long long)in->exchange_id);
    rc = rc ? rc : xml_text(b, method.ptr, method.len);
    rc = rc ? rc : repro_buf_append(b, " ", 1);
    rc = rc ? rc : xml_text(b, target.ptr, target.len > 200 ? 200 : target.len);
    if (o->loop)
        rc = rc ? rc : repro_buf_printf(b, " (loop %u)", o->loop + 1);
    rc = rc ? rc : repro_buf_printf(b, "\" time=\"%.6f\"", secs);
    switch (o->verdict) {
    case REPRO_VERDICT_MATCH:
        return rc ? rc : repro_buf_printf(b, "/>\n");
    case REPRO_VERDICT_UNANSWERED:
        return rc ? rc : repro_buf_printf(b, "><skipped message=\"production never answered this "
                                             "request\"/></testcase>\n");
    case REPRO_VERDICT_MISMATCH:
        rc = rc ? rc : repro_buf_printf(b, "><failure type=\"mismatch\" message=\"%zu difference%s\">",
                                        o->diffs->n, o->diffs->n == 1 ? "" : "s");
        for (size_t i = 0; rc == REPRO_OK && i < o->diffs->n; i++) {
            const struct repro_diff *d = &o->diffs->v[i];
            rc = xml_cstr(b, d->where);
            rc = rc ? rc : repro_buf_printf(b, ": expected ");
            rc = rc ? rc : xml_cstr(b, d->expected ? d->expected : "(absent)");
            rc = rc ? rc : repro_buf_printf(b, ", got ");
            rc = rc ? rc : xml_cstr(b, d->actual ? d->actual : "(absent)");
            rc = rc ? rc : repro_buf_append(b, "\n", 1);
        }
        return rc ? rc : repro_buf_printf(b, "</failure></testcase>\n");
    default:
        return rc ? rc : repro_buf_printf(b, "><error type=\"%s\" message=\"%s\"/></testcase>\n",
                                          repro_verdict_name(o->verdict),
                                          x->error != REPRO_REPLAY_OK
                                              ? repro_replay_errkind_name(x->error)
                                              : repro_verdict_name(o->verdict));
    }
}

int repro_replay_report_add(struct repro_replay_report *r, const struct repro_replay_outcome *o,
                            const struct repro_replay_input *in)
{
    int recorded_status = 0;
    if (in->response.len > 12 && memcmp(in->response.ptr, "HTTP/1.", 7) == 0)
        recorded_status = atoi((const char *)in->response.ptr + 9);
    int rc = r->json_path ? json_result(r, o, in, recorded_status) : REPRO_OK;
    if (rc == REPRO_OK && r->junit_path)
        rc = junit_case(r, o, in);
    r->n++;
    r->failures += o->verdict == REPRO_VERDICT_MISMATCH;
    r->skipped += o->verdict == REPRO_VERDICT_UNANSWERED;
    r->errors += o->verdict == REPRO_VERDICT_ERROR || o->verdict == REPRO_VERDICT_TIMEOUT ||
                 o->verdict == REPRO_VERDICT_CRASH;
    if (o->result->sent_ns >= 0)
        r->seconds += (double)(o->result->done_ns - o->result->sent_ns) / 1e9;
    return rc;
}

/* Writes b to path through a temporary file and rename(2). */
static int write_file(const char *path, const struct repro_buf *head, const struct repro_buf *body,
                      const char *tail, struct repro_error *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return repro_error_set(err, REPRO_E_IO, "cannot write report '%s': %s", path,
                               strerror(errno));
    int ok = (!head->len || fwrite(head->data, 1, head->len, f) == head->len) &&
             (!body->len || fwrite(body->data, 1, body->len, f) == body->len) &&
             fputs(tail, f) >= 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return repro_error_set(err, REPRO_E_IO, "cannot write report '%s': %s", path, strerror(e));
    }
    return REPRO_OK;
}

int repro_replay_report_close(struct repro_replay_report *r, const struct repro_replay_summary *s,
                              struct repro_error *err)
{
    struct repro_buf h;
    int rc = REPRO_OK;

    if (!r)
        return REPRO_OK;
    repro_buf_init(&h, SIZE_MAX);
    if (s && r->json_path) {
        const struct repro_replay_stats *t = &s->target;
        double dur = t->first_send_ns >= 0 ? (double)(t->last_done_ns - t->first_send_ns) / 1e9 : 0;
        rc = repro_buf_printf(&h, "{\n  \"run_id\": ");
        rc = rc ? rc : (r->meta.run_id >= 0 ? repro_buf_printf(&h, "%lld", (long long)r->meta.run_id)
                                            : repro_buf_printf(&h, "null"));
        rc = rc ? rc : repro_buf_printf(&h, ",\n  \"target\": ");
        rc = rc ? rc : repro_json_cstr(&h, r->target);
        rc = rc ? rc : repro_buf_printf(&h, ",\n  \"baseline\": ");
        rc = rc ? rc : repro_json_cstr(&h, r->baseline);
        rc = rc ? rc : (r->meta.speed > 0 ? repro_buf_printf(&h, ",\n  \"speed\": %g", r->meta.speed)
                                          : repro_buf_printf(&h, ",\n  \"speed\": \"max\""));
        rc = rc ? rc : repro_buf_printf(
                           &h,
                           ",\n  \"sent\": %llu,\n  \"matched\": %llu,\n  \"mismatched\": %llu,"
                           "\n  \"errors\": %llu,\n  \"timeouts\": %llu,\n  \"crashes\": %llu,"
                           "\n  \"unanswered\": %llu,\n  \"reopened_connections\": %llu,"
                           "\n  \"substitutions\": %llu,\n  \"still_redacted\": %llu,"
                           "\n  \"noise_discarded\": %llu,",
                           (unsigned long long)t->sent,
                           (unsigned long long)s->verdicts[REPRO_VERDICT_MATCH],
                           (unsigned long long)s->verdicts[REPRO_VERDICT_MISMATCH],
                           (unsigned long long)s->verdicts[REPRO_VERDICT_ERROR],
                           (unsigned long long)s->verdicts[REPRO_VERDICT_TIMEOUT],
                           (unsigned long long)s->verdicts[REPRO_VERDICT_CRASH],
                           (unsigned long long)s->verdicts[REPRO_VERDICT_UNANSWERED],
                           (unsigned long long)t->reopened, (unsigned long long)s->substitutions,
                           (unsigned long long)s->still_redacted,
                           (unsigned long long)s->noise_discarded);
        rc = rc ? rc : repro_buf_printf(
                           &h,
                           "\n  \"duration_s\": %.6f,\n  \"requests_per_s\": %.1f,"
                           "\n  \"schedule_error_us\": {\"p50\": %.1f, \"p99\": %.1f, "
                           "\"p999\": %.1f, \"max\": %.1f},\n  \"noisy_fields\": [",
                           dur, dur > 0 ? (double)t->sent / dur : 0.0,
                           (double)t->sched_p50_ns / 1e3, (double)t->sched_p99_ns / 1e3,
                           (double)t->sched_p999_ns / 1e3, (double)t->sched_max_ns / 1e3);
        const struct repro_noise_field *f = NULL;
        size_t nf = s->noise ? repro_noise_fields(s->noise, &f) : 0, shown = 0;
        for (size_t i = 0; rc == REPRO_OK && i < nf; i++) {
            char rule[512];
            const char *why, *sug;
            if (!f[i].noisy)
                continue;
            sug = repro_noise_suggest(&f[i], rule, sizeof rule, &why);
            rc = repro_buf_printf(&h, "%s\n    {\"field\": ", shown++ ? "," : "");
            rc = rc ? rc : repro_json_cstr(&h, f[i].key);
            rc = rc ? rc : repro_buf_printf(&h, ", \"target\": %llu, \"baseline\": %llu, \"rule\": ",
                                            (unsigned long long)f[i].n_target,
                                            (unsigned long long)f[i].n_baseline);
            rc = rc ? rc : repro_json_cstr(&h, sug);
            rc = rc ? rc : repro_buf_printf(&h, ", \"refused\": ");
            rc = rc ? rc : repro_json_cstr(&h, why);
            rc = rc ? rc : repro_buf_append(&h, "}", 1);
        }
        rc = rc ? rc : repro_buf_printf(&h, "],\n  \"results\": [");
        if (rc != REPRO_OK)
            rc = repro_error_set(err, rc, "cannot write the replay report: out of memory");
        else
            rc = write_file(r->json_path, &h, &r->results, "\n  ]\n}\n", err);
    }
    if (s && r->junit_path && rc == REPRO_OK) {
        repro_buf_reset(&h);
        rc = repro_buf_printf(&h,
                              "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n"
                              "  <testsuite name=\"repro replay\" tests=\"%llu\" failures=\"%llu\" "
                              "errors=\"%llu\" skipped=\"%llu\" time=\"%.6f\">\n",
                              (unsigned long long)r->n, (unsigned long long)r->failures,
                              (unsigned long long)r->errors, (unsigned long long)r->skipped,
                              r->seconds);
        if (rc != REPRO_OK)
            rc = repro_error_set(err, rc, "cannot write the JUnit report: out of memory");
        else
            rc = write_file(r->junit_path, &h, &r->cases, "  </testsuite>\n</testsuites>\n", err);
    }
    repro_buf_release(&h);
    repro_buf_release(&r->results);
    repro_buf_release(&r->cases);
    repro_free(r->json_path);
    repro_free(r->junit_path);
    repro_free(r->target);
    repro_free(r->baseline);
    repro_free(r);
    return rc;
}
