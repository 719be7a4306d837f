/*
 * Unit tests for dynamic-value correlation (replay/correlate.c): a login
 * whose response sets a (redacted) session cookie, a Location, an order id,
 * a redacted CSRF token and a SKU; later requests of the same client reuse
 * them verbatim or, where capture redacted them, by name. After the
 * staging login response is observed, each later request carries staging's
 * values; other clients, earlier requests and requests before the staging
 * response was seen are left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repro/replay.h"

#define LOGIN_BODY                                                                           \
    "{\"order\":{\"id\":\"ord-778899\",\"n\":42},\"csrf_token\":\"[REDACTED]\","             \
    "\"items\":[{\"sku\":\"sku-123456\"}]}"
#define CART_BODY "{\"order\":\"ord-778899\",\"csrf_token\":\"[REDACTED]\",\"sku\":\"sku-123456\"}"

static const char *const requests[] = {
    "POST /login HTTP/1.1\r\nHost: shop\r\nContent-Length: 2\r\n\r\n{}",
    "GET /orders/778899?x=1 HTTP/1.1\r\nHost: shop\r\nCookie: [REDACTED]\r\n"
    "X-Csrf-Token: [REDACTED]\r\n\r\n",
    "POST /cart HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 67\r\n"
    "\r\n" CART_BODY,
    "GET /orders/778899 HTTP/1.1\r\nHost: shop\r\n\r\n",
    "GET /orders/778899 HTTP/1.1\r\nHost: shop\r\n\r\n",
    "GET /x?csrf_token=%5BREDACTED%5D HTTP/1.1\r\nHost: shop\r\nCookie: a=1; sid=old\r\n\r\n",
};

static const char *const responses[] = {
    "HTTP/1.1 200 OK\r\nSet-Cookie: [REDACTED]\r\nLocation: http://shop/orders/778899\r\n"
    "Content-Type: application/json\r\nContent-Length: 93\r\n\r\n" LOGIN_BODY,
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "",
};

#define STAGING_BODY                                                                          \
    "{\"order\":{\"id\":\"ord-111\",\"n\":1},\"csrf_token\":\"tok-abc\",\"items\":[{\"sku\":" \
    "\"sku-9\"}]}"
static const char staging_login[] =
    "HTTP/1.1 200 OK\r\nSet-Cookie: sid=S3CR3T; Path=/; HttpOnly\r\nSet-Cookie: theme=dark\r\n"
    "Location: /orders/111\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    "10\r\n{\"order\":{\"id\":\"\r\n41\r\nord-111\",\"n\":1},\"csrf_token\":\"tok-abc\",\"items\":"
    "[{\"sku\":\"sku-9\"}]}\r\n0\r\n\r\n";

struct fixture {
    struct repro_replay_req r[6];
    struct repro_slice q[6], a[6];
    struct repro_replay_plan *plan;
    struct repro_correlator *c;
};

static void setup(struct fixture *f)
{
    /* client 1: login at 100 (answered 200), then 300, 400, 150 (before the
     * answer) and 600; client 2 at 500 */
    static const int64_t client[6] = {1, 1, 1, 2, 1, 1};
    static const int64_t sent[6] = {100, 300, 400, 500, 150, 600};
    struct repro_error err = {0};
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 6; i++) {
        f->r[i] = (struct repro_replay_req){.exchange_id = i + 1, .conn_id = i, .sent_us = sent[i],
                                            .answered_us = responses[i][0] ? sent[i] + 100 : -1,
                                            .conn_opened_us = -1, .conn_closed_us = -1,
                                            .client_key = client[i]};
        f->q[i] = (struct repro_slice){(const uint8_t *)requests[i], strlen(requests[i])};
        f->a[i] = (struct repro_slice){(const uint8_t *)responses[i], strlen(responses[i])};
    }
    assert_int_equal(strlen(CART_BODY), 67);
    assert_int_equal(strlen(LOGIN_BODY), 93);
    assert_int_equal(repro_replay_plan_build(f->r, 6, &f->plan, &err), REPRO_OK);
    assert_int_equal(repro_correlator_new(f->plan, f->r, f->q, f->a, &f->c, &err), REPRO_OK);
}

