/*
 * The spool format and its recovery reader (capture/spool_file.c,
 * docs/spool-format.md), on files built here with the writer's own header
 * functions and then damaged the ways a crash damages them: a torn last
 * write, a payload that never reached the disk, a punched batch whose
 * "read" mark was lost, zeros at the end, a file that is not a spool. The
 * checksums are checked against zlib's crc32, an independent
 * implementation. Files live in memory (memfd).
 */
#include "capture/spool_format.h"
#include "test_util.h"

#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define REC ((uint64_t)sizeof(struct repro_batch_pkt))

/* A batch of n packets of len bytes; packet j's bytes are (first + j + k) & 0xff. */
static void make_batch(struct repro_packet_batch *b, uint32_t n, uint32_t len, uint64_t first)
{
    memset(b, 0, sizeof *b);
    b->pkts = calloc(n, sizeof *b->pkts);
    b->data = calloc(n, (len + 7u) & ~7u);
    assert_non_null(b->pkts);
    assert_non_null(b->data);
    for (uint32_t j = 0; j < n; j++) {
        b->pkts[j].ts_us = 1700000000000000 + (int64_t)(first + j);
        b->pkts[j].caplen = len;
        b->pkts[j].off = b->used;
        b->pkts[j].record_no = first + j;
        for (uint32_t k = 0; k < len; k++)
            b->data[b->used + k] = (uint8_t)(first + j + k);
        b->used += (len + 7u) & ~7u;
    }
    b->n = n;
}

static void free_batch(struct repro_packet_batch *b)
{
    free(b->pkts);
    free(b->data);
}

/* Appends b to the file at *off as the writer does; returns its offset. */
static uint64_t put_batch(int fd, uint64_t *off, const struct repro_packet_batch *b, uint64_t seq)
{
    uint8_t h[REPRO_SPOOL_BATCH_HEADER];
    uint64_t at = *off;

    repro__spool_batch_header(h, b, seq);
    assert_int_equal(pwrite(fd, h, sizeof h, (off_t)at), (ssize_t)sizeof h);
    assert_int_equal(pwrite(fd, b->pkts, b->n * REC, (off_t)(at + sizeof h)), (ssize_t)(b->n * REC));
    assert_int_equal(pwrite(fd, b->data, b->used, (off_t)(at + sizeof h + b->n * REC)),
                     (ssize_t)b->used);
    *off = at + sizeof h + b->n * REC + b->used;
    return at;
}

/* A memfd with a file header and batches of 3 packets each, 100 bytes
 * (numbered from 1 on, 3 per batch); *offs gets each batch's offset. */
static int spool_with(int batches, uint64_t *offs, uint64_t *end)
{
    uint8_t h[REPRO_SPOOL_FILE_HEADER];
    uint64_t off = REPRO_SPOOL_FILE_HEADER;
    int fd = memfd_create("spool", 0);

    assert_true(fd >= 0);
    repro__spool_file_header(h, DLT_EN10MB, 42, 1700000000000000, 1234);
    assert_int_equal(pwrite(fd, h, sizeof h, 0), (ssize_t)sizeof h);
    for (int i = 0; i < batches; i++) {
        struct repro_packet_batch b;
        make_batch(&b, 3, 100, 1 + 3 * (uint64_t)i);
        offs[i] = put_batch(fd, &off, &b, 1 + 3 * (uint64_t)i);
        free_batch(&b);
    }
    *end = off;
    return fd;
}

/* Punches out batch i's records and data, as the consumer does once it
 * has read it (batch i + 1 follows it at offs[i + 1]). */
static void punch_payload(int fd, const uint64_t *offs, int i)
{
    assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               (off_t)(offs[i] + REPRO_SPOOL_BATCH_HEADER),
                               (off_t)(offs[i + 1] - offs[i] - REPRO_SPOOL_BATCH_HEADER)),
                     0);
}

