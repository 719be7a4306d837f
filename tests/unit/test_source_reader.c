/*
 * The live reader (capture/source_reader.c) on a real interface: lo, as
 * root (skipped otherwise). UDP datagrams to a socket of this process are
 * the traffic; a BPF filter on its port keeps other traffic out.
 */
#include "repro/capture.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

struct fixture {
    int rx, tx;
    struct sockaddr_in to;
    char filter[64];
    struct repro_source *src;
};

/* A UDP socket on a free loopback port, a sender, and lo opened live. */
static int open_lo(struct fixture *f)
{
    struct repro_source_opts o;
    struct repro_error err = {0};
    socklen_t len = sizeof f->to;

    memset(f, 0, sizeof *f);
    if (geteuid() != 0)
        return -1;
    f->rx = socket(AF_INET, SOCK_DGRAM, 0);
    f->tx = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(f->rx >= 0 && f->tx >= 0);
    f->to.sin_family = AF_INET;
    f->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->rx, (struct sockaddr *)&f->to, sizeof f->to), 0);
    assert_int_equal(getsockname(f->rx, (struct sockaddr *)&f->to, &len), 0);
    snprintf(f->filter, sizeof f->filter, "udp port %u", ntohs(f->to.sin_port));
    memset(&o, 0, sizeof o);
    o.iface = "lo";
    o.filter = f->filter;
    f->src = repro_source_open(&o, &err);
    if (f->src == NULL)
        print_error("cannot open lo: %s\n", err.msg);
    assert_non_null(f->src);
    return 0;
}

static void close_lo(struct fixture *f)
{
    repro_source_close(f->src);
    close(f->rx);
    close(f->tx);
}

static void send_n(struct fixture *f, int n, size_t len)
{
    static uint8_t buf[60000];
    for (int i = 0; i < n; i++) {
        memset(buf, 'a' + i % 26, len);
        snprintf((char *)buf, len, "#%d", i);
        assert_int_equal(sendto(f->tx, buf, len, 0, (struct sockaddr *)&f->to, sizeof f->to),
                         (ssize_t)len);
    }
}

/* Nothing arrives: next times out (the old loop blocked here forever);
 * then packets arrive in order; stop ends the reader. */
static void test_quiet_then_packets_then_stop(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_packet_batch *b;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    int seen = 0, got;
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    assert_int_equal(repro_reader_next(r, 50, &b), 0);
    assert_null(b);
    send_n(&f, 10, 100);
    for (int tries = 0; tries < 100 && seen < 10; tries++) {
        if (repro_reader_next(r, 200, &b) <= 0)
            continue;
        for (uint32_t i = 0; i < b->n; i++) {
            char want[16];
            /* Ethernet (14) + IPv4 (20) + UDP (8) + payload */
            assert_int_equal(b->pkts[i].caplen, 14 + 20 + 8 + 100);
            snprintf(want, sizeof want, "#%d", seen);
            assert_memory_equal(b->data + b->pkts[i].off + 42, want, strlen(want));
            assert_int_equal(b->pkts[i].record_no, (uint64_t)seen + 1);
            seen++;
        }
        repro_reader_release(r, b);
    }
    assert_int_equal(seen, 10);
    repro_reader_stop(r);
    while ((got = repro_reader_next(r, 200, &b)) >= 0)
        if (got > 0)
            repro_reader_release(r, b);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(st.packets, 10);
    assert_int_equal(st.queue_drops, 0);
    assert_int_equal(st.queued_bytes, 0);
    close_lo(&f);
}

/* A consumer that does not keep up: the queue (two batches) fills, and
 * every packet read is either handed over or counted as dropped. */
static void test_full_queue_drops_and_counts(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_packet_batch *b;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    uint64_t handed = 0;
    int got;
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    send_n(&f, 200, 60000); /* 12 MB; two batches hold about 34 */
    for (int tries = 0; tries < 200; tries++) {
        repro_reader_stats(r, &st);
        if (st.packets >= 200)
            break;
        usleep(20000); /* polling the reader's counter, bounded */
    }
    assert_int_equal(st.packets, 200);
    assert_true(st.queue_drops > 100);
    repro_reader_stop(r);
    while ((got = repro_reader_next(r, 200, &b)) >= 0) {
        if (got > 0) {
            handed += b->n;
            repro_reader_release(r, b);
        }
    }
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(handed + st.queue_drops, st.packets);
    assert_int_equal(st.queue_drop_bytes, st.queue_drops * (14 + 20 + 8 + 60000));
    close_lo(&f);
}

/* The payload number ("#N") of packet i of b. */
static int payload_no(const struct repro_packet_batch *b, uint32_t i)
{
    return atoi((const char *)b->data + b->pkts[i].off + 42 + 1);
}

/* Takes every batch until the reader ends; checks that packets come in
 * the order sent (payload #0, #1, ...) with consecutive record numbers
 * from first_record_no; returns how many. */
