/*
 * Fuzz target for the spool recovery reader (capture/spool_file.c,
 * docs/spool-format.md): it reads files a crash may have torn.
 *
 * The first input byte chooses:
 * - even: the rest is a spool file as found on disk. The reader must
 *   either refuse it at open with a message or walk it, handing back only
 *   batches whose every packet lies within the batch's data (each byte is
 *   read, so ASan sees a read outside), within the writer's limits, and
 *   counters that add up; each is marked read, and a second walk must
 *   hand back none.
 * - odd: the rest is packet data, cut into packets by its own bytes; a
 *   spool is written from it with the writer's header functions, the
 *   second byte's bits choosing batches marked read, and the recovery
 *   must hand back exactly the unread packets, byte for byte, in order
 *   (a round trip of writer and reader).
 * The file is a memfd. Violations abort().
 */
#include "capture/spool_format.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_spool.c:%d: check failed: %s\n", __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_raw(int fd)
{
    struct repro_spool_recovery *rc = NULL;
    struct repro_spool_recovery_stats st;
    struct repro_error err = {0};
    const struct repro_packet_batch *b;
    uint64_t packets = 0, batches = 0, sum = 0;

    if (repro_spool_recovery_open(fd, "fuzz", &rc, NULL, &err) != REPRO_OK) {
        CHECK(rc == NULL && err.code != 0 && err.msg[0] != '\0');
        return;
    }
    while (repro_spool_recovery_next(rc, &b) == 1) {
        CHECK(b->n >= 1 && b->n <= REPRO_SPOOL_MAX_PKTS && b->used <= REPRO_SPOOL_MAX_DATA);
        for (uint32_t i = 0; i < b->n; i++) {
            const struct repro_batch_pkt *p = &b->pkts[i];
            CHECK(p->caplen >= 1 && (uint64_t)p->off + p->caplen <= b->used);
            for (uint32_t k = 0; k < p->caplen; k++)
                sum += b->data[p->off + k];
        }
        packets += b->n;
        batches++;
        CHECK(repro_spool_recovery_mark_read(rc) == REPRO_OK);
    }
    repro_spool_recovery_stats(rc, &st);
    CHECK(st.packets == packets && st.batches == batches);
    CHECK((st.bad_batches == 0 && st.torn_bytes == 0) || repro_spool_recovery_problem(rc)[0]);
    repro_spool_recovery_free(rc);
    (void)sum;
    /* every batch handed back was marked read: a second walk hands back none */
    rc = NULL;
    CHECK(repro_spool_recovery_open(fd, "fuzz", &rc, NULL, &err) == REPRO_OK);
    CHECK(repro_spool_recovery_next(rc, &b) == 0);
    {
        struct repro_spool_recovery_stats again;
        repro_spool_recovery_stats(rc, &again);
        CHECK(again.read_batches == st.read_batches + batches);
    }
    repro_spool_recovery_free(rc);
}

static void round_trip(int fd, const uint8_t *data, size_t size)
{
    uint8_t fh[REPRO_SPOOL_FILE_HEADER], h[REPRO_SPOOL_BATCH_HEADER];
    struct repro_packet_batch b = {0};
    struct repro_spool_recovery *rc = NULL;
    struct repro_error err = {0};
    const struct repro_packet_batch *got;
    uint64_t off = REPRO_SPOOL_FILE_HEADER, want_from = 0;
    uint8_t read_mask = size ? data[0] : 0;
    size_t pos = size ? 1 : 0, seq = 0;
    /* every packet, in order: start and length in data, and whether its batch was read */
    size_t starts[256], lens[256], nb = 0, np = 0;
    int read_flag[256];

    repro__spool_file_header(fh, 1, 9, 0, 1);
    CHECK(pwrite(fd, fh, sizeof fh, 0) == (ssize_t)sizeof fh);
    b.pkts = calloc(8, sizeof *b.pkts);
    b.data = calloc(8, 264);
    CHECK(b.pkts && b.data);
    while (pos < size && np < 256) {
        /* a batch: up to 8 packets of 1..256 bytes, lengths from the data */
        int is_read = (read_mask >> (nb % 8)) & 1;
        b.n = 0;
        b.used = 0;
        while (pos < size && b.n < 8 && np < 256) {
            size_t len = (size_t)data[pos] + 1;
            if (len > size - pos)
                len = size - pos;
            b.pkts[b.n] = (struct repro_batch_pkt){(int64_t)np, (uint32_t)len, b.used, np + 1};
            memcpy(b.data + b.used, data + pos, len);
            starts[np] = pos;
            lens[np] = len;
            read_flag[np] = is_read;
            b.used += (uint32_t)((len + 7u) & ~7u);
            pos += len;
            b.n++;
            np++;
        }
        repro__spool_batch_header(h, &b, ++seq);
        if (is_read) {
            uint32_t st = REPRO_SPOOL_READ;
            memcpy(h + REPRO_SPOOL_STATE_OFF, &st, 4);
        }
        CHECK(pwrite(fd, h, sizeof h, (off_t)off) == (ssize_t)sizeof h);
        CHECK(pwrite(fd, b.pkts, b.n * sizeof *b.pkts, (off_t)(off + sizeof h)) ==
              (ssize_t)(b.n * sizeof *b.pkts));
        CHECK(pwrite(fd, b.data, b.used, (off_t)(off + sizeof h + b.n * sizeof *b.pkts)) ==
              (ssize_t)b.used);
        off += sizeof h + b.n * sizeof *b.pkts + b.used;
        nb++;
    }
    CHECK(repro_spool_recovery_open(fd, "fuzz", &rc, NULL, &err) == REPRO_OK);
    while (repro_spool_recovery_next(rc, &got) == 1) {
        for (uint32_t i = 0; i < got->n; i++) {
            while (want_from < np && read_flag[want_from])
                want_from++;
            CHECK(want_from < np);
            CHECK(got->pkts[i].record_no == want_from + 1);
            CHECK(got->pkts[i].caplen == lens[want_from]);
            CHECK(memcmp(got->data + got->pkts[i].off, data + starts[want_from],
                         lens[want_from]) == 0);
            want_from++;
        }
    }
    while (want_from < np && read_flag[want_from])
        want_from++;
    CHECK(want_from == np);
    CHECK(repro_spool_recovery_problem(rc)[0] == '\0');
    repro_spool_recovery_free(rc);
    free(b.pkts);
    free(b.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd;

    if (size == 0)
        return 0;
    fd = memfd_create("fuzz-spool", 0);
    CHECK(fd >= 0);
    if (data[0] % 2 == 0) {
        CHECK(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
        walk_raw(fd);
    } else {
        round_trip(fd, data + 1, size - 1);
    }
    close(fd);
    return 0;
}
