/*
 * Unit tests for capture/tcp_reasm.c, case by case: each documented policy
 * (overlaps, orientation, mid-stream pickup, RST, FIN, idle timeout,
 * eviction, out-of-order caps, ACK past a hole, port reuse, wraparound),
 * the memory budget and allocation failures (every allocation failed in
 * turn). The differential test is in test_tcp_reasm.c; the fixture in
 * reasm_fixture.h.
 */
#include "reasm_fixture.h"

/* ---- policies, one case each ------------------------------------------- */

static void test_overlap_first_wins_delivered(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "AAAA"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAA");
    /* Retransmission with other bytes: the delivered part stays, the new
     * tail is taken. */
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "BBBBBB"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAABB");
    assert_int_equal(f.r.stats.overlap_bytes, 4);
    /* Entirely old: dropped, counted. */
    assert_int_equal(fx_seg(&f, 0, 0, C(1), S(0), 0, "zzz"), 0);
    assert_string_equal(render(f.rec, 1, 0), "AAAABB");
    assert_int_equal(f.r.stats.retransmitted_bytes, 3);
    fx_teardown(&f);
}

static void test_overlap_first_wins_queued(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);

    /* Queued, then an in-order segment covering it with other bytes. */
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(4), S(0), 0, "CCCC"), 0);
    assert_string_equal(render(f.rec, 1, 0), "");
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "XXXXXXXXXX"), 0);
    assert_string_equal(render(f.rec, 1, 0), "XXXXCCCCXX");

    /* Queued, then another out-of-order segment around it, then the head. */
    fx_handshake(&f, 1, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 1, 0, C(4), S(0), 0, "CC"), 0);
    assert_int_equal(fx_seg(&f, 1, 0, C(2), S(0), 0, "YYYYYY"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 6);
    assert_int_equal(fx_seg(&f, 1, 0, C(0), S(0), 0, "ZZ"), 0);
    assert_string_equal(render(f.rec, 2, 0), "ZZYYCCYY");

    /* Several queued pieces under one long in-order segment. */
    fx_handshake(&f, 2, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 2, 0, C(2), S(0), 0, "a"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(5), S(0), 0, "bb"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(9), S(0), 0, "c"), 0);
    assert_int_equal(fx_seg(&f, 2, 0, C(0), S(0), 0, "------------"), 0);
    assert_string_equal(render(f.rec, 3, 0), "--a--bb--c--");
    fx_teardown(&f);
}

static void test_syn_ack_orientation(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);

    /* The capture starts at the SYN-ACK: the client is still direction 0. */
    assert_int_equal(fx_seg(&f, 0, 1, S_ISN, C(0), REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_open, 1);
    assert_int_equal(f.rec->c[1].port[0], CLIENT_PORT0);
    assert_int_equal(f.rec->c[1].port[1], SERVER_PORT);
    assert_memory_equal(f.rec->c[1].addr[0], client_ip4, 4);
    assert_memory_equal(f.rec->c[1].addr[1], server_ip4, 4);
    assert_int_equal(find_conn(&f.r, 1)->syn_dir, -1);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), REPRO_TCP_PSH, "GET"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(3), REPRO_TCP_PSH, "200"), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET");
    assert_string_equal(render(f.rec, 1, 1), "200");
    assert_int_equal(find_conn(&f.r, 1)->mid_stream, 0);

    /* A normal handshake over IPv6: the SYN's sender is direction 0. */
    f.family = 6;
    fx_handshake(&f, 1, C_ISN, S_ISN);
    assert_int_equal(f.rec->c[2].family, 6);
    assert_int_equal(find_conn(&f.r, 2)->syn_dir, 0);
    assert_int_equal(f.rec->c[2].port[0], CLIENT_PORT0 + 1);
    assert_memory_equal(f.rec->c[2].addr[0], client_ip6, 16);
    assert_memory_equal(f.rec->c[2].addr[1], server_ip6, 16);
    assert_int_equal(fx_seg(&f, 1, 1, S(0), C(0), 0, "resp"), 0);
    assert_string_equal(render(f.rec, 2, 1), "resp");
    fx_teardown(&f);
}