static void teardown(struct fixture *f)
{
    repro_correlator_free(f->c);
    repro_replay_plan_free(f->plan);
}

static char *apply(struct fixture *f, size_t i, size_t *n_subs, struct repro_corr_subst *subs)
{
    struct repro_buf out;
    static char text[1024];
    repro_buf_init(&out, 1 << 20);
    assert_int_equal(repro_correlator_apply(f->c, i, f->q[i], &out, subs, 8, n_subs), REPRO_OK);
    /* nothing substituted: the request goes as recorded, out untouched */
    if (*n_subs == 0)
        assert_int_equal(out.len, 0);
    struct repro_slice sent = *n_subs ? (struct repro_slice){out.data, out.len} : f->q[i];
    snprintf(text, sizeof text, "%.*s", (int)sent.len, (const char *)sent.ptr);
    repro_buf_release(&out);
    return text;
}

static void test_learned_tokens(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f);
    /* the Location, ord-778899, the redacted csrf_token and the SKU; not
     * "n":42 (too short to tell apart) */
    assert_int_equal(repro_correlator_n_tokens(f.c), 4);
    teardown(&f);
}

static void test_carry_over(void **state)
{
    (void)state;
    struct fixture f;
    struct repro_corr_subst subs[8];
    size_t n;
    setup(&f);

    /* nothing observed yet: requests go as recorded */
    assert_string_equal(apply(&f, 1, &n, subs), requests[1]);
    assert_int_equal(n, 0);

    repro_correlator_observe(f.c, 0, (struct repro_slice){(const uint8_t *)staging_login,
                                                          strlen(staging_login)});
    assert_string_equal(apply(&f, 1, &n, subs),
                        "GET /orders/111?x=1 HTTP/1.1\r\nHost: shop\r\nCookie: sid=S3CR3T; "
                        "theme=dark\r\nX-Csrf-Token: tok-abc\r\n\r\n");
    assert_int_equal(n, 3);
    assert_string_equal(subs[0].kind, "location");
    assert_string_equal(subs[0].old_val, "/orders/778899");
    assert_string_equal(subs[0].new_val, "/orders/111");

    const char *cart = apply(&f, 2, &n, subs);
    const char *want_body = "{\"order\":\"ord-111\",\"csrf_token\":\"tok-abc\",\"sku\":\"sku-9\"}";
    char want[512];
    snprintf(want, sizeof want,
             "POST /cart HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(want_body), want_body);
    assert_string_equal(cart, want);
    assert_int_equal(n, 3);

    /* another client, and a request sent before the login was answered */
    assert_string_equal(apply(&f, 3, &n, subs), requests[3]);
    assert_string_equal(apply(&f, 4, &n, subs), requests[4]);
    assert_int_equal(n, 0);

    /* a redacted query parameter by name; a clear Cookie keeps what staging
     * did not set */
    assert_string_equal(apply(&f, 5, &n, subs),
                        "GET /x?csrf_token=tok-abc HTTP/1.1\r\nHost: shop\r\n"
                        "Cookie: a=1; sid=S3CR3T\r\n\r\n");
    assert_int_equal(n, 2);
    teardown(&f);
}

static void test_hostile_staging(void **state)
{
    (void)state;
    struct fixture f;
    struct repro_corr_subst subs[8];
    size_t n;
    setup(&f);
    /* values that would break the request are not carried over verbatim;
     * garbage responses change nothing */
    const char *bad[] = {
        "HTTP/1.1 200 OK\r\nLocation: /a b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{\"or",
        "not http at all",
        "",
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"order\":{\"id\":\"x\\r\\nEvil: 1\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        repro_correlator_observe(f.c, 0, (struct repro_slice){(const uint8_t *)bad[i], strlen(bad[i])});
        const char *out = apply(&f, 2, &n, subs);
        assert_null(strstr(out, "Evil"));
        assert_null(strstr(out, "/a b"));
    }
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learned_tokens),
        cmocka_unit_test(test_carry_over),
        cmocka_unit_test(test_hostile_staging),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
