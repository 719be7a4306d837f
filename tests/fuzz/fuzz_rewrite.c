/*
 * Fuzz target for the head rewriter (http/http_rewrite.c) and body digests
 * (http/http_digest.c). Input: a count byte, then per edit an op byte, a
 * name (length byte + bytes) and a value (length byte + bytes), then the
 * head. Invariants checked (abort on violation):
 *  - the rewriter never fails other than with INVAL, MALFORMED or LIMIT;
 *  - when the input head parses strictly and the edits are accepted, the
 *    output parses strictly too, and every SET/HOST value is the value of
 *    its field in it; REMOVEd fields are gone;
 *  - differential: the digest of the input as a chunked body equals the
 *    SHA-256 of what repro_http_dechunk() decodes, fed whole or in halves.
 */
#include "repro/http.h"

#include <stdlib.h>
#include <string.h>

static void check_digest(const uint8_t *p, size_t len)
{
    struct repro_buf dec;
    struct repro_http_digest d;
    uint8_t a[32], b[32], c[32];
    size_t used = 0, used2 = 0;
    int dr;
    enum repro_http_outcome o = repro_http_body_digest(REPRO_HTTP_BODY_CHUNKED, p, len, a), o2;

    repro_buf_init(&dec, 1 << 24);
    /* The decoder caps trailers at 64 KiB, the digest does not: otherwise
     * the two follow the same framing. */
    dr = repro_http_dechunk(p, len, &dec);
    if (dr == REPRO_HTTP_DONE && o != REPRO_HTTP_DONE)
        abort();
    if (o == REPRO_HTTP_DONE && dr == REPRO_HTTP_DONE) {
        repro_http_body_digest(REPRO_HTTP_BODY_LENGTH, dec.data ? dec.data : p, dec.len, b);
        if (memcmp(a, b, 32) != 0)
            abort();
        repro_http_digest_init(&d, REPRO_HTTP_BODY_CHUNKED);
        o2 = repro_http_digest_update(&d, p, len / 2, &used);
        if (o2 == REPRO_HTTP_NEED_MORE)
            o2 = repro_http_digest_update(&d, p + len / 2, len - len / 2, &used2);
        repro_http_digest_final(&d, c);
        if (o2 != REPRO_HTTP_DONE || memcmp(a, c, 32) != 0)
            abort();
    }
    repro_buf_release(&dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct repro_http_edit e[8];
    char names[8][256];
    size_t n = 0, off = 1, k, hl = 0;
    struct repro_buf out;
    struct repro_http_head in, res;
    int rc;

    check_digest(data, size);
    if (size == 0)
        return 0;
    for (k = 0; k < (size_t)(data[0] % 8) && off + 3 <= size; k++) {
        size_t nl = data[off + 1], vl;
        e[n].op = (enum repro_http_edit_op)(data[off] % 6); /* 5: unknown, refused */
        off += 2;
        if (off + nl + 1 > size)
            break;
        memcpy(names[n], data + off, nl);
        names[n][nl] = '\0';
        e[n].name = names[n];
        off += nl;
        vl = data[off++];
        if (off + vl > size)
            break;
        e[n].value = (struct repro_slice){data + off, vl};
        off += vl;
        n++;
    }
    repro_buf_init(&out, 1 << 20);
    rc = repro_http_head_rewrite(REPRO_HTTP_REQUEST, data + off, size - off, e, n, &out, &hl, NULL);
    if (rc != REPRO_OK && rc != REPRO_E_INVAL && rc != REPRO_E_MALFORMED && rc != REPRO_E_LIMIT)
        abort();
    /* e[k].name is never NULL here (names[]), also for TARGET and HOST */
    for (k = 0; k < n; k++)
        if (e[k].op != REPRO_HTTP_EDIT_REMOVE &&
            (repro_slice_ieq((struct repro_slice){(const uint8_t *)e[k].name, strlen(e[k].name)},
                             "content-length") ||
             repro_slice_ieq((struct repro_slice){(const uint8_t *)e[k].name, strlen(e[k].name)},
                             "transfer-encoding")))
            rc = -100; /* a framing field set to anything need not parse */
    if (rc == REPRO_OK &&
        repro_http_parse_head(&in, REPRO_HTTP_REQUEST, data + off, size - off, size, NULL, NULL) ==
            REPRO_HTTP_DONE &&
        in.head_len == hl) {
        if (repro_http_parse_head(&res, REPRO_HTTP_REQUEST, out.data, out.len, out.len + 1, NULL,
                                  NULL) != REPRO_HTTP_DONE ||
            res.head_len != out.len)
            abort();
        for (k = 0; k < n; k++) {
            const char *name = e[k].op == REPRO_HTTP_EDIT_HOST ? "host" : e[k].name;
            const struct repro_http_header *h = repro_http_find_header(&res, name);
            /* only the first edit naming a field counts */
            if (e[k].op == REPRO_HTTP_EDIT_TARGET ||
                repro_http_edit_find(e, n, (struct repro_slice){(const uint8_t *)name,
                                                                strlen(name)}) != &e[k])
                continue;
            if (e[k].op == REPRO_HTTP_EDIT_REMOVE && h != NULL)
                abort();
            if ((e[k].op == REPRO_HTTP_EDIT_SET || e[k].op == REPRO_HTTP_EDIT_HOST) &&
                (h == NULL || h->value.len > e[k].value.len))
                abort(); /* the value (trimmed by the parser) is the one set */
        }
    }
    repro_buf_release(&out);
    return 0;
}
