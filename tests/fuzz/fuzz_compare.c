/*
 * Fuzz target for response comparison (replay/compare.c): the input is two
 * responses separated by the first NUL byte (a response when its head
 * parses, else a bare body). Oracles: no memory error; comparing a
 * response with itself finds no difference (with masks and ignore paths
 * on, and redaction marks in the text); every difference names where it
 * is, with a valid kind.
 */
#include "repro/http.h"
#include "repro/replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void side(const uint8_t *p, size_t len, struct repro_http_head *h,
                 struct repro_compare_msg *m)
{
    memset(m, 0, sizeof *m);
    if (repro_http_parse_head(h, REPRO_HTTP_RESPONSE, p, len, 65536, NULL, NULL) ==
        REPRO_HTTP_DONE) {
        m->status = h->status;
        m->head = h;
        m->body = (struct repro_slice){p + h->head_len, len - h->head_len};
    } else {
        m->body = (struct repro_slice){p, len};
    }
}

static void check(const struct repro_comparer *c, const struct repro_compare_msg *e,
                  const struct repro_compare_msg *a, int same)
{
    struct repro_diffs d = {0};
    if (repro_compare(c, e, a, &d, NULL) != REPRO_OK) {
        repro_diffs_release(&d);
        return; /* out of memory only */
    }
    for (size_t i = 0; i < d.n; i++)
        if (!d.v[i].where || !d.v[i].key || d.v[i].kind >= REPRO_DIFF__COUNT)
            abort();
    if (same && d.n != 0) {
        fprintf(stderr, "a response differs from itself at %s\n", d.v[0].where);
        abort();
    }
    repro_diffs_release(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct repro_comparer *c;
    static struct repro_http_head he, ha;
    const uint8_t *nul = memchr(data, 0, size);
    size_t el = nul ? (size_t)(nul - data) : size;
    const uint8_t *a = nul ? nul + 1 : data;
    size_t al = nul ? size - el - 1 : size;
    struct repro_compare_msg me, ma;

    if (!c) {
        const char *paths[] = {"$.id", "$.items[*].ts", "$.*.x"};
        const char *masks[] = {"[0-9]{4}-[0-9]{2}", "a*"};
        struct repro_compare_rules r = {.ignore_json_paths = paths, .n_ignore_json_paths = 3,
                                        .masks = masks, .n_masks = 2};
        if (repro_comparer_new(&r, &c, NULL) != REPRO_OK)
            abort();
    }
    side(data, el, &he, &me);
    side(a, al, &ha, &ma);
    check(c, &me, &ma, 0);
    check(c, &me, &me, 1);
    check(c, &ma, &ma, 1);
    return 0;
}