static void test_mid_stream_pickup(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    /* No SYN: the server speaks first and becomes direction 0. */
    assert_int_equal(fx_seg(&f, 0, 1, 7000, 300, 0, "RESP"), 0);
    assert_int_equal(f.rec->n_open, 1);
    assert_int_equal(f.r.lru_tail->mid_stream, 1);
    assert_int_equal(f.rec->c[1].port[0], SERVER_PORT);
    /* Bytes before the pickup point are old. */
    assert_int_equal(fx_seg(&f, 0, 1, 6990, 300, 0, "0123456789"), 0);
    assert_int_equal(f.r.stats.retransmitted_bytes, 10);
    assert_int_equal(fx_seg(&f, 0, 1, 7004, 300, 0, "MORE"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 7010, 300, 0, "X"), 0); /* after a hole */
    assert_int_equal(fx_seg(&f, 0, 0, 300, 7004, 0, "REQ"), 0);
    assert_string_equal(render(f.rec, 1, 0), "RESPMORE");
    assert_string_equal(render(f.rec, 1, 1), "REQ");
    assert_int_equal(repro_reasm_flush(&f.r, REPRO_END_EOF, 100), 0);
    assert_string_equal(render(f.rec, 1, 0), "RESPMORE[gap 2]X");
    assert_int_equal(f.rec->c[1].mid_stream, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_EOF);
    fx_teardown(&f);
}

static void test_rst_closes(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(5), S(0), 0, "late"), 0); /* queued */
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(0), REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_RST);
    assert_int_equal(f.rec->c[1].close_ts, f.ts);
    assert_string_equal(render(f.rec, 1, 0), "[gap 5]late");
    assert_int_equal(f.r.n_conns, 0);
    /* Later packets of the closed connection without payload are ignored. */
    assert_int_equal(fx_seg(&f, 0, 0, C(9), S(0), 0, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(9), S(0), REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 2);
    assert_int_equal(f.rec->n_open, 1);
    fx_teardown(&f);
}

static void test_fin_both_ways(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    /* The client's FIN overtakes its data. */
    assert_int_equal(fx_seg(&f, 0, 0, C(6), S(0), REPRO_TCP_FIN, NULL), 0);
    assert_int_equal(f.rec->c[1].d[0].n_fins, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "GET / "), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET / |");
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(7), 0, "OK"), 0);
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(2), C(7), REPRO_TCP_FIN, "!"), 0);
    assert_string_equal(render(f.rec, 1, 1), "OK!|");
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_FIN);
    assert_int_equal(f.r.n_conns, 0);
    /* The last ACK finds no connection. */
    assert_int_equal(fx_seg(&f, 0, 0, C(7), S(4), 0, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 1);
    fx_teardown(&f);
}

static void test_idle_timeout(void **state)
{
    struct fx f;
    struct repro_pkt pk;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 1000000, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "a"), 0);
    /* Another connection exactly idle_timeout later: not yet. */
    pk = mkpkt(4, 1, 0, 1, 0, REPRO_TCP_SYN, NULL, 0, 0, f.ts + 1000000);
    assert_int_equal(repro_reasm_packet(&f.r, &pk), 0);
    assert_int_equal(f.rec->n_close, 0);
    pk = mkpkt(4, 1, 0, 2, 0, REPRO_TCP_ACK, (const uint8_t *)"x", 1, 1, f.ts + 1000001);
    assert_int_equal(repro_reasm_packet(&f.r, &pk), 0);
    check_invariants(&f.r);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_TIMEOUT);
    assert_int_equal(f.rec->c[1].close_ts, f.ts + 1000001);
    assert_int_equal(f.rec->c[2].closed, 0);
    assert_int_equal(f.r.n_conns, 1);
    f.ts += 1000001;
    fx_teardown(&f);
}

