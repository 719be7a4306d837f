/*
 * Unit tests for http/http_pair.c: response roles, interim (1xx)
 * responses, and pairing by order with a real response framer, where the
 * method of the request answered (HEAD, CONNECT) decides the framing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repro/http.h"
#include "test_util.h"

static struct repro_slice S(const char *s)
{
    return (struct repro_slice){(const uint8_t *)s, strlen(s)};
}

static void test_roles(void **state)
{
    static const struct {
        const char *desc;
        int status, body;
        enum repro_http_role want;
    } cases[] = {
        {"100 Continue is interim", 100, REPRO_HTTP_BODY_NONE, REPRO_HTTP_ROLE_INTERIM},
        {"103 Early Hints is interim", 103, REPRO_HTTP_BODY_NONE, REPRO_HTTP_ROLE_INTERIM},
        {"101 switches protocols", 101, REPRO_HTTP_BODY_TUNNEL, REPRO_HTTP_ROLE_TUNNEL},
        {"200 to CONNECT is a tunnel", 200, REPRO_HTTP_BODY_TUNNEL, REPRO_HTTP_ROLE_TUNNEL},
        {"200 with a body is final", 200, REPRO_HTTP_BODY_LENGTH, REPRO_HTTP_ROLE_FINAL},
        {"404 is final", 404, REPRO_HTTP_BODY_NONE, REPRO_HTTP_ROLE_FINAL},
    };
    size_t i;
    (void)state;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct repro_http_info info;
        memset(&info, 0, sizeof info);
        info.kind = REPRO_HTTP_RESPONSE;
        info.status = cases[i].status;
        info.body = cases[i].body;
        if (repro_http_response_role(&info) != cases[i].want)
            fail_msg("case '%s'", cases[i].desc);
    }
    assert_int_equal(repro_http_response_role(NULL), REPRO_HTTP_ROLE_FINAL);
}

static void test_interim_attach(void **state)
{
    struct repro_http_interim it;
    struct repro_buf raw;
    struct repro_http_info info;
    struct repro_budget budget = {0, 1 << 20, 0};
    const char *c1 = "HTTP/1.1 100 Continue\r\n\r\n", *c2 = "HTTP/1.1 102 Processing\r\n\r\n";
    const char *fin = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    uint64_t wire = strlen(fin);
    char statuses[64];
    size_t shift;
    (void)state;

    repro_http_interim_init(&it, 4096, &budget);
    repro_http_interim_add(&it, 100, S(c1));
    repro_http_interim_add(&it, 102, S(c2));
    assert_string_equal(it.statuses, "100,102");
    assert_int_equal(budget.used, strlen(c1) + strlen(c2));

    repro_buf_init(&raw, 1 << 20);
    assert_int_equal(repro_buf_append(&raw, fin, strlen(fin)), REPRO_OK);
    budget.used += raw.len;
    memset(&info, 0, sizeof info);
    info.reason = (struct repro_http_span){13, 2};
    shift = repro_http_interim_attach(&it, &raw, &info, &wire, statuses, sizeof statuses);
    assert_int_equal(shift, strlen(c1) + strlen(c2));
    assert_string_equal(statuses, "100,102");
    assert_int_equal(raw.len, shift + strlen(fin));
    assert_memory_equal(raw.data + raw.len - strlen(fin), fin, strlen(fin));
    assert_memory_equal(raw.data + info.reason.off, "OK", 2);
    assert_int_equal(wire, raw.len);
    /* The joined buffer carries every byte; the interim object none. */
    assert_int_equal(it.raw.len, 0);
    assert_int_equal(it.statuses[0], '\0');
    assert_int_equal(budget.used, raw.len);
    /* Nothing waiting: nothing changes. */
    assert_int_equal(repro_http_interim_attach(&it, &raw, &info, &wire, statuses, sizeof statuses), 0);
    assert_string_equal(statuses, "");
    budget.used -= raw.len;
    repro_buf_release(&raw);
    repro_http_interim_release(&it);
    assert_int_equal(budget.used, 0);
}

/* Feeds a whole response stream and pairs each message in order. */
struct paired {
    int status, role, answered;
    size_t body_len;
};

static size_t run_pairs(struct repro_http_pairer *p, struct repro_http_framer *f, const char *wire,
                        struct paired *out, size_t max)
{
    size_t off = 0, len = strlen(wire), n = 0;
    while (off < len && n < max) {
        size_t used = 0;
        enum repro_http_outcome o =
            repro_http_framer_feed(f, (const uint8_t *)wire + off, len - off, 1, &used);
        const struct repro_http_msg *m;
        off += used;
        if (o == REPRO_HTTP_NEED_MORE)
            break;
        m = repro_http_framer_msg(f);
        assert_non_null(m->info);
        out[n].status = m->info->status;
        out[n].body_len = m->raw.len - m->info->head_len;
        out[n].role = repro_http_pairer_response(p, m->info, m->raw, &out[n].answered);
        if (out[n].role != REPRO_HTTP_ROLE_INTERIM)
            repro_http_interim_reset(&p->interim);
        n++;
    }
    return n;
}

