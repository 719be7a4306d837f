/*
 * Fuzz target for symbolize/: the input is an ELF file (written to a
 * temporary file), opened without debug-file search, every unit indexed,
 * and a spread of addresses looked up and formatted as binutils would. Any
 * outcome but a crash, a leak or a hang is fine; a failure must carry a
 * message and a lookup must keep its invariants (frames within bounds, an
 * inline chain only below an inlined frame). The same addresses in one
 * batch (repro_sym_module_lookup_each: resolved on every core, finished in
 * order) on a second opening of the file must print the same text. Seeds: tests/corpus/symbolize/
 * (small -O2 -g programs, DWARF 5 and 4; recipe in its README).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repro/symbolize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FMT (REPRO_A2L_ADDRESSES | REPRO_A2L_FUNCTIONS | REPRO_A2L_INLINES | REPRO_A2L_DEMANGLE)
#define N_ADDRS (0x4000 / 3 + 1)

static int emit(void *ctx, const struct repro_sym_result *r)
{
    return repro_sym_format_addr2line(ctx, r, FMT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/repro-fuzz-sym-XXXXXX";
    struct repro_sym_options o = {0};
    struct repro_sym_session *s = NULL, *s2 = NULL;
    struct repro_sym_module *m = NULL, *m2 = NULL;
    static uint64_t addrs[N_ADDRS];
    struct repro_buf b2, one;
    size_t n = 0;
    int too_big = 0;
    struct repro_error err = {0};
    struct repro_sym_result r;
    struct repro_buf b;
    uint64_t a;
    int fd = mkstemp(path), rc;

    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    o.no_default_debug_dir = 1;
    o.no_dwfl_fallback = 1;
    if (repro_sym_session_new(&s, &o, &err) != REPRO_OK)
        abort();
    rc = repro_sym_session_open(s, path, &m, &err);
    if (rc == REPRO_OK) {
        struct repro_error e2 = {0};
        if (repro_sym_session_new(&s2, &o, &e2) != REPRO_OK
            || repro_sym_session_open(s2, path, &m2, &e2) != REPRO_OK)
            abort(); /* the same bytes opened once already */
    }
    unlink(path);
    if (rc != REPRO_OK) {
        if (m != NULL || err.code != rc || err.msg[0] == '\0')
            abort();
        repro_sym_session_free(s);
        return 0;
    }
    if (repro_sym_module_build_all(m, &err) != REPRO_OK)
        abort(); /* only running out of memory may fail here */
    repro_buf_init(&one, 1 << 20);
    repro_buf_init(&b, 1 << 26);
    repro_sym_result_init(&r);
    for (a = 0; a < 0x4000; a += 3) {
        size_t k;
        if (repro_sym_module_lookup(m, a, REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE, &r, &err)
            != REPRO_OK)
            abort();
        if (r.n_frames > REPRO_SYM_MAX_FRAMES || (r.status == REPRO_SYM_FOUND) != (r.n_frames > 0))
            abort();
        for (k = 0; k + 1 < r.n_frames; k++)
            if (!r.frames[k].inlined)
                abort();
        repro_buf_reset(&one);
        if (repro_sym_format_addr2line(&one, &r, FMT) != REPRO_OK)
            abort();
        if (!too_big && repro_buf_append(&b, one.data, one.len) != REPRO_OK)
            too_big = 1; /* no comparison then */
        addrs[n++] = a;
    }
    /* the batch on the second module: same text */
    repro_buf_init(&b2, 1 << 26);
    repro_sym_result_init(&r);
    rc = repro_sym_module_lookup_each(m2, addrs, n, REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE, &r,
                                      emit, &b2, &err);
    if (!too_big && (rc != REPRO_OK || b.len != b2.len || memcmp(b.data, b2.data, b.len) != 0))
        abort();
    repro_buf_release(&one);
    repro_buf_release(&b);
    repro_buf_release(&b2);
    repro_sym_session_free(s);
    repro_sym_session_free(s2);
    return 0;
}
