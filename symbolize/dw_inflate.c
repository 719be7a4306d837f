/*
 * Decompression of a debug file's DWARF sections at open: SHF_COMPRESSED
 * (ELFCOMPRESS_ZLIB) and GNU .zdebug_* sections are inflated with
 * libdeflate straight from the file's mapping, the biggest first, on up to
 * one thread per core (a thread per section: .debug_info alone is about
 * two thirds of libc's 8.5 MB). libelf's elf_compress() would inflate them
 * one after the other with zlib and copy each section first; libdeflate
 * inflates a whole buffer of known size 2-3x faster than zlib's streaming
 * inflate (libc's .debug_info: 10 ms instead of 23 ms here), and that
 * section is on the critical path of every cold start.
 *
 * The zlib header is checked and the deflate stream inflated raw: the
 * adler32 of the output (a tenth of inflate's time) is not verified. The
 * output must have exactly the size the section header announces and the
 * stream must end there; anything else (zstd, a bad stream, no memory for
 * the decompressor) fails the job and the caller falls back to libelf.
 */
#include "sym_internal.h"

#include <libdeflate.h>
#include <stdlib.h>
#include <unistd.h>

static int inflate_job(struct repro__dw_zjob *j)
{
    struct libdeflate_decompressor *d;
    const uint8_t *p = j->src;
    size_t got = 0;
    enum libdeflate_result rc;
    if (j->src_len < 2 || (p[0] & 0x0f) != 8 || (p[0] >> 4) > 7 || ((p[0] << 8) | p[1]) % 31 != 0
        || (p[1] & 0x20))
        return -1;
    d = libdeflate_alloc_decompressor();
    if (d == NULL)
        return -1;
    rc = libdeflate_deflate_decompress(d, p + 2, j->src_len - 2, j->dst, j->dst_len, &got);
    libdeflate_free_decompressor(d);
    return rc == LIBDEFLATE_SUCCESS && got == j->dst_len ? 0 : -1;
}

static void zrun(struct repro__dw_zpool *p)
{
    size_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
        p->jobs[i].failed = inflate_job(&p->jobs[i]) != 0;
}

/* Runs the after task if nobody has claimed it yet. */
static void run_after(struct repro__dw_zpool *p)
{
    if (p->after != NULL && !atomic_exchange(&p->after_claimed, 1))
        p->after(p->after_ctx);
}

/* A helper: the jobs the opening thread did not take, then the after task. */
static void *zworker(void *arg)
{
    struct repro__dw_zpool *p = arg;
    zrun(p);
    run_after(p);
    return NULL;
}

static int cmp_job(const void *a, const void *b)
{
    const struct repro__dw_zjob *x = a, *y = b;
    return x->dst_len < y->dst_len ? 1 : x->dst_len > y->dst_len ? -1 : 0;
}

void repro__dw_inflate_start(struct repro__dw_zpool *p, struct repro__dw_zjob *jobs, size_t n,
                             void (*after)(void *ctx), void *ctx)
{
    size_t total = 0, planned = 0, i;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->jobs = jobs;
    p->n = n;
    p->n_th = 0;
    p->after = after;
    p->after_ctx = ctx;
    atomic_init(&p->after_claimed, 0);
    if (n > 1)
        qsort(jobs, n, sizeof *jobs, cmp_job);
    for (i = 0; i < n; i++)
        total += jobs[i].dst_len;
    /* threads only pay off past a few hundred KiB */
    if (total >= (256u << 10))
        while ((long)planned + 1 < cpus && planned < sizeof p->th / sizeof *p->th
               && planned + 1 < n + (after != NULL))
            planned++;
    /* this thread takes the biggest job at once (a new thread may take
     * milliseconds to get a core on a busy VM: it gets the small ones and
     * the after task) */
    atomic_init(&p->next, n > 0 ? 1 : 0);
    for (i = 0; i < planned; i++) {
        if (pthread_create(&p->th[i], NULL, zworker, p) != 0)
            break;
        p->n_th++;
    }
    if (n > 0)
        jobs[0].failed = inflate_job(&jobs[0]) != 0;
    zrun(p);
    run_after(p);
}
void repro__dw_inflate_finish(struct repro__dw_zpool *p)
{
    size_t i;
    for (i = 0; i < p->n_th; i++)
        pthread_join(p->th[i], NULL);
    p->n_th = 0;
}
