/*
 * Decompression of a debug file's DWARF sections at open: SHF_COMPRESSED
 * (ELFCOMPRESS_ZLIB) and GNU .zdebug_* sections are inflated with zlib
 * straight from the file's mapping, the biggest first, on up to one thread
 * per core (a thread per section: .debug_info alone is about two thirds of
 * libc's 8.5 MB). libelf's elf_compress() would inflate them one after
 * the other and copy each section first.
 *
 * The zlib header is checked and the deflate stream inflated raw: the
 * adler32 of the output (a tenth of inflate's time) is not verified. The
 * output must have exactly the size the section header announces and the
 * stream must end there; anything else (zstd, a bad stream) fails the job
 * and the caller falls back to libelf.
 */
#include "sym_internal.h"

#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static int inflate_job(struct repro__dw_zjob *j)
{
    z_stream z;
    const uint8_t *p = j->src;
    int rc;
    if (j->src_len < 2 || (p[0] & 0x0f) != 8 || (p[0] >> 4) > 7 || ((p[0] << 8) | p[1]) % 31 != 0
        || (p[1] & 0x20))
        return -1;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        goto fail;
    z.next_in = (Bytef *)(p + 2);
    z.next_out = j->dst;
    rc = Z_OK;
    /* avail_in/avail_out are 32-bit: feed at most 1 GiB at a time */
    while (rc == Z_OK) {
        size_t in_left = j->src_len - 2 - (size_t)((const uint8_t *)z.next_in - (p + 2));
        size_t out_left = j->dst_len - (size_t)(z.next_out - j->dst);
        z.avail_in = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
        z.avail_out = (uInt)(out_left > (1u << 30) ? (1u << 30) : out_left);
        if (z.avail_out == 0 || z.avail_in == 0)
            break;
        rc = inflate(&z, Z_FINISH);
        if (rc == Z_BUF_ERROR)
            rc = Z_OK; /* more input or output to come */
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END || (size_t)(z.next_out - j->dst) != j->dst_len)
        goto fail;
    return 0;
fail:
    return -1;
}

static void zrun(struct repro__dw_zpool *p)
{
    size_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
        p->jobs[i].failed = inflate_job(&p->jobs[i]) != 0;
}

/* Thread k inflates job k (the k-th biggest), then takes what is left. */
static void *zworker(void *arg)
{
    struct repro__dw_zpool *p = *(struct repro__dw_zpool **)arg;
    size_t k = (size_t)((struct repro__dw_zpool **)arg - p->self);
    p->jobs[k].failed = inflate_job(&p->jobs[k]) != 0;
    zrun(p);
    return NULL;
}

static int cmp_job(const void *a, const void *b)
{
    const struct repro__dw_zjob *x = a, *y = b;
    return x->dst_len < y->dst_len ? 1 : x->dst_len > y->dst_len ? -1 : 0;
}

void repro__dw_inflate_start(struct repro__dw_zpool *p, struct repro__dw_zjob *jobs, size_t n)
{
    size_t total = 0, planned = 0, i;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    p->jobs = jobs;
    p->n = n;
    p->n_th = 0;
    if (n > 1)
        qsort(jobs, n, sizeof *jobs, cmp_job);
    for (i = 0; i < n; i++)
        total += jobs[i].dst_len;
    /* threads only pay off past a few hundred KiB */
    if (total >= (256u << 10))
        while (planned + 1 < n && (long)planned + 1 < cpus && planned < sizeof p->th / sizeof *p->th)
            planned++;
    /* jobs below planned belong to the threads; the others are shared */
    atomic_init(&p->next, planned);
    for (i = 0; i < planned; i++) {
        p->self[i] = p;
        if (pthread_create(&p->th[i], NULL, zworker, &p->self[i]) != 0)
            break;
        p->n_th++;
    }
    for (i = p->n_th; i < planned; i++) /* threads that did not start */
        jobs[i].failed = inflate_job(&jobs[i]) != 0;
    zrun(p);
}

void repro__dw_inflate_finish(struct repro__dw_zpool *p)
{
    size_t i;
    for (i = 0; i < p->n_th; i++)
        pthread_join(p->th[i], NULL);
    p->n_th = 0;
}
