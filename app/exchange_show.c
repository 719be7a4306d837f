/*
 * app/exchange_show: one stored exchange as `repro show` prints it — the
 * text view and a runnable curl command.
 *
 * The curl command sends the recorded request (redacted values stay
 * redacted) to the host it was sent to; chunked request bodies are
 * de-chunked and sent with --data-binary. When the stored request body is
 * shorter than the one on the wire (cut at the capture's --max-body cap,
 * or lost to a gap or the end of the capture), the command still sends
 * what was stored, but a shell comment above it and a warning say where
 * the body was cut.
 */
#include "app/exchange_show.h"

#include "app/exchange_render.h"
#include "repro/capture.h"
#include "repro/http.h"

#include <string.h>

/* Shell-quotes p[0..n): '...' when printable, else $'...' with escapes. */
static int shell_quote(struct repro_buf *b, const uint8_t *p, size_t n)
{
    size_t i;
    int printable = 1, rc = 0;

    for (i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] >= 0x7f)
            printable = 0;
    if (printable) {
        REPRO_TRY(rc, repro_buf_append(b, "'", 1));
        for (i = 0; i < n; i++)
            REPRO_TRY(rc, p[i] == '\'' ? repro_buf_append(b, "'\\''", 4) : repro_buf_append(b, p + i, 1));
        REPRO_TRY(rc, repro_buf_append(b, "'", 1));
        return rc;
    }
    REPRO_TRY(rc, repro_buf_append(b, "$'", 2));
    for (i = 0; i < n; i++) {
        if (p[i] == '\'' || p[i] == '\\')
            REPRO_TRY(rc, repro_buf_printf(b, "\\%c", p[i]));
        else if (p[i] >= 0x20 && p[i] < 0x7f)
            REPRO_TRY(rc, repro_buf_append(b, p + i, 1));
        else
            REPRO_TRY(rc, repro_buf_printf(b, "\\x%02x", p[i]));
    }
    REPRO_TRY(rc, repro_buf_append(b, "'", 1));
    return rc;
}

/* Why a stored request body is shorter than the body that was sent. */
static const char *cut_cause(const struct repro_exchange_row *r)
{
    if (r->flags & REPRO_XF_BODY_CAPPED)
        return "stored bytes were capped by capture --max-body or its memory budget";
    if (r->flags & (REPRO_XF_GAP | REPRO_XF_TRUNCATED))
        return "the capture missed the rest of the request";
    return "the stored request ends early";
}

/* Says, as a shell comment in b and as a warning on stderr, that the body
 * the curl command sends is only part of the recorded one. */
static int warn_body_cut(struct repro_buf *b, const struct repro_exchange_row *r,
                         const struct repro_http_head *h, size_t sent, int chunked, FILE *log)
{
    char what[160];

    if (chunked)
        snprintf(what, sizeof what,
                 "the chunked request body was cut after %zu bytes (the request was %lld bytes "
                 "on the wire, %zu stored)",
                 sent, (long long)r->request_bytes, r->request.len);
    else
        snprintf(what, sizeof what, "the request body was cut at %zu of %lld bytes", sent,
                 (long long)h->content_length);
    if (log)
        fprintf(log,
                "repro: warning: exchange %lld: %s (%s); the curl command sends only those %zu "
                "bytes\n",
                (long long)r->id, what, cut_cause(r), sent);
    return repro_buf_printf(b, "# repro: warning: %s (%s); this command sends only those %zu bytes\n",
                            what, cut_cause(r), sent);
}

/* Names, as a shell comment in b and a warning on log, what capture
 * redacted in the request: the command would send the mark literally. */
