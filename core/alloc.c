/*
 * The allocation hook. Every library allocation goes through here so the
 * fault-injection tests can fail the N-th allocation and check that each
 * operation ends in a clean error without a leak.
 */
#include "repro/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* atomic: library threads (symbolize's background builders) allocate too */
static _Atomic unsigned long alloc_count;
static _Atomic unsigned long alloc_fail_at;

unsigned long repro_alloc_fail_after(unsigned long n)
{
    unsigned long made = atomic_exchange_explicit(&alloc_count, 0, memory_order_relaxed);
    atomic_store_explicit(&alloc_fail_at, n, memory_order_relaxed);
    return made;
}

static int alloc_should_fail(void)
{
    unsigned long at = atomic_load_explicit(&alloc_fail_at, memory_order_relaxed);
    unsigned long count = atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed) + 1;
    return at != 0 && count >= at;
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

char *repro_strndup(const char *s, size_t n)
{
    char *d = repro_malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}
