/*
 * Fuzz target for http/http_inflate.c. Input: byte 0 picks the coding (bit
 * 0: gzip or deflate) and the cap (bits 1-7: 1 << n bytes, n mod 21); the
 * rest is the body. Invariants (abort on violation): the outcome is one of
 * the four or NOMEM; never more than cap bytes out; CAPPED only with
 * exactly cap bytes; decoding the same input again gives the same bytes.
 * The input is copied to its exact size so ASan sees any over-read.
 */
#include "repro/http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_inflate: %s:%d: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum repro_http_coding c = data[0] & 1 ? REPRO_HTTP_CODING_DEFLATE : REPRO_HTTP_CODING_GZIP;
    size_t cap = (size_t)1 << ((data[0] >> 1) % 21);
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    struct repro_buf a, b;
    CHECK(p != NULL);
    memcpy(p, data + 1, n);
    repro_buf_init(&a, cap);
    repro_buf_init(&b, cap);
    int ra = repro_http_inflate(p, n, c, cap, &a);
    int rb = repro_http_inflate(p, n, c, cap, &b);
    CHECK(ra == REPRO_HTTP_INFLATE_END || ra == REPRO_HTTP_INFLATE_PARTIAL ||
          ra == REPRO_HTTP_INFLATE_CAPPED || ra == REPRO_HTTP_INFLATE_CORRUPT ||
          ra == REPRO_E_NOMEM);
    CHECK(ra == rb && a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    CHECK(a.len <= cap);
    CHECK(ra != REPRO_HTTP_INFLATE_CAPPED || a.len == cap);
    repro_buf_release(&a);
    repro_buf_release(&b);
    free(p);
    return 0;
}