static int note_redacted(struct repro_buf *b, const struct repro_exchange_row *r,
                         const struct repro_http_head *h, struct repro_slice body, FILE *log)
{
    struct repro_buf what;
    int rc = REPRO_OK;
    const char *mark = REPRO_REDACT_MARK, *umark = REPRO_REDACT_MARK_URL;

    repro_buf_init(&what, 4096);
    for (size_t i = 0; i < h->n_headers; i++)
        if (h->headers[i].value.len &&
            memmem(h->headers[i].value.ptr, h->headers[i].value.len, mark, strlen(mark)))
            REPRO_TRY(rc, repro_buf_printf(&what, "%sheader %.*s", what.len ? ", " : "",
                                           (int)h->headers[i].name.len,
                                           (const char *)h->headers[i].name.ptr));
    /* query parameters: the name before each "=<mark>" */
    const uint8_t *t = h->target.ptr, *end = t + h->target.len;
    for (const uint8_t *m = t; m < end && rc == REPRO_OK; m++) {
        size_t left = (size_t)(end - m), ml = 0;
        if (left >= strlen(umark) && memcmp(m, umark, strlen(umark)) == 0)
            ml = strlen(umark);
        else if (left >= strlen(mark) && memcmp(m, mark, strlen(mark)) == 0)
            ml = strlen(mark);
        if (!ml || m == t || m[-1] != '=')
            continue;
        const uint8_t *n = m - 1;
        while (n > t && n[-1] != '?' && n[-1] != '&')
            n--;
        REPRO_TRY(rc, repro_buf_printf(&what, "%squery parameter %.*s", what.len ? ", " : "",
                                       (int)(m - 1 - n), (const char *)n));
        m += ml - 1;
    }
    if (body.len && (memmem(body.ptr, body.len, mark, strlen(mark)) ||
                     memmem(body.ptr, body.len, umark, strlen(umark))))
        REPRO_TRY(rc, repro_buf_printf(&what, "%sfields of the body", what.len ? ", " : ""));
    if (rc == REPRO_OK && what.len) {
        if (log)
            fprintf(log,
                    "repro: warning: exchange %lld: capture redacted %.*s; the command sends "
                    "[REDACTED] unless you put the real values in\n",
                    (long long)r->id, (int)what.len, (const char *)what.data);
        rc = repro_buf_printf(b,
                              "# repro: capture redacted %.*s: replace each [REDACTED] below with "
                              "a real value (e.g. -H 'Authorization: Bearer TOKEN') before running\n",
                              (int)what.len, (const char *)what.data);
    }
    repro_buf_release(&what);
    return rc;
}