/* Recovers fd; returns the record numbers handed back, in order, into
 * got (at most max), checking each packet's bytes. */
static size_t recover(int fd, uint64_t *got, size_t max, struct repro_spool_recovery_stats *st,
                      char *problem, size_t problem_len)
{
    struct repro_spool_recovery *rc = NULL;
    struct repro_spool_info info;
    struct repro_error err = {0};
    const struct repro_packet_batch *b;
    size_t n = 0;

    assert_int_equal(repro_spool_recovery_open(fd, "t.spool", &rc, &info, &err), REPRO_OK);
    assert_int_equal(info.dlt, DLT_EN10MB);
    assert_int_equal(info.capture_id, 42);
    assert_int_equal(info.created_us, 1700000000000000);
    assert_int_equal(info.pid, 1234);
    while (repro_spool_recovery_next(rc, &b) == 1) {
        for (uint32_t j = 0; j < b->n; j++) {
            const struct repro_batch_pkt *p = &b->pkts[j];
            assert_int_equal(p->caplen, 100);
            for (uint32_t k = 0; k < p->caplen; k++)
                assert_int_equal(b->data[p->off + k], (uint8_t)(p->record_no + k));
            if (n < max)
                got[n] = p->record_no;
            n++;
        }
    }
    repro_spool_recovery_stats(rc, st);
    snprintf(problem, problem_len, "%s", repro_spool_recovery_problem(rc));
    repro_spool_recovery_free(rc);
    return n;
}

static void test_checksums_match_zlib(void **state)
{
    struct repro_packet_batch b;
    uint8_t h[REPRO_SPOOL_BATCH_HEADER], fh[REPRO_SPOOL_FILE_HEADER];
    uLong crc;
    uint32_t stored;
    (void)state;

    make_batch(&b, 5, 333, 9);
    repro__spool_batch_header(h, &b, 3);
    crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, (const Bytef *)b.pkts, (uInt)(b.n * REC));
    crc = crc32(crc, b.data, b.used);
    memcpy(&stored, h + 24, 4);
    assert_int_equal(stored, (uint32_t)crc);
    crc = crc32(crc32(0L, Z_NULL, 0), h, 4);
    crc = crc32(crc, h + 8, 20);
    memcpy(&stored, h + 28, 4);
    assert_int_equal(stored, (uint32_t)crc);
    repro__spool_file_header(fh, 1, 2, 3, 4);
    memcpy(&stored, fh + 60, 4);
    assert_int_equal(stored, (uint32_t)crc32(crc32(0L, Z_NULL, 0), fh, 60));
    assert_memory_equal(fh, "REPROSPL", 8);
    free_batch(&b);
}

static void test_all_unread_come_back_in_order(void **state)
{
    uint64_t offs[4], end, got[16];
    struct repro_spool_recovery_stats st;
    char problem[400];
    int fd = spool_with(4, offs, &end);
    (void)state;

    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(got[i], (uint64_t)i + 1);
    assert_int_equal(st.batches, 4);
    assert_int_equal(st.packets, 12);
    assert_int_equal(st.bytes, 1200);
    assert_int_equal(st.read_batches + st.bad_batches + st.torn_bytes, 0);
    assert_string_equal(problem, "");
    close(fd);
}

/* What the consumer read is marked and punched: skipped, not damaged. */
static void test_read_batches_are_skipped(void **state)
{
    uint64_t offs[4], end, got[16];
    struct repro_spool_recovery_stats st;
    char problem[400];
    uint32_t read = REPRO_SPOOL_READ;
    int fd = spool_with(4, offs, &end);
    (void)state;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(pwrite(fd, &read, 4, (off_t)(offs[i] + REPRO_SPOOL_STATE_OFF)), 4);
        punch_payload(fd, offs, i);
    }
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(got[0], 7);
    assert_int_equal(got[5], 12);
    assert_int_equal(st.read_batches, 2);
    assert_int_equal(st.bad_batches, 0);
    assert_string_equal(problem, "");
    close(fd);
}