static uint64_t drain_in_order(struct repro_reader *r, int first_no, uint64_t first_record_no)
{
    struct repro_packet_batch *b;
    uint64_t handed = 0;
    int got, want = first_no;

    while ((got = repro_reader_next(r, 200, &b)) >= 0) {
        if (got == 0)
            continue;
        assert_true(b->spool_off < 0); /* a shell is never handed over */
        for (uint32_t i = 0; i < b->n; i++) {
            assert_int_equal(b->pkts[i].caplen, 14 + 20 + 8 + 60000);
            assert_int_equal(payload_no(b, i), want);
            assert_int_equal(b->pkts[i].record_no, first_record_no + handed);
            want++;
            handed++;
        }
        repro_reader_release(r, b);
    }
    return handed;
}

/* Entries of dir other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* Waits (bounded) until the reader has read n packets. */
static void wait_packets(struct repro_reader *r, uint64_t n, struct repro_reader_stats *st)
{
    for (int tries = 0; tries < 250; tries++) {
        repro_reader_stats(r, st);
        if (st->packets >= n)
            return;
        usleep(20000); /* polling the reader's counter, bounded */
    }
    repro_reader_stats(r, st);
}

/* With a spool, a consumer that takes nothing loses nothing: what the two
 * batches of the queue cannot hold goes to an unnamed file (no name in
 * the directory), and comes back in order; the file is emptied once read. */
static void test_spool_keeps_everything_in_order(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    assert_int_equal(repro_reader_spool(r, dir, 64u << 20, &err), REPRO_OK);
    send_n(&f, 200, 60000); /* 12 MB; the two batches hold about 34 */
    wait_packets(r, 200, &st);
    assert_int_equal(st.packets, 200);
    assert_int_equal(st.queue_drops, 0);
    assert_true(st.spooled_batches >= 5);
    assert_true(st.spooled_bytes > 6u << 20);
    assert_int_equal(dir_entries(dir), 0); /* O_TMPFILE: nothing to leave behind */
    repro_reader_stop(r);
    assert_int_equal(drain_in_order(r, 0, 1), 200);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(st.queue_drops, 0);
    assert_int_equal(st.spool_errors, 0);
    assert_int_equal(st.spooled_bytes, 0);
    assert_true(st.spool_peak_bytes > 6u << 20);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* A spool that fills up drops and counts like a full queue; what was kept
 * still comes in order, and a spool read back to the end starts over. */
static void test_spool_full_drops_and_counts(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    uint64_t handed;
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_non_null(mkdtemp(dir));
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    assert_int_equal(repro_reader_spool(r, dir, 3u << 20, &err), REPRO_OK);
    send_n(&f, 200, 60000);
    wait_packets(r, 200, &st);
    assert_int_equal(st.packets, 200);
    assert_true(st.spooled_batches >= 1);
    assert_true(st.spooled_bytes <= 3u << 20);
    assert_true(st.queue_drops > 50);
    repro_reader_stop(r);
    handed = 0;
    {
        struct repro_packet_batch *b;
        int got;
        while ((got = repro_reader_next(r, 200, &b)) >= 0) {
            if (got == 0)
                continue;
            handed += b->n;
            repro_reader_release(r, b);
        }
    }
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(handed + st.queue_drops, st.packets);
    assert_int_equal(st.queue_drop_bytes, st.queue_drops * (14 + 20 + 8 + 60000));
    assert_int_equal(st.spooled_bytes, 0);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* A spool cannot be made where no directory is: the error names it, and
 * the reader goes on without one. */
static void test_spool_refused_names_directory(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    assert_int_equal(repro_reader_spool(r, "/nonexistent/repro-spool", 1u << 20, &err), REPRO_E_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/repro-spool"));
    memset(&err, 0, sizeof err);
    send_n(&f, 5, 100);
    wait_packets(r, 5, &st);
    repro_reader_stop(r);
    {
        struct repro_packet_batch *b;
        int got;
        uint64_t handed = 0;
        while ((got = repro_reader_next(r, 200, &b)) >= 0)
            if (got > 0) {
                handed += b->n;
                repro_reader_release(r, b);
            }
        assert_int_equal(handed, 5);
    }
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(st.spooled_batches, 0);
    close_lo(&f);
}

static void test_file_source_refused(void **state)
{
    struct repro_source_opts o;
    struct repro_error err = {0};
    struct repro_source *src;
    struct repro_reader *r = NULL;
    char path[512];
    (void)state;

    snprintf(path, sizeof path, "%s/fixtures/capture/nginx_curl.pcap", REPRO_SOURCE_DIR);
    memset(&o, 0, sizeof o);
    o.file = path;
    src = repro_source_open(&o, &err);
    if (src == NULL)
        tu_skip("fixture nginx_curl.pcap missing");
    assert_int_equal(repro_reader_start(src, 0, &r, &err), REPRO_E_INVAL);
    assert_null(r);
    assert_non_null(strstr(err.msg, "not a live source"));
    repro_source_close(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_then_packets_then_stop),
        cmocka_unit_test(test_full_queue_drops_and_counts),
        cmocka_unit_test(test_spool_keeps_everything_in_order),
        cmocka_unit_test(test_spool_full_drops_and_counts),
        cmocka_unit_test(test_spool_refused_names_directory),
        cmocka_unit_test(test_file_source_refused),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
