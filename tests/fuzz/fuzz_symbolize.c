/*
 * Fuzz target for symbolize/: the input is an ELF file (written to a
 * temporary file), opened without debug-file search, every unit indexed,
 * and a spread of addresses looked up and formatted as binutils would. Any
 * outcome but a crash, a leak or a hang is fine; a failure must carry a
 * message and a lookup must keep its invariants (frames within bounds, an
 * inline chain only below an inlined frame). Seeds: tests/corpus/symbolize/
 * (small -O2 -g programs, DWARF 5 and 4; recipe in its README).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "repro/symbolize.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/repro-fuzz-sym-XXXXXX";
    struct repro_sym_options o = {0};
    struct repro_sym_session *s = NULL;
    struct repro_sym_module *m = NULL;
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
    unlink(path);
    if (rc != REPRO_OK) {
        if (m != NULL || err.code != rc || err.msg[0] == '\0')
            abort();
        repro_sym_session_free(s);
        return 0;
    }
    if (repro_sym_module_build_all(m, &err) != REPRO_OK)
        abort(); /* only running out of memory may fail here */
    repro_buf_init(&b, 1 << 20);
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
        if (repro_sym_format_addr2line(&b, &r, REPRO_A2L_ADDRESSES | REPRO_A2L_FUNCTIONS
                                                   | REPRO_A2L_INLINES | REPRO_A2L_DEMANGLE)
            != REPRO_OK)
            abort();
        repro_buf_reset(&b);
    }
    repro_buf_release(&b);
    repro_sym_session_free(s);
    return 0;
}