/* Batches written out of packet order (a full queue spools a batch at
 * once while older ones wait in memory) come back in packet order, by
 * their sequence numbers. */
static void test_out_of_order_sorted(void **state)
{
    uint8_t fh[REPRO_SPOOL_FILE_HEADER];
    struct repro_spool_recovery_stats st;
    uint64_t off = REPRO_SPOOL_FILE_HEADER, got[16];
    char problem[400];
    int fd = memfd_create("spool", 0);
    const uint64_t firsts[] = {7, 1, 10, 4};
    (void)state;

    repro__spool_file_header(fh, DLT_EN10MB, 42, 1700000000000000, 1234);
    assert_int_equal(pwrite(fd, fh, sizeof fh, 0), (ssize_t)sizeof fh);
    for (int i = 0; i < 4; i++) {
        struct repro_packet_batch b;
        make_batch(&b, 3, 100, firsts[i]);
        put_batch(fd, &off, &b, firsts[i]);
        free_batch(&b);
    }
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(got[i], (uint64_t)i + 1);
    close(fd);
}

/* A recovery that marks what it fed and is cut short: the next one goes
 * on where it was. */
static void test_marked_by_recovery_not_again(void **state)
{
    uint64_t offs[3], end, got[16];
    struct repro_spool_recovery *rc = NULL;
    struct repro_spool_recovery_stats st;
    struct repro_error err = {0};
    const struct repro_packet_batch *b;
    char problem[400];
    int fd = spool_with(3, offs, &end);
    (void)state;

    assert_int_equal(repro_spool_recovery_open(fd, "t.spool", &rc, NULL, &err), REPRO_OK);
    assert_int_equal(repro_spool_recovery_mark_read(rc), REPRO_OK); /* nothing handed yet */
    assert_int_equal(repro_spool_recovery_next(rc, &b), 1);
    assert_int_equal(b->pkts[0].record_no, 1);
    assert_int_equal(repro_spool_recovery_mark_read(rc), REPRO_OK);
    assert_int_equal(repro_spool_recovery_next(rc, &b), 1); /* handed, not marked: cut short */
    repro_spool_recovery_free(rc);
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(got[0], 4);
    assert_int_equal(st.read_batches, 1);
    close(fd);
}

/* A punched batch whose "read" mark was lost (a power cut), and a batch
 * whose payload never reached the disk: their checksums fail, they are
 * skipped and counted, the walk goes on. */
static void test_damaged_payload_is_skipped(void **state)
{
    uint64_t offs[4], end, got[16];
    struct repro_spool_recovery_stats st;
    char problem[400];
    uint8_t byte;
    int fd = spool_with(4, offs, &end);
    (void)state;

    punch_payload(fd, offs, 0);
    assert_int_equal(pread(fd, &byte, 1, (off_t)(offs[2] + 200)), 1);
    byte ^= 0x40;
    assert_int_equal(pwrite(fd, &byte, 1, (off_t)(offs[2] + 200)), 1);
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(got[0], 4);
    assert_int_equal(got[3], 10);
    assert_int_equal(st.bad_batches, 2);
    assert_int_equal(st.bad_bytes, 2 * (offs[1] - offs[0]));
    assert_non_null(strstr(problem, "t.spool"));
    assert_non_null(strstr(problem, "checksum"));
    {
        char at[32];
        snprintf(at, sizeof at, "offset %llu", (unsigned long long)offs[0]);
        assert_non_null(strstr(problem, at));
    }
    close(fd);
}

/* The last write torn by a kill -9 (cut short) or by a power cut (the
 * file's size reached the disk, its bytes did not: zeros): the batches
 * before it come back, the tail is counted as torn. */
