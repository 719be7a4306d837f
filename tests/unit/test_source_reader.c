/*
 * The live reader (capture/source_reader.c) on a real interface: lo, as
 * root (skipped otherwise). UDP datagrams to a socket of this process are
 * the traffic; a BPF filter on its port keeps other traffic out.
 */
#include "repro/capture.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* Takes every batch until the reader ends; returns how many packets. */
static uint64_t drain_all(struct repro_reader *r)
{
    struct repro_packet_batch *b;
    uint64_t handed = 0;
    int got;

    while ((got = repro_reader_next(r, 200, &b)) >= 0) {
        if (got > 0) {
            handed += b->n;
            repro_reader_release(r, b);
        }
    }
    return handed;
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
    struct repro_reader_stats st;
    struct repro_error err = {0};
    uint64_t handed;
    (void)state;

    if (open_lo(&f) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_int_equal(repro_reader_start(f.src, 0, &r, &err), REPRO_OK);
    send_n(&f, 200, 60000); /* 12 MB; two batches hold about 34 */
    wait_packets(r, 200, &st);
    assert_int_equal(st.packets, 200);
    assert_true(st.queue_drops > 100);
    repro_reader_stop(r);
    handed = drain_all(r);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(handed + st.queue_drops, st.packets);
    assert_int_equal(st.queue_drop_bytes, st.queue_drops * (14 + 20 + 8 + 60000));
    close_lo(&f);
}

/* The payload number ("#N", then a NUL: send_n) of packet i of b. */
static int payload_no(const struct repro_packet_batch *b, uint32_t i)
{
    const uint8_t *p = b->data + b->pkts[i].off + 42;
    int v = 0;

    assert_int_equal(p[0], '#');
    for (p++; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    return v;
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

#define SPOOL_NAME "x.db.spool.1"

/* A reader on lo with a spool of max bytes in a new directory (dir, a
 * mkdtemp template); 0, or -1 when not root (the caller skips). */
static int start_spooled(struct fixture *f, char *dir, uint64_t max, struct repro_reader **r)
{
    struct repro_error err = {0};

    if (open_lo(f) != 0)
        return -1;
    assert_non_null(mkdtemp(dir));
    assert_int_equal(repro_reader_start(f->src, 0, r, &err), REPRO_OK);
    assert_int_equal(repro_reader_spool(*r, dir, SPOOL_NAME, 7, max, &err), REPRO_OK);
    return 0;
}

/* With a spool, a consumer that takes nothing loses nothing: what the two
 * batches of the queue cannot hold goes to the spool file, and comes back
 * in order; the file is removed at the end, everything read. */
static void test_spool_keeps_everything_in_order(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    (void)state;

    if (start_spooled(&f, dir, 64u << 20, &r) != 0)
        tu_skip("needs root (live capture on lo)");
    send_n(&f, 200, 60000); /* 12 MB; the two batches hold about 34 */
    wait_packets(r, 200, &st);
    assert_int_equal(st.packets, 200);
    assert_int_equal(st.queue_drops, 0);
    assert_true(st.spooled_batches >= 5);
    assert_true(st.spooled_bytes > 6u << 20);
    assert_int_equal(dir_entries(dir), 1);
    repro_reader_stop(r);
    assert_int_equal(drain_in_order(r, 0, 1), 200);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(dir_entries(dir), 0); /* nothing left to recover */
    assert_int_equal(st.spool_left_batches, 0);
    assert_int_equal(st.queue_drops, 0);
    assert_int_equal(st.spool_errors, 0);
    assert_int_equal(st.spooled_bytes, 0);
    assert_true(st.spool_peak_bytes > 6u << 20);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* Takes batches until n packets came or nothing comes for a while;
 * checks their order as drain_in_order does. */
static uint64_t take_in_order(struct repro_reader *r, uint64_t n, int *next_no,
                              uint64_t *next_record_no)
{
    struct repro_packet_batch *b;
    uint64_t handed = 0;

    for (int idle = 0; handed < n && idle < 25;) {
        int got = repro_reader_next(r, 200, &b);
        if (got < 0)
            break;
        if (got == 0) {
            idle++;
            continue;
        }
        for (uint32_t i = 0; i < b->n; i++) {
            assert_int_equal(payload_no(b, i), *next_no);
            assert_int_equal(b->pkts[i].record_no, *next_record_no);
            ++*next_no;
            ++*next_record_no;
            handed++;
        }
        repro_reader_release(r, b);
    }
    return handed;
}

/* The size of the spool file in dir, or -1 when there is none. */
static long long spool_file_size(const char *dir)
{
    char path[128];
    struct stat sb;

    snprintf(path, sizeof path, "%s/%s", dir, SPOOL_NAME);
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* The spool while the consumer reads: a first burst is spooled and read
 * back while the reader runs (the file then starts over after its 64-byte
 * header, which the
 * reader does on its own turn), a second burst is spooled again; order
 * and counts hold across both. */
static void test_spool_while_reading_starts_over(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    int next_no = 0;
    uint64_t next_record_no = 1, batches_first;
    (void)state;

    if (start_spooled(&f, dir, 64u << 20, &r) != 0)
        tu_skip("needs root (live capture on lo)");
    assert_int_equal(repro_reader_spool(r, dir, "other", 7, 64u << 20, &err), REPRO_E_INVAL);
    send_n(&f, 100, 60000);
    wait_packets(r, 100, &st);
    assert_true(st.spooled_batches >= 2);
    batches_first = st.spooled_batches;
    /* the reader is running: shells are read back while it polls */
    assert_int_equal(take_in_order(r, 100, &next_no, &next_record_no), 100);
    repro_reader_stats(r, &st);
    assert_int_equal(st.spooled_bytes, 0);
    assert_true(spool_file_size(dir) >= 0);
    /* all read: the reader empties the file on one of its next turns */
    for (int tries = 0; tries < 100 && spool_file_size(dir) != 64; tries++)
        usleep(20000); /* polling the file's size, bounded */
    assert_int_equal(spool_file_size(dir), 64);
    /* the numbering goes on: send_n restarts at #0, so renumber */
    {
        static uint8_t buf[60000];
        for (int i = 0; i < 100; i++) {
            memset(buf, 'b', sizeof buf);
            snprintf((char *)buf, sizeof buf, "#%d", 100 + i);
            assert_int_equal(
                sendto(f.tx, buf, sizeof buf, 0, (struct sockaddr *)&f.to, sizeof f.to),
                (ssize_t)sizeof buf);
        }
    }
    wait_packets(r, 200, &st);
    assert_true(st.spooled_batches > batches_first);
    repro_reader_stop(r);
    assert_int_equal(take_in_order(r, 100, &next_no, &next_record_no), 100);
    assert_int_equal(drain_all(r), 0);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(st.queue_drops, 0);
    assert_int_equal(st.spool_errors, 0);
    assert_int_equal(st.spooled_bytes, 0);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* A spool that fills up drops and counts like a full queue; what was kept
 * still comes in order. */
static void test_spool_full_drops_and_counts(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    uint64_t handed;
    (void)state;

    if (start_spooled(&f, dir, 3u << 20, &r) != 0)
        tu_skip("needs root (live capture on lo)");
    send_n(&f, 200, 60000);
    wait_packets(r, 200, &st);
    assert_int_equal(st.packets, 200);
    assert_true(st.spooled_batches >= 1);
    assert_true(st.spooled_bytes <= 3u << 20);
    assert_true(st.queue_drops > 50);
    repro_reader_stop(r);
    handed = drain_all(r);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(handed + st.queue_drops, st.packets);
    assert_int_equal(st.queue_drop_bytes, st.queue_drops * (14 + 20 + 8 + 60000));
    assert_int_equal(st.spooled_bytes, 0);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* Waits (bounded: 3 s) until the spool holds all n packets of send_n(f,
 * n, 60000) and none waits in memory; checks it came to that. */
static void wait_all_spooled(struct repro_reader *r, uint64_t n, struct repro_reader_stats *st)
{
    repro_reader_stats(r, st);
    for (int tries = 0; tries < 150 && (st->spooled_bytes < n * 60042 || st->queued_bytes > 0);
         tries++) {
        usleep(20000); /* polling the counters */
        repro_reader_stats(r, st);
    }
    assert_true(st->spooled_bytes >= n * 60042);
    assert_int_equal(st->queued_bytes, 0);
}

/* A batch the consumer leaves waiting in memory for half a second goes to
 * the spool (a kill -9 must not lose a long backlog), though the queue has
 * room; it still comes back in order, and later ones follow it there. */
static void test_waiting_batches_go_to_spool(void **state)
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
    assert_int_equal(repro_reader_start(f.src, 256u << 20, &r, &err), REPRO_OK);
    assert_int_equal(repro_reader_spool(r, dir, SPOOL_NAME, 7, 64u << 20, &err), REPRO_OK);
    send_n(&f, 20, 60000); /* 1.2 MB: a full batch and a partly filled one, far from the
                              queue's 256 MiB */
    wait_packets(r, 20, &st);
    /* every packet in the spool (however the reader cut its batches),
     * none left in memory */
    wait_all_spooled(r, 20, &st);
    assert_true(spool_file_size(dir) > 20 * 60042);
    send_n(&f, 20, 60000); /* behind spooled batches: spooled at once */
    wait_packets(r, 40, &st);
    repro_reader_stop(r);
    {
        int next_no = 0;
        uint64_t next_record_no = 1;
        assert_int_equal(take_in_order(r, 20, &next_no, &next_record_no), 20);
        next_no = 0; /* send_n numbers from #0 again */
        assert_int_equal(take_in_order(r, 20, &next_no, &next_record_no), 20);
    }
    assert_int_equal(drain_all(r), 0);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(st.queue_drops + st.spool_errors + st.spool_left_batches, 0);
    assert_true(st.spooled_batches >= 2);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* Recovers the spool file in dir: checks every packet handed back is the
 * next in order (payload #*next_no, record *next_record_no, send_n's
 * bytes) and that nothing was damaged; returns how many, with the
 * recovery's figures and the file's header. */
static uint64_t recover_in_order(const char *dir, int *next_no, uint64_t *next_record_no,
                                 struct repro_spool_recovery_stats *rs,
                                 struct repro_spool_info *info)
{
    struct repro_spool_recovery *rc = NULL;
    const struct repro_packet_batch *cb;
    struct repro_error err = {0};
    char path[128];
    uint64_t n = 0;
    int fd;

    snprintf(path, sizeof path, "%s/%s", dir, SPOOL_NAME);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(repro_spool_recovery_open(fd, path, &rc, info, &err), REPRO_OK);
    while (repro_spool_recovery_next(rc, &cb) == 1) {
        for (uint32_t i = 0; i < cb->n; i++) {
            assert_int_equal(cb->pkts[i].caplen, 14 + 20 + 8 + 60000);
            assert_int_equal(payload_no(cb, i), *next_no);
            assert_int_equal(cb->pkts[i].record_no, *next_record_no);
            assert_int_equal(cb->data[cb->pkts[i].off + 42 + 59999], 'a' + *next_no % 26);
            ++*next_no;
            ++*next_record_no;
            n++;
        }
    }
    repro_spool_recovery_stats(rc, rs);
    assert_string_equal(repro_spool_recovery_problem(rc), "");
    assert_int_equal(rs->packets, n);
    assert_int_equal(rs->bad_batches + rs->torn_bytes, 0);
    repro_spool_recovery_free(rc);
    close(fd);
    return n;
}

/* The file while the reader runs, as a kill -9 would leave it: the queue
 * full, later batches go to the spool at once, and the older ones waiting
 * in memory follow half a second later, so the file holds batches out of
 * packet order; the recovery hands them back in packet order. */
static void test_spool_recovered_in_packet_order(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_spool_recovery_stats rs;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX";
    int next_no = 0;
    uint64_t next_record_no = 1;
    (void)state;

    if (start_spooled(&f, dir, 64u << 20, &r) != 0)
        tu_skip("needs root (live capture on lo)");
    send_n(&f, 60, 60000); /* 3.6 MB: more than the two batches of the queue */
    wait_packets(r, 60, &st);
    wait_all_spooled(r, 60, &st);
    assert_int_equal(recover_in_order(dir, &next_no, &next_record_no, &rs, NULL), 60);
    repro_reader_stop(r);
    assert_int_equal(drain_in_order(r, 0, 1), 60);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_int_equal(rmdir(dir), 0);
    close_lo(&f);
}

/* A consumer that ends with batches still in the spool (a run that failed,
 * or a kill -9: the file is the same, but for its lock) leaves the file,
 * and the recovery reader hands back exactly the unread packets, in order,
 * with their record numbers and bytes; the batches read before are
 * skipped as read. */
static void test_spool_left_behind_is_recovered(void **state)
{
    struct fixture f;
    struct repro_reader *r = NULL;
    struct repro_reader_stats st;
    struct repro_spool_recovery_stats rs;
    struct repro_spool_info info;
    struct repro_error err = {0};
    char dir[] = "/tmp/repro-spool-test.XXXXXX", path[128];
    int next_no = 0;
    uint64_t next_record_no = 1, taken, recovered;
    (void)state;

    if (start_spooled(&f, dir, 64u << 20, &r) != 0)
        tu_skip("needs root (live capture on lo)");
    send_n(&f, 200, 60000);
    wait_packets(r, 200, &st);
    assert_true(st.spooled_batches >= 5);
    /* the consumer takes the queue's batches and a few spooled ones, then
     * the run ends */
    taken = take_in_order(r, 80, &next_no, &next_record_no);
    assert_true(taken >= 80 && taken < 200);
    assert_int_equal(repro_reader_finish(r, &st, &err), REPRO_OK);
    assert_true(st.spool_left_batches > 0);
    assert_int_equal(dir_entries(dir), 1); /* kept for recovery */

    recovered = recover_in_order(dir, &next_no, &next_record_no, &rs, &info);
    assert_int_equal(info.dlt, DLT_EN10MB);
    assert_int_equal(info.capture_id, 7);
    assert_int_equal(info.pid, (uint32_t)getpid());
    assert_int_equal(taken + recovered, 200);
    assert_int_equal(rs.batches, st.spool_left_batches);
    assert_true(rs.read_batches > 0); /* the spooled ones the consumer took */
    snprintf(path, sizeof path, "%s/%s", dir, SPOOL_NAME);
    assert_int_equal(unlink(path), 0);
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
    assert_int_equal(repro_reader_spool(r, "/nonexistent/repro-spool", "x", 7, 1u << 20, &err),
                     REPRO_E_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/repro-spool"));
    memset(&err, 0, sizeof err);
    send_n(&f, 5, 100);
    wait_packets(r, 5, &st);
    repro_reader_stop(r);
    assert_int_equal(drain_all(r), 5);
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
        cmocka_unit_test(test_spool_while_reading_starts_over),
        cmocka_unit_test(test_waiting_batches_go_to_spool),
        cmocka_unit_test(test_spool_recovered_in_packet_order),
        cmocka_unit_test(test_spool_left_behind_is_recovered),
        cmocka_unit_test(test_spool_refused_names_directory),
        cmocka_unit_test(test_file_source_refused),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
