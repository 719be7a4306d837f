/*
 * app/capture_list: the views of `repro captures` (docs/formats.md). The
 * counters beyond the table's own columns come from stats_json (jansson);
 * "cut" lists every dropped_* counter that is not zero.
 */
#include "app/capture_list.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct list {
    int json;
    FILE *out;
    size_t n;
};

static int one(void *ctx, const struct repro_capture_row *r)
{
    struct list *l = ctx;
    char from[48], to[48];
    json_t *stats = r->stats_json ? json_loads(r->stats_json, 0, NULL) : NULL;

    l->n++;
    if (l->json) {
        json_t *o = json_pack("{s:I, s:s?, s:s?, s:s?, s:s?, s:f, s:o?, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "id", (json_int_t)r->id, "source_kind", r->source_kind, "source",
                              r->source, "filter", r->filter, "status", r->status, "started",
                              (double)r->started_us / 1e6, "finished",
                              r->finished_us >= 0 ? json_real((double)r->finished_us / 1e6) : json_null(),
                              "packets", (json_int_t)r->packets, "bytes", (json_int_t)r->bytes,
                              "connections", (json_int_t)r->connections, "exchanges",
                              (json_int_t)r->exchanges, "incomplete", (json_int_t)r->incomplete,
                              "errors", (json_int_t)r->errors);
        if (!o) {
            json_decref(stats);
            return REPRO_E_NOMEM;
        }
        json_object_set(o, "counters", stats ? stats : json_null());
        if (r->error) /* a failed capture's reason (schema version 5) */
            json_object_set_new(o, "error", json_string(r->error));
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        json_decref(stats);
        if (!text)
            return REPRO_E_NOMEM;
        fprintf(l->out, "%s\n", text);
        free(text);
        return ferror(l->out) ? REPRO_E_IO : 0;
    }
    repro_time_text(from, sizeof from, r->started_us);
    repro_time_text(to, sizeof to, r->finished_us);
    fprintf(l->out, "%-5lld %s .. %s  %s '%s'%s%s%s  %s: %lld packets, %lld exchanges (%lld incomplete)",
            (long long)r->id, from, to, r->source_kind ? r->source_kind : "?",
            r->source ? r->source : "?", r->filter ? " filter '" : "", r->filter ? r->filter : "",
            r->filter ? "'" : "", r->status ? r->status : "?", (long long)r->packets,
            (long long)r->exchanges, (long long)r->incomplete);
    const char *k;
    json_t *v;
    int cut = 0;
    json_object_foreach(stats, k, v)
    {
        if (strncmp(k, "dropped_", 8) == 0 && json_integer_value(v) > 0)
            fprintf(l->out, "%s%s %lld", cut++ ? ", " : "; cut: ", k + 8,
                    (long long)json_integer_value(v));
    }
    if (r->error)
        fprintf(l->out, "; %s", r->error);
    fprintf(l->out, "\n");
    json_decref(stats);
    return ferror(l->out) ? REPRO_E_IO : 0;
}

int repro_app_captures(struct repro_store *s, int json, FILE *out, size_t *n,
                       struct repro_error *err)
{
    struct list l = {json, out, 0};
    int rc = repro_store_captures(s, one, &l, err);
    *n = l.n;
    return rc;
}
