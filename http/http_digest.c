/*
 * Body digests: SHA-256 (FIPS 180-4, through nettle) of a message body with
 * its transfer coding removed (RFC 9112 section 7.1: the data of every
 * chunk, in order; sizes, extensions and trailers are framing, not body).
 *
 * Capture fills the digest while the framer reads a body, bytes past the
 * storage cap included, so that replay can compare bodies too big to
 * store; replay computes the same digest of a staging response. Content
 * codings (gzip) are deliberately not undone here: what capture stores
 * after redaction decides that (capture/redact.c).
 *
 * Workload: every body byte of a capture passes through sha256_update once.
 */
#include "repro/http.h"

#include <nettle/sha2.h>
#include <string.h>

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(((struct repro_http_digest *)0)->state),
               "repro_http_digest.state must hold a nettle sha256_ctx");
_Static_assert(_Alignof(struct sha256_ctx) <= _Alignof(uint64_t),
               "repro_http_digest.state is not aligned for a sha256_ctx");

static struct sha256_ctx *ctx_of(struct repro_http_digest *d)
{
    return (struct sha256_ctx *)(void *)d->state;
}

void repro_http_digest_init(struct repro_http_digest *d, int body)
{
    memset(&d->chunk, 0, sizeof d->chunk);
    d->body = body;
    d->n_bytes = 0;
    sha256_init(ctx_of(d));
}

void repro_http_digest_data(struct repro_http_digest *d, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    sha256_update(ctx_of(d), n, p);
    d->n_bytes += n;
}

static void on_data(void *ctx, const uint8_t *p, size_t n)
{
    repro_http_digest_data(ctx, p, n);
}

enum repro_http_outcome repro_http_digest_update(struct repro_http_digest *d, const uint8_t *p,
                                                 size_t len, size_t *consumed)
{
    if (d->body != REPRO_HTTP_BODY_CHUNKED) {
        repro_http_digest_data(d, p, len);
        *consumed = len;
        return REPRO_HTTP_NEED_MORE;
    }
    /* Trailers are not body: any size is accepted here, the framer caps
     * them where it matters. */
    return repro_http_chunked_scan_data(&d->chunk, p, len, SIZE_MAX, consumed, on_data, d);
}

void repro_http_digest_final(struct repro_http_digest *d, uint8_t out[REPRO_HTTP_DIGEST_LEN])
{
    /* SHA-256 of no bytes: most requests have no body, and a compression
     * round per message is a measurable share of a capture */
    static const uint8_t empty[REPRO_HTTP_DIGEST_LEN] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    if (d->n_bytes == 0) {
        memcpy(out, empty, sizeof empty);
        return;
    }
    sha256_digest(ctx_of(d), REPRO_HTTP_DIGEST_LEN, out);
}

enum repro_http_outcome repro_http_body_digest(int body, const uint8_t *p, size_t len,
                                               uint8_t out[REPRO_HTTP_DIGEST_LEN])
{
    struct repro_http_digest d;
    enum repro_http_outcome o;
    size_t used = 0;

    repro_http_digest_init(&d, body);
    o = repro_http_digest_update(&d, p, len, &used);
    if (body != REPRO_HTTP_BODY_CHUNKED)
        o = REPRO_HTTP_DONE;
    if (o == REPRO_HTTP_DONE)
        repro_http_digest_final(&d, out);
    return o;
}