static void test_eviction_oldest_first(void **state)
{
    struct fx f;
    int k;
    (void)state;
    fx_setup(&f, 1 << 16, 3, 0, 1 << 20);
    for (k = 0; k < 3; k++)
        assert_int_equal(fx_seg(&f, k, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(fx_seg(&f, 3, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->close_order[0], 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_EVICTED);
    assert_int_equal(f.r.stats.evicted, 1);
    /* Activity on connection 2 makes connection 3 the least recently active. */
    assert_int_equal(fx_seg(&f, 1, 0, C(0), 0, 0, "hi"), 0);
    assert_int_equal(fx_seg(&f, 4, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 2);
    assert_int_equal(f.rec->close_order[1], 3);
    assert_int_equal(f.rec->c[3].reason, REPRO_END_EVICTED);
    assert_int_equal(f.r.n_conns, 3);
    fx_teardown(&f);
}

static void test_ooo_cap_forces_gap(void **state)
{
    struct fx f;
    static const char big[] = "0123456789abcdef0123456789abcdef";
    (void)state;
    fx_setup(&f, 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(4), S(0), 0, "BBBBBBBB"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(16), S(0), 0, "DDDDDDDD"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 16);
    /* Over the cap: the oldest hole is given up. */
    assert_int_equal(fx_seg(&f, 0, 0, C(28), S(0), 0, "FFFF"), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 4]BBBBBBBB");
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 12);
    /* Larger than the cap on its own: every hole before it goes, then it is
     * dropped. */
    assert_int_equal(fx_raw(&f, 0, 0, C(100), S(0), REPRO_TCP_ACK, big, 32, 32), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 4]BBBBBBBB[gap 4]DDDDDDDD[gap 4]FFFF");
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 32);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 0);
    fx_teardown(&f);
}

/* Regression: making room under the cap used to insert the new piece at the
 * head of the queue, in front of older queued segments (unsorted queue,
 * then captured bytes reported as a gap). */
static void test_ooo_cap_keeps_queue_sorted(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 20, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(10), S(0), 0, "AAAAAAAAAA"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(30), S(0), 0, "BBBBBBBBBB"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(50), S(0), 0, "CCCCC"), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 10]AAAAAAAAAA");
    assert_int_equal(fx_seg(&f, 0, 0, C(20), S(0), 0, "xxxxxxxxxx"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(40), S(0), 0, "EEEEEEEEEE"), 0);
    assert_string_equal(render(f.rec, 1, 0),
                        "[gap 10]AAAAAAAAAAxxxxxxxxxxBBBBBBBBBBEEEEEEEEEECCCCC");
    assert_int_equal(f.r.stats.gap_bytes, 10);
    fx_teardown(&f);
}

static void test_ack_past_hole(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "0123456789"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(20), S(0), 0, "KLMNO"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789");
    /* The server acknowledges bytes past the hole: it had them. */
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(25), 0, NULL), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789[gap 10]KLMNO");
    assert_int_equal(f.r.stats.gaps, 1);
    assert_int_equal(f.r.stats.gap_bytes, 10);
    /* The lost bytes arriving after all are old. */
    assert_int_equal(fx_seg(&f, 0, 0, C(10), S(0), 0, "abcdefghij"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789[gap 10]KLMNO");
    fx_teardown(&f);
}

/* An ACK of the FIN is past every hole before it: the gap is declared and
 * the connection closes normally once both FINs are through. */
static void test_ack_past_hole_before_fin(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "GET"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(3), 0, "HTTP/1.1 200"), 0);
    /* The response's last segment is lost; only a snap-length-cut copy
     * of the one before shows (5 of 10 bytes), then the FIN. */
    assert_int_equal(fx_raw(&f, 0, 1, S(12), C(3), REPRO_TCP_ACK, "abcde", 5, 10), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(30), C(3), REPRO_TCP_FIN, NULL), 0);
    assert_string_equal(render(f.rec, 1, 1), "HTTP/1.1 200abcde");
    /* The client acknowledges the FIN: nothing before it can still come. */
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(31), 0, NULL), 0);
    assert_string_equal(render(f.rec, 1, 1), "HTTP/1.1 200abcde[gap 13]|");
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(31), REPRO_TCP_FIN, NULL), 0);
    assert_string_equal(render(f.rec, 1, 0), "GET|");
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].reason, REPRO_END_FIN);
    fx_teardown(&f);
}

