/*
 * The allocation hook. Every library allocation goes through here so the
 * fault-injection tests can fail the N-th allocation and check that each
 * operation ends in a clean error without a leak.
 */
#include "repro/core.h"

#include <stdlib.h>
#include <string.h>

static unsigned long alloc_count;
static unsigned long alloc_fail_at;

unsigned long repro_alloc_fail_after(unsigned long n)
{
    unsigned long made = alloc_count;
    alloc_count = 0;
    alloc_fail_at = n;
    return made;
}

static int alloc_should_fail(void)
{
    alloc_count++;
    return alloc_fail_at != 0 && alloc_count >= alloc_fail_at;
}

void *repro_malloc(size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *repro_calloc(size_t n, size_t size)
{
    if (alloc_should_fail())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *repro_realloc(void *p, size_t n)
{
    if (alloc_should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void repro_free(void *p)
{
    free(p);
}

char *repro_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = repro_malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}