static void test_torn_tail(void **state)
{
    uint64_t offs[3], end, got[16];
    struct repro_spool_recovery_stats st;
    char problem[400];
    int fd;
    (void)state;

    fd = spool_with(3, offs, &end);
    assert_int_equal(ftruncate(fd, (off_t)(end - 50)), 0); /* cut in the last batch's data */
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(st.torn_bytes, end - 50 - offs[2]);
    assert_non_null(strstr(problem, "cut short"));
    close(fd);

    fd = spool_with(3, offs, &end);
    assert_int_equal(ftruncate(fd, (off_t)(offs[2] + 10)), 0); /* cut in its header */
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(st.torn_bytes, 10);
    close(fd);

    fd = spool_with(2, offs, &end);
    assert_int_equal(ftruncate(fd, (off_t)(end + 4096)), 0); /* zeros after the last */
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_int_equal(st.torn_bytes, 4096);
    assert_non_null(strstr(problem, "zeros"));
    close(fd);
}

/* A header that cannot be believed ends the walk: what it says about
 * sizes cannot be used to find the next one. */
static void test_bad_header_ends_walk(void **state)
{
    uint64_t offs[3], end, got[16];
    struct repro_spool_recovery_stats st;
    char problem[400];
    uint8_t h[REPRO_SPOOL_BATCH_HEADER];
    uint32_t v;
    int fd;
    (void)state;

    /* a flipped size: the header's checksum fails */
    fd = spool_with(3, offs, &end);
    assert_int_equal(pread(fd, h, sizeof h, (off_t)offs[1]), (ssize_t)sizeof h);
    h[8] ^= 1;
    assert_int_equal(pwrite(fd, h, sizeof h, (off_t)offs[1]), (ssize_t)sizeof h);
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 3);
    assert_int_equal(st.torn_bytes, end - offs[1]);
    assert_non_null(strstr(problem, "magic or checksum"));
    close(fd);

    /* an unknown state (the state is outside the header's checksum) */
    fd = spool_with(3, offs, &end);
    v = 7;
    assert_int_equal(pwrite(fd, &v, 4, (off_t)(offs[2] + REPRO_SPOOL_STATE_OFF)), 4);
    assert_int_equal(recover(fd, got, 16, &st, problem, sizeof problem), 6);
    assert_non_null(strstr(problem, "unknown state"));
    close(fd);
}

/* Sizes beyond the writer's limits, and a packet record outside its data
 * under a right checksum (a writer bug, or a crafted file): never handed
 * back. */
static void test_impossible_batches(void **state)
{
    uint8_t fh[REPRO_SPOOL_FILE_HEADER], h[REPRO_SPOOL_BATCH_HEADER];
    struct repro_packet_batch b;
    struct repro_spool_recovery_stats st;
    uint64_t off = REPRO_SPOOL_FILE_HEADER, got[8];
    char problem[400];
    int fd = memfd_create("spool", 0);
    (void)state;

    repro__spool_file_header(fh, DLT_EN10MB, 42, 1700000000000000, 1234);
    assert_int_equal(pwrite(fd, fh, sizeof fh, 0), (ssize_t)sizeof fh);
    make_batch(&b, 2, 100, 1);
    b.pkts[1].caplen = 5000; /* past its data */
    put_batch(fd, &off, &b, 1);
    free_batch(&b);
    make_batch(&b, 1, 100, 3);
    put_batch(fd, &off, &b, 2);
    free_batch(&b);
    assert_int_equal(recover(fd, got, 8, &st, problem, sizeof problem), 1);
    assert_int_equal(got[0], 3);
    assert_int_equal(st.bad_batches, 1);
    assert_non_null(strstr(problem, "outside its data"));
    close(fd);

    /* n past the limit, with a right header checksum */
    fd = memfd_create("spool", 0);
    assert_int_equal(pwrite(fd, fh, sizeof fh, 0), (ssize_t)sizeof fh);
    make_batch(&b, 1, 100, 1);
    repro__spool_batch_header(h, &b, 1);
    free_batch(&b);
    {
        uint32_t n = REPRO_SPOOL_MAX_PKTS + 1, crc;
        uLong c;
        memcpy(h + 8, &n, 4);
        c = crc32(crc32(0L, Z_NULL, 0), h, 4);
        c = crc32(c, h + 8, 20);
        crc = (uint32_t)c;
        memcpy(h + 28, &crc, 4);
    }
    assert_int_equal(pwrite(fd, h, sizeof h, REPRO_SPOOL_FILE_HEADER), (ssize_t)sizeof h);
    assert_int_equal(ftruncate(fd, (off_t)(REPRO_SPOOL_FILE_HEADER + (64u << 20))), 0);
    assert_int_equal(recover(fd, got, 8, &st, problem, sizeof problem), 0);
    assert_non_null(strstr(problem, "impossible sizes"));
    close(fd);
}