static void test_port_reuse(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "one"), 0);
    /* A retransmitted SYN with the same ISN, even after data, is the same
     * connection. */
    assert_int_equal(fx_seg(&f, 0, 0, C_ISN, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(3), S(0), 0, "two"), 0);
    assert_string_equal(render(f.rec, 1, 0), "onetwo");
    /* A SYN with another ISN on the same tuple: a new connection. */
    assert_int_equal(fx_seg(&f, 0, 0, 90000, 0, REPRO_TCP_SYN, NULL), 0);
    assert_int_equal(f.rec->n_close, 1);
    assert_int_equal(f.rec->c[1].closed, 1);
    assert_int_equal(f.rec->n_open, 2);
    assert_int_equal(find_conn(&f.r, 2)->syn_dir, 0);
    assert_int_equal(fx_seg(&f, 0, 0, 90001, 0, 0, "new"), 0);
    assert_string_equal(render(f.rec, 2, 0), "new");
    assert_int_equal(f.r.n_conns, 1);
    fx_teardown(&f);
}

/* Regression (fuzzer find): a SYN-ACK with another ISN used to move
 * next_seq of a direction with queued data, leaving the queue behind it;
 * the next in-order delivery then read far past the packet. */
static void test_syn_keeps_queue_ahead(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 1, S(10), C(0), 0, "queued"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 90000, C(0), REPRO_TCP_SYN | REPRO_TCP_FIN, "data"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, S(0), C(0), 0, "0123456789"), 0);
    assert_string_equal(render(f.rec, 1, 1), "0123456789queued");
    fx_teardown(&f);
}

/* Regression (fuzzer find): data queued almost 2^31 ahead put queued bytes
 * at or behind next_seq in serial arithmetic. Nothing beyond the largest
 * TCP window (2^30) is queued. */
static void test_far_ahead_dropped(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x7ffffff0u), S(0), 0, "0123456789abcdefXYZ"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x40000000u), S(0), 0, "x"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, C(0x80000005u), S(0), 0, "behind"), 0);
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 20);
    assert_int_equal(f.r.stats.retransmitted_bytes, 6);
    /* The furthest a window reaches is still queued. */
    assert_int_equal(fx_seg(&f, 0, 0, C(0x3ffffffcu), S(0), 0, "edge"), 0);
    assert_int_equal(f.r.lru_tail->half[0].ooo_bytes, 4);
    assert_int_equal(fx_seg(&f, 0, 0, C(0), S(0), 0, "start"), 0);
    assert_string_equal(render(f.rec, 1, 0), "start");
    fx_teardown(&f);
}

static void test_unknown_pure_ack_ignored(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    assert_int_equal(fx_seg(&f, 0, 0, 10, 20, 0, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 20, 10, REPRO_TCP_FIN, NULL), 0);
    assert_int_equal(fx_seg(&f, 0, 0, 10, 0, REPRO_TCP_RST, NULL), 0);
    assert_int_equal(f.r.stats.ignored_packets, 3);
    assert_int_equal(f.rec->n_open, 0);
    assert_int_equal(f.r.n_conns, 0);
    assert_int_equal(f.r.stats.connections, 0);
    fx_teardown(&f);
}

