/*
 * Content codings undone (RFC 9110 section 8.4.1): gzip (RFC 1952), and
 * "deflate", which is a zlib stream (RFC 1950) but is often sent as raw
 * deflate (RFC 1951), so both are tried. Through zlib.
 *
 * Capture decodes recorded bodies with it before redacting and storing
 * them (capture/redact.c); replay decodes staging's bodies with it before
 * comparing them with those (replay/run.c), so both sides are compared in
 * the same form.
 *
 * Output is bounded by the caller's cap: a small input that inflates to
 * gigabytes (a "zip bomb") is cut at the cap and reported as CAPPED, never
 * held whole. Left out: br, zstd and lists of codings (reported OTHER by
 * repro_http_coding_of, left to the caller).
 */
#include "repro/http.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

enum repro_http_coding repro_http_coding_of(struct repro_slice v)
{
    if (v.len == 0 || repro_slice_ieq(v, "identity"))
        return REPRO_HTTP_CODING_NONE;
    if (repro_slice_ieq(v, "gzip") || repro_slice_ieq(v, "x-gzip"))
        return REPRO_HTTP_CODING_GZIP;
    if (repro_slice_ieq(v, "deflate"))
        return REPRO_HTTP_CODING_DEFLATE;
    return REPRO_HTTP_CODING_OTHER;
}

/* One attempt with the given window bits. */
static int inflate_once(const uint8_t *p, size_t n, int gzip, int window_bits, size_t cap,
                        struct repro_buf *out)
{
    z_stream z;
    uint8_t chunk[16384];
    int zr, rc = REPRO_HTTP_INFLATE_PARTIAL;

    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window_bits) != Z_OK)
        return REPRO_E_NOMEM;
    repro_buf_reset(out);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
    for (;;) {
        size_t got;
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        zr = inflate(&z, Z_NO_FLUSH);
        got = sizeof chunk - z.avail_out;
        if (got > cap - out->len)
            got = cap - out->len;
        if (got > 0 && (rc = repro_buf_append(out, chunk, got)) != REPRO_OK)
            break;
        if (out->len >= cap && (zr == Z_OK || zr == Z_BUF_ERROR) && z.avail_out == 0) {
            rc = REPRO_HTTP_INFLATE_CAPPED;
            break;
        }
        if (zr == Z_STREAM_END) {
            rc = REPRO_HTTP_INFLATE_END;
            if (z.avail_in == 0)
                break;
            /* another gzip member, else trailing bytes nobody decodes */
            if (!gzip || z.next_in[0] != 0x1f || inflateReset(&z) != Z_OK) {
                rc = REPRO_HTTP_INFLATE_CORRUPT;
                break;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR || (zr == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
            rc = REPRO_HTTP_INFLATE_PARTIAL; /* the input ended inside the stream */
            break;
        }
        if (zr != Z_OK) {
            rc = zr == Z_MEM_ERROR ? REPRO_E_NOMEM : REPRO_HTTP_INFLATE_CORRUPT;
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

int repro_http_inflate(const uint8_t *p, size_t n, enum repro_http_coding c, size_t cap,
                       struct repro_buf *out)
{
    int rc;
    if (c != REPRO_HTTP_CODING_GZIP && c != REPRO_HTTP_CODING_DEFLATE)
        return REPRO_E_INVAL;
    /* gzip: 15 + 32 detects gzip or zlib headers */
    rc = inflate_once(p, n, c == REPRO_HTTP_CODING_GZIP, c == REPRO_HTTP_CODING_GZIP ? 15 + 32 : 15,
                      cap, out);
    if (rc == REPRO_HTTP_INFLATE_CORRUPT && c == REPRO_HTTP_CODING_DEFLATE)
        rc = inflate_once(p, n, 0, -15, cap, out); /* some servers send raw deflate */
    return rc;
}
