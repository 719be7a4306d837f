/*
 * Guard-page buffers and temporary directories for the unit tests.
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
