/*
 * sym_index_bench FILE: opens FILE for symbolization and builds its whole
 * index (every unit's lines and functions) on every core, the calling
 * thread included, then prints one line:
 *
 *   open_ms=<sections, symbols, unit map> index_ms=<open start → every unit built>
 *   units_cpu_ms=<unit building summed over threads> units=<n>
 *
 * bench/addr2line_bench.sh runs it in fresh processes (cold index, warm
 * page cache) and reports the median. Exit 0, or 1 with a message.
 */
#include "repro/symbolize.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    struct repro_sym_options so = {0};
    struct repro_sym_session *s = NULL;
    struct repro_sym_module *m = NULL;
    struct repro_sym_stats st;
    struct repro_error err = {0};

    if (argc != 2) {
        fprintf(stderr, "usage: sym_index_bench FILE\n");
        return 1;
    }
    so.no_dwfl_fallback = 1;
    if (repro_sym_session_new(&s, &so, &err) != REPRO_OK
        || repro_sym_session_open(s, argv[1], &m, &err) != REPRO_OK) {
        fprintf(stderr, "sym_index_bench: %s\n", err.msg);
        repro_sym_session_free(s);
        return 1;
    }
    (void)repro_sym_module_build_background(m, &err);
    if (repro_sym_module_build_all(m, &err) != REPRO_OK) {
        fprintf(stderr, "sym_index_bench: %s\n", err.msg);
        repro_sym_session_free(s);
        return 1;
    }
    repro_sym_module_stats(m, &st);
    printf("open_ms=%.2f index_ms=%.2f units_cpu_ms=%.2f units=%zu\n", st.open_ns / 1e6,
           st.index_ns / 1e6, st.units_ns / 1e6, st.n_units_built + st.n_units_failed);
    repro_sym_session_free(s);
    return 0;
}