int repro_app_exchange_curl(struct repro_buf *b, const struct repro_exchange_row *r, FILE *log,
                            int *body_cut)
{
    struct repro_http_head h;
    struct repro_buf body;
    const uint8_t *p = r->request.ptr;
    size_t i, len = r->request.len;
    int rc = 0, chunked, cut = 0;
    char url[2048];

    if (len == 0 || repro_http_parse_head(&h, REPRO_HTTP_REQUEST, p, len, len + 1, NULL, NULL) !=
                        REPRO_HTTP_DONE) {
        if (log)
            fprintf(log, "repro: show: exchange %lld has no complete request head to turn into curl\n",
                    (long long)r->id);
        return REPRO_E_MALFORMED;
    }
    if (h.target.len > 0 && h.target.ptr[0] == '/')
        snprintf(url, sizeof url, "http://%.*s%.*s",
                 (int)(h.host.len ? h.host.len : strlen(r->server)),
                 h.host.len ? (const char *)h.host.ptr : r->server, (int)h.target.len,
                 (const char *)h.target.ptr);
    else
        snprintf(url, sizeof url, "%.*s", (int)h.target.len, (const char *)h.target.ptr);
    chunked = (h.flags & REPRO_HTTP_H_CHUNKED) != 0;
    repro_buf_init(&body, 256 * 1024 * 1024);
    if (chunked)
        cut = repro_http_dechunk(p + h.head_len, len - h.head_len, &body) != REPRO_HTTP_DONE;
    else
        REPRO_TRY(rc, repro_buf_append(&body, p + h.head_len, len - h.head_len));
    if (!chunked && h.content_length >= 0 && (uint64_t)body.len < (uint64_t)h.content_length)
        cut = 1;
    if (cut) {
        *body_cut = 1;
        REPRO_TRY(rc, warn_body_cut(b, r, &h, body.len, chunked, log));
    }
    REPRO_TRY(rc, note_redacted(b, r, &h, (struct repro_slice){body.data, body.len}, log));
    if (repro_slice_ieq(h.method, "HEAD")) {
        /* -X HEAD makes curl wait for a body that never comes */
        REPRO_TRY(rc, repro_buf_printf(b, "curl --http1.1 -sS --head "));
    } else {
        REPRO_TRY(rc, repro_buf_printf(b, "curl --http1.1 -sS -X "));
        REPRO_TRY(rc, shell_quote(b, h.method.ptr, h.method.len));
        REPRO_TRY(rc, repro_buf_printf(b, " "));
    }
    REPRO_TRY(rc, shell_quote(b, (const uint8_t *)url, strlen(url)));
    for (i = 0; i < h.n_headers; i++) {
        struct repro_buf hv;
        struct repro_slice n = h.headers[i].name;
        if (repro_slice_ieq(n, "host") || repro_slice_ieq(n, "content-length") ||
            repro_slice_ieq(n, "transfer-encoding"))
            continue;
        repro_buf_init(&hv, 70000);
        REPRO_TRY(rc, repro_buf_append(&hv, n.ptr, n.len));
        REPRO_TRY(rc, repro_buf_append(&hv, h.headers[i].value.len ? ": " : ";", h.headers[i].value.len ? 2 : 1));
        REPRO_TRY(rc, repro_buf_append(&hv, h.headers[i].value.ptr, h.headers[i].value.len));
        REPRO_TRY(rc, repro_buf_printf(b, " \\\n  -H "));
        REPRO_TRY(rc, shell_quote(b, hv.data, hv.len));
        repro_buf_release(&hv);
    }
    if (body.len > 0 || h.content_length == 0) {
        REPRO_TRY(rc, repro_buf_printf(b, " \\\n  --data-binary "));
        REPRO_TRY(rc, shell_quote(b, body.data, body.len));
    }
    repro_buf_release(&body);
    REPRO_TRY(rc, repro_buf_append(b, "\n", 1));
    return rc ? REPRO_E_NOMEM : REPRO_OK;
}

int repro_app_exchange_text_view(struct repro_buf *b, const struct repro_exchange_row *r)
{
    int rc = repro_buf_printf(b, "exchange %lld (capture %lld, connection %lld #%lld): %s -> %s\n",
                              (long long)r->id, (long long)r->capture_id,
                              (long long)r->connection_id, (long long)r->seq, r->client, r->server);
    REPRO_TRY(rc, repro_buf_printf(b, "complete: %s  flags: ", r->complete ? "yes" : "no"));
    REPRO_TRY(rc, repro_app_xflags_json(b, r->flags));
    if (r->note)
        REPRO_TRY(rc, repro_buf_printf(b, "  note: %s", r->note));
    REPRO_TRY(rc, repro_buf_printf(b, "\n\n--- request (%lld bytes on the wire, %zu stored)\n",
                           (long long)r->request_bytes, r->request.len));
    REPRO_TRY(rc, repro_buf_append(b, r->request.ptr, r->request.len));
    REPRO_TRY(rc, repro_buf_printf(b, "%s--- response (%lld bytes on the wire, %zu stored)\n",
                           r->request.len && r->request.ptr[r->request.len - 1] != '\n' ? "\n" : "",
                           (long long)r->response_bytes, r->response.len));
    REPRO_TRY(rc, repro_buf_append(b, r->response.ptr, r->response.len));
    if (r->response.len && r->response.ptr[r->response.len - 1] != '\n')
        REPRO_TRY(rc, repro_buf_append(b, "\n", 1));
    return rc ? REPRO_E_NOMEM : REPRO_OK;
}