static void test_wraparound(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    fx_handshake(&f, 0, 0xfffffff8u, 0xffffffffu);
    /* Client bytes 0..15 span 2^32; the second half arrives first. */
    assert_int_equal(fx_seg(&f, 0, 0, 0xfffffff9u + 8, 0, 0, "89abcdef"), 0);
    assert_int_equal(fx_seg(&f, 0, 0, 0xfffffff9u, 0, 0, "01234567"), 0);
    assert_int_equal(fx_seg(&f, 0, 1, 0, 0xfffffff9u + 16, 0, "reply"), 0);
    assert_string_equal(render(f.rec, 1, 0), "0123456789abcdef");
    assert_string_equal(render(f.rec, 1, 1), "reply");
    fx_teardown(&f);
}

/* Callbacks stop processing with their return code. */
static void test_callback_stops(void **state)
{
    struct fx f;
    (void)state;
    fx_setup(&f, 1 << 16, 16, 0, 1 << 20);
    f.rec->open_rc = 7;
    assert_int_equal(fx_seg(&f, 0, 0, C(0), 0, 0, "abc"), 7);
    assert_string_equal(render(f.rec, 1, 0), "");
    f.rec->open_rc = 0;
    f.rec->data_rc = 5;
    assert_int_equal(fx_seg(&f, 0, 0, C(3), 0, 0, "def"), 5);
    f.rec->data_rc = 0;
    fx_teardown(&f);
}

/* ---- budget ------------------------------------------------------------ */

