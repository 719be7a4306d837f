/*
 * Logging: one sink (stderr unless the CLI installs another), a global
 * level, and per-component enabling of debug/trace output (--trace=,
 * REPRO_TRACE). stdout is never written here: it belongs to command output.
 */
#include "repro/core.h"

#include <stdio.h>
#include <string.h>

int repro__log_level = REPRO_LOG_WARN;

static repro_log_sink_fn log_sink;
static void *log_sink_ctx;
static char trace_spec[256];

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void repro_log_set_sink(repro_log_sink_fn sink, void *ctx)
{
    log_sink = sink;
    log_sink_ctx = ctx;
}

void repro_log_set_level(enum repro_log_level level)
{
    repro__log_level = (int)level;
}

/* Every component tag used with repro_log, for --trace (keep in step). */
const char *const repro_log_components =
    "capture,capture.decode,capture.tcp,capture.http,capture.core,capture.supervisor,"
    "store,symbolize,replay";

int repro_log_trace_valid(const char *spec, char *bad, size_t bad_len)
{
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        int ok = n == 3 && memcmp(p, "all", 3) == 0;
        for (const char *c = repro_log_components; !ok && *c;) {
            const char *ce = strchr(c, ',');
            size_t cn = ce ? (size_t)(ce - c) : strlen(c);
            ok = n > 0 && n <= cn && memcmp(c, p, n) == 0 && (n == cn || c[n] == '.');
            c += cn + (ce ? 1 : 0);
        }
        if (!ok) {
            snprintf(bad, bad_len, "%.*s", (int)n, p);
            return 0;
        }
        p = end ? end + 1 : NULL;
    }
    return 1;
}

void repro_log_set_trace(const char *spec)
{
    snprintf(trace_spec, sizeof trace_spec, "%s", spec ? spec : "");
    if (trace_spec[0] != '\0' && repro__log_level < REPRO_LOG_TRACE)
        repro__log_level = REPRO_LOG_TRACE;
}

/* Debug and trace messages pass only for components named in the trace
 * spec (by prefix); error/warn/info pass whenever the level allows. */
int repro__log_enabled(enum repro_log_level level, const char *component)
{
    const char *p = trace_spec;

    if (level <= REPRO_LOG_INFO)
        return 1;
    if (*p == '\0')
        return 0;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if ((n == 3 && memcmp(p, "all", 3) == 0) ||
            (n > 0 && strncmp(component, p, n) == 0))
            return 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

void repro__log(enum repro_log_level level, const char *component, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_sink != NULL) {
        log_sink(level, component, line, log_sink_ctx);
        return;
    }
    fprintf(stderr, "repro: %s: %s: %s\n", level_names[level], component, line);
}

char *repro_excerpt(char *out, size_t out_len, const uint8_t *p, size_t len)
{
    size_t i, n;

    if (out_len == 0)
        return out;
    n = len;
    if (n > out_len - 1)
        n = out_len > 4 ? out_len - 4 : out_len - 1;
    for (i = 0; i < n; i++)
        out[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '.';
    if (n < len && out_len > 4) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}