static void test_pairer_order(void **state)
{
    struct repro_http_framer f;
    struct repro_http_pairer p;
    struct paired got[8];
    /* HEAD's response has a Content-Length but no body; the GET after it
     * (pipelined) gets a 100 then its body; a third response was never
     * asked for. */
    const char *wire = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                       "HTTP/1.1 100 Continue\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                       "HTTP/1.1 204 No Content\r\n\r\n";
    size_t n;
    (void)state;

    repro_http_framer_init(&f, REPRO_HTTP_RESPONSE, NULL, 0);
    repro_http_pairer_init(&p, &f, 4096);
    assert_int_equal(repro_http_pairer_request(&p, S("HEAD")), REPRO_OK);
    assert_int_equal(repro_http_pairer_request(&p, S("POST")), REPRO_OK);
    assert_int_equal(repro_http_pairer_waiting(&p), 2);
    n = run_pairs(&p, &f, wire, got, 8);
    assert_int_equal(n, 4);
    assert_int_equal(got[0].role, REPRO_HTTP_ROLE_FINAL);
    assert_int_equal(got[0].answered, 1);
    assert_int_equal(got[0].body_len, 0);
    assert_int_equal(got[1].role, REPRO_HTTP_ROLE_INTERIM);
    assert_int_equal(got[2].role, REPRO_HTTP_ROLE_FINAL);
    assert_int_equal(got[2].answered, 1);
    assert_int_equal(got[2].body_len, 5);
    assert_int_equal(got[3].answered, 0);
    assert_int_equal(repro_http_pairer_waiting(&p), 0);
    repro_http_pairer_release(&p);
    repro_http_framer_release(&f);
}

static void test_pairer_connect_and_depth(void **state)
{
    struct repro_http_framer f;
    struct repro_http_pairer p;
    struct paired got[4];
    const char *wire = "HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01 tls bytes";
    unsigned i;
    (void)state;

    repro_http_framer_init(&f, REPRO_HTTP_RESPONSE, NULL, 0);
    repro_http_pairer_init(&p, &f, 4096);
    assert_int_equal(repro_http_pairer_request(&p, S("CONNECT")), REPRO_OK);
    assert_int_equal(run_pairs(&p, &f, wire, got, 4), 1);
    assert_int_equal(got[0].role, REPRO_HTTP_ROLE_TUNNEL);
    assert_int_equal(p.tunnel, 1);
    /* The ring is bounded: the request past the depth is refused. */
    for (i = 0; i < REPRO_HTTP_PAIRER_DEPTH; i++)
        assert_int_equal(repro_http_pairer_request(&p, S("GET")), REPRO_OK);
    assert_int_equal(repro_http_pairer_request(&p, S("GET")), REPRO_E_LIMIT);
    assert_int_equal(repro_http_pairer_waiting(&p), REPRO_HTTP_PAIRER_DEPTH);
    repro_http_pairer_release(&p);
    repro_http_framer_release(&f);
}

static void test_framer_accessors(void **state)
{
    struct repro_http_framer f;
    struct repro_http_framer_stats st;
    const char *req = "GARBAGE\r\nPUT /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nab";
    size_t used;
    struct repro_slice m;
    (void)state;

    repro_http_framer_init(&f, REPRO_HTTP_REQUEST, NULL, 1);
    assert_int_equal(repro_http_framer_current_method(&f).len, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)req, strlen(req), 1, &used),
                     REPRO_HTTP_NEED_MORE);
    m = repro_http_framer_current_method(&f);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.ptr, "PUT", 3);
    repro_http_framer_stats(&f, &st);
    assert_int_equal(st.skipped_bytes, strlen("GARBAGE\r\n"));
    assert_int_equal(st.n_messages, 0);
    assert_int_equal(repro_http_framer_feed(&f, (const uint8_t *)"cd", 2, 2, &used),
                     REPRO_HTTP_DONE);
    assert_int_equal(repro_http_framer_current_method(&f).len, 0);
    repro_http_framer_stats(&f, &st);
    assert_int_equal(st.n_messages, 1);
    repro_http_framer_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_interim_attach),
        cmocka_unit_test(test_pairer_order),
        cmocka_unit_test(test_pairer_connect_and_depth),
        cmocka_unit_test(test_framer_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