static void open_fails(const void *bytes, size_t len, int code, const char *words)
{
    struct repro_spool_recovery *rc = NULL;
    struct repro_error err = {0};
    int fd = memfd_create("spool", 0);

    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(repro_spool_recovery_open(fd, "x.spool", &rc, NULL, &err), code);
    assert_null(rc);
    assert_non_null(strstr(err.msg, "x.spool"));
    if (strstr(err.msg, words) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, words);
    close(fd);
}

static void test_not_a_spool(void **state)
{
    uint8_t fh[REPRO_SPOOL_FILE_HEADER];
    uint32_t v;
    (void)state;

    open_fails("", 0, REPRO_E_MALFORMED, "shorter than");
    open_fails("REPROSPL", 8, REPRO_E_MALFORMED, "shorter than");
    memset(fh, 'x', sizeof fh);
    open_fails(fh, sizeof fh, REPRO_E_MALFORMED, "first 8 bytes");
    repro__spool_file_header(fh, DLT_EN10MB, 1, 2, 3);
    fh[20] ^= 1;
    open_fails(fh, sizeof fh, REPRO_E_MALFORMED, "checksum");
    /* another version, with a right checksum */
    repro__spool_file_header(fh, DLT_EN10MB, 1, 2, 3);
    v = 2;
    memcpy(fh + 8, &v, 4);
    v = (uint32_t)crc32(crc32(0L, Z_NULL, 0), fh, 60);
    memcpy(fh + 60, &v, 4);
    open_fails(fh, sizeof fh, REPRO_E_UNSUPPORTED, "version 2");
    /* packet records of another size (another build) */
    repro__spool_file_header(fh, DLT_EN10MB, 1, 2, 3);
    v = 32;
    memcpy(fh + 16, &v, 4);
    v = (uint32_t)crc32(crc32(0L, Z_NULL, 0), fh, 60);
    memcpy(fh + 60, &v, 4);
    open_fails(fh, sizeof fh, REPRO_E_UNSUPPORTED, "records of 32 bytes");
}

/* A spool with only its header (an agent killed before it spooled). */
static void test_empty_spool(void **state)
{
    uint64_t offs[1], end, got[1];
    struct repro_spool_recovery_stats st;
    char problem[400];
    int fd = spool_with(0, offs, &end);
    (void)state;

    assert_int_equal(recover(fd, got, 1, &st, problem, sizeof problem), 0);
    assert_int_equal(st.batches + st.read_batches + st.bad_batches + st.torn_bytes, 0);
    assert_string_equal(problem, "");
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksums_match_zlib),
        cmocka_unit_test(test_all_unread_come_back_in_order),
        cmocka_unit_test(test_read_batches_are_skipped),
        cmocka_unit_test(test_out_of_order_sorted),
        cmocka_unit_test(test_marked_by_recovery_not_again),
        cmocka_unit_test(test_damaged_payload_is_skipped),
        cmocka_unit_test(test_torn_tail),
        cmocka_unit_test(test_bad_header_ends_walk),
        cmocka_unit_test(test_impossible_batches),
        cmocka_unit_test(test_not_a_spool),
        cmocka_unit_test(test_empty_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
