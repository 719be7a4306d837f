/*
 * Guard-page buffers, temporary directories, TCP frames and counted skips
 * for the unit tests.
 */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static size_t span_for(size_t len)
{
    size_t pg = page_size();
    return ((len + pg - 1) / pg + 1) * pg;
}

uint8_t *guard_copy(const void *p, size_t len)
{
    size_t pg = page_size(), total = span_for(len);
    uint8_t *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *start;

    if (base == MAP_FAILED) {
        perror("mmap");
        abort();
    }
    if (mprotect(base + total - pg, pg, PROT_NONE) != 0) {
        perror("mprotect");
        abort();
    }
    start = base + total - pg - len;
    if (len)
        memcpy(start, p, len);
    return start;
}

void guard_free(uint8_t *p, size_t len)
{
    size_t pg = page_size(), total = span_for(len);
    uint8_t *base = p + len + pg - total;
    munmap(base, total);
}

const char *test_tmpdir(void)
{
    static char path[256];
    const char *t = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/repro-test-XXXXXX", t && *t ? t : "/tmp");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return path;
}

size_t tu_tcp_frame(uint8_t *out, size_t cap, int side, const uint16_t port[2], uint8_t flags,
                    uint32_t seq, uint32_t ack, const void *data, size_t len)
{
    size_t n = 14 + 20 + 20 + len;
    uint8_t *ip = out + 14, *tcp = ip + 20;

    if (n > cap) {
        fprintf(stderr, "tu_tcp_frame: %zu bytes do not fit in %zu\n", n, cap);
        abort();
    }
    memset(out, 0, 54);
    out[12] = 0x08; /* IPv4 */
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 20 + len) >> 8);
    ip[3] = (uint8_t)(20 + 20 + len);
    ip[9] = 6; /* TCP */
    ip[12] = 10;
    ip[15] = side == 0 ? 1 : 2;
    ip[16] = 10;
    ip[19] = side == 0 ? 2 : 1;
    tcp[0] = (uint8_t)(port[side] >> 8);
    tcp[1] = (uint8_t)port[side];
    tcp[2] = (uint8_t)(port[!side] >> 8);
    tcp[3] = (uint8_t)port[!side];
    tcp[4] = (uint8_t)(seq >> 24);
    tcp[5] = (uint8_t)(seq >> 16);
    tcp[6] = (uint8_t)(seq >> 8);
    tcp[7] = (uint8_t)seq;
    tcp[8] = (uint8_t)(ack >> 24);
    tcp[9] = (uint8_t)(ack >> 16);
    tcp[10] = (uint8_t)(ack >> 8);
    tcp[11] = (uint8_t)ack;
    tcp[12] = 0x50;
    tcp[13] = flags;
    if (len)
        memcpy(tcp + 20, data, len);
    return n;
}

/* Skips are few: the first ones are listed, all are counted. */
static char skip_notes[8][200];
static unsigned n_skips;

void tu__note_skip(const char *file, int line, const char *reason)
{
    const char *base = strrchr(file, '/');
    if (n_skips < sizeof skip_notes / sizeof *skip_notes)
        snprintf(skip_notes[n_skips], sizeof skip_notes[0], "%s:%d: %s", base ? base + 1 : file,
                 line, reason);
    n_skips++;
    fprintf(stderr, "SKIPPED: %s\n", reason);
}

int tu__require(int ok, const char *what, const char *file, int line)
{
    if (!ok) {
        char reason[160];
        snprintf(reason, sizeof reason, "part of a test skipped: needs %s", what);
        tu__note_skip(file, line, reason);
    }
    return ok;
}

int tu_exit(int failed)
{
    unsigned i;
    if (failed)
        return 1;
    if (n_skips == 0)
        return 0;
    fprintf(stderr, "%u skipped (exit %d, ctest reports the binary skipped):\n", n_skips,
            TU_SKIP_EXIT);
    for (i = 0; i < n_skips && i < sizeof skip_notes / sizeof *skip_notes; i++)
        fprintf(stderr, "  %s\n", skip_notes[i]);
    return TU_SKIP_EXIT;
}

int tu_failures;