static void test_budget(void **state)
{
    struct fx f;
    char buf[40];
    int k, i;
    (void)state;
    memset(buf, 'q', sizeof buf);

    /* Two streams share room for one queued 40-byte segment (charged with
     * its header and allocation overhead) and 60 bytes more; each queues
     * beyond a hole. */
    fx_setup(&f, 1000, 16, 0, REPRO__SEG_COST(40) + 60);
    for (k = 0; k < 2; k++)
        fx_handshake(&f, k, C_ISN, S_ISN);
    assert_int_equal(fx_raw(&f, 0, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, REPRO__SEG_COST(40));
    /* The other stream cannot take 40 more, and has no hole of its own to
     * give up: dropped and counted. */
    assert_int_equal(fx_raw(&f, 1, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, REPRO__SEG_COST(40));
    assert_int_equal(f.r.stats.dropped_ooo_bytes, 40);
    assert_true(f.budget.refused >= 40);
    /* Stream 0 gives up its own hole to make room for more. */
    assert_int_equal(fx_raw(&f, 0, 0, C(60), S(0), REPRO_TCP_ACK, buf, 30, 30), 0);
    assert_string_equal(render(f.rec, 1, 0), "[gap 10]qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
    assert_int_equal(f.budget.used, REPRO__SEG_COST(30));
    for (i = 0; i < 10; i++)
        assert_int_equal(
            fx_raw(&f, 1, 0, C(100 + 10 * (uint32_t)i), S(0), REPRO_TCP_ACK, buf, 5, 5), 0);
    assert_true(f.budget.used <= f.budget.max);
    fx_teardown(&f); /* flush: used back to 0 */

    /* Release without flush gives everything back too. */
    fx_setup(&f, 1000, 16, 0, REPRO__SEG_COST(40) + 60);
    fx_handshake(&f, 0, C_ISN, S_ISN);
    assert_int_equal(fx_raw(&f, 0, 0, C(10), S(0), REPRO_TCP_ACK, buf, 40, 40), 0);
    assert_int_equal(f.budget.used, REPRO__SEG_COST(40));
    repro_reasm_release(&f.r);
    assert_int_equal(f.budget.used, 0);
    rec_free(f.rec);
}

/* Random out-of-order traffic on several connections under a tiny budget. */
static void test_budget_random(void **state)
{
    uint64_t it;
    (void)state;
    for (it = 0; it < 200; it++) {
        struct fx f;
        uint8_t buf[256];
        int n;
        g_seed = 0xb0d9e7u + it;
        rng_state = g_seed;
        fx_setup(&f, 1 + rnd_below(200), 1 + rnd_below(4), 0, rnd_below(300));
        f.rec->strict = 0;
        for (n = 0; n < 300; n++) {
            int k = (int)rnd_below(5), tdir = (int)rnd_below(2);
            uint32_t len = rnd_below(100), off = rnd_below(1000);
            uint8_t fl = REPRO_TCP_ACK;
            memset(buf, 'a' + k, len);
            if (rnd_below(30) == 0)
                fl |= REPRO_TCP_SYN;
            if (rnd_below(50) == 0)
                fl |= REPRO_TCP_FIN;
            if (rnd_below(80) == 0)
                fl |= REPRO_TCP_RST;
            assert_int_equal(fx_raw(&f, k, tdir, C(off), C(rnd_below(1000)), fl, buf, len, len), 0);
            assert_true(f.budget.used <= f.budget.max);
        }
        fx_teardown(&f);
    }
}

/* ---- allocation failures ----------------------------------------------- */

/* One fixed scenario: five connections with reordered, overlapping data,
 * FINs and an RST. Returns the hash of every event seen. */
static uint64_t fault_scenario(int *init_failed)
{
    struct rec *rec = rec_new(1024);
    struct repro_reasm r;
    struct repro_reasm_cb cb = rec_callbacks;
    struct repro_budget budget = {0, 4096, 0};
    uint8_t stream[5][2][200];
    uint64_t h;
    int k, d, rc;
    uint32_t j;
    int64_t ts = 0;

    rng_state = 0xfa17;
    rec->check_content = 1;
    rec->salt = 99;
    cb.ctx = rec;
    for (k = 0; k < 5; k++)
        for (d = 0; d < 2; d++) {
            rec->base[k][d] = (d ? S_ISN : C_ISN) + 1 + (uint32_t)k * 0x40000000u;
            rec->length[k][d] = 200;
            for (j = 0; j < 200; j++)
                stream[k][d][j] = content_byte(rec->salt, (uint16_t)(CLIENT_PORT0 + k), d, j);
        }
    rc = repro_reasm_init(&r, &cb, 150, 4, 0, &budget);
    *init_failed = rc != REPRO_OK;
    if (rc != REPRO_OK) {
        assert_int_equal(rc, REPRO_E_NOMEM);
        rec_free(rec);
        return 0;
    }
    for (k = 0; k < 5; k++) {
        struct repro_pkt pk;
        int i;
        uint32_t bc = rec->base[k][0], bs = rec->base[k][1];
        pk = mkpkt(4, k, 0, bc - 1, 0, REPRO_TCP_SYN, NULL, 0, 0, ++ts);
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        pk = mkpkt(4, k, 1, bs - 1, bc, REPRO_TCP_SYN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        for (i = 0; i < 30; i++) {
            d = (int)rnd_below(2);
            j = rnd_below(180);
            pk = mkpkt(4, k, d, rec->base[k][d] + j, rec->base[k][!d], REPRO_TCP_ACK,
                       stream[k][d] + j, 1 + rnd_below(200 - j), 0, ++ts);
            pk.seg_len = pk.payload_len;
            assert_int_equal(repro_reasm_packet(&r, &pk), 0);
            check_invariants(&r);
        }
        if (k == 2) {
            pk = mkpkt(4, k, 1, bs + 200, bc, REPRO_TCP_RST, NULL, 0, 0, ++ts);
        } else {
            pk = mkpkt(4, k, 0, bc + 200, bs, REPRO_TCP_FIN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
            assert_int_equal(repro_reasm_packet(&r, &pk), 0);
            pk =
                mkpkt(4, k, 1, bs + 200, bc + 201, REPRO_TCP_FIN | REPRO_TCP_ACK, NULL, 0, 0, ++ts);
        }
        assert_int_equal(repro_reasm_packet(&r, &pk), 0);
        check_invariants(&r);
    }
    assert_int_equal(repro_reasm_flush(&r, REPRO_END_EOF, ++ts), 0);
    check_invariants(&r);
    assert_int_equal(budget.used, 0);
    repro_reasm_release(&r);
    assert_int_equal(rec->n_open, rec->n_close);
    for (k = 1; k <= (int)rec->max_id; k++)
        if (rec->c[k].opened)
            assert_true(rec->c[k].closed);
    h = rec->hash;
    rec_free(rec);
    return h;
}

static void test_alloc_failures(void **state)
{
    unsigned long n, made;
    uint64_t reference;
    int init_failed;
    (void)state;

    repro_alloc_fail_after(0);
    reference = fault_scenario(&init_failed);
    assert_false(init_failed);
    for (n = 1; n < 100000; n++) {
        uint64_t h1, h2;
        int f1, f2;
        repro_alloc_fail_after(n);
        h1 = fault_scenario(&f1);
        made = repro_alloc_fail_after(n);
        h2 = fault_scenario(&f2);
        repro_alloc_fail_after(0);
        /* Same failure point, same behaviour. */
        assert_int_equal(f1, f2);
        assert_true(h1 == h2);
        if (made < n) {
            /* Nothing failed: the full result. */
            assert_true(h1 == reference);
            break;
        }
        assert_int_equal(f1, n == 1);
    }
    assert_true(n > 2);
    assert_true(n < 100000);
}

/* Growing the hash table may fail: lookups keep working in the small one. */
static void test_table_grow_failure(void **state)
{
    struct fx f;
    unsigned long made;
    int k, fail;
    (void)state;

    for (fail = 0; fail < 2; fail++) {
        fx_setup(&f, 1 << 16, 5000, 0, 1 << 20);
        repro_alloc_fail_after(0);
        for (k = 0; k < 1024; k++)
            assert_int_equal(fx_raw(&f, k, 0, 1, 0, REPRO_TCP_ACK, "a", 1, 1), 0);
        /* The next connection's allocation succeeds, the table's fails. */
        repro_alloc_fail_after(fail ? 2 : 0);
        assert_int_equal(fx_raw(&f, 1024, 0, 1, 0, REPRO_TCP_ACK, "a", 1, 1), 0);
        made = repro_alloc_fail_after(0);
        assert_int_equal(made, 2);
        assert_int_equal(f.r.n_buckets, fail ? 1024 : 2048);
        for (k = 0; k <= 1024; k++)
            assert_int_equal(fx_raw(&f, k, 0, 2, 0, REPRO_TCP_ACK, "b", 1, 1), 0);
        assert_int_equal(f.r.n_conns, 1025);
        assert_string_equal(render(f.rec, 1, 0), "ab");
        assert_string_equal(render(f.rec, 64, 0), "ab");
        fx_teardown(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlap_first_wins_delivered),
        cmocka_unit_test(test_overlap_first_wins_queued),
        cmocka_unit_test(test_syn_ack_orientation),
        cmocka_unit_test(test_mid_stream_pickup),
        cmocka_unit_test(test_rst_closes),
        cmocka_unit_test(test_fin_both_ways),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_eviction_oldest_first),
        cmocka_unit_test(test_ooo_cap_forces_gap),
        cmocka_unit_test(test_ooo_cap_keeps_queue_sorted),
        cmocka_unit_test(test_ack_past_hole),
        cmocka_unit_test(test_ack_past_hole_before_fin),
        cmocka_unit_test(test_port_reuse),
        cmocka_unit_test(test_syn_keeps_queue_ahead),
        cmocka_unit_test(test_far_ahead_dropped),
        cmocka_unit_test(test_unknown_pure_ack_ignored),
        cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_budget_random),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_table_grow_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
