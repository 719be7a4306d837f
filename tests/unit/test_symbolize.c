/*
 * Unit tests for symbolize/: the address index and its lookups.
 *
 *  - lookups on this very test binary (built -g by CMake): a noinline
 *    function's name, file and line; an always_inline function's inline
 *    chain with the call site's line; demangling;
 *  - the index invariants of symbolize/sym_internal.h on every unit of this
 *    binary, and "no lost ranges": every function's first address maps to a
 *    function segment;
 *  - bad files: missing, a directory, empty, garbage, a truncated ELF, a
 *    stripped copy (symbol table only), randomly damaged copies of a small
 *    program (no crash, no leak under ASan);
 *  - the bucket index of the searches against a plain count;
 *  - many lookups at once (repro_sym_module_lookup_each) equal the same
 *    lookups one by one, binutils history included;
 *  - allocation failures: the N-th allocation fails, for every N, over
 *    session creation, open, a batch of lookups, building every unit and
 *    lookups: each ends in
 *    a clean REPRO_E_NOMEM (or success), never a crash or a leak;
 *  - the binutils output format on hand-made results.
 * A small program is compiled at test time with cc (skipped when absent);
 * its recipe is the source string below.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dwarf.h>

#include "repro/symbolize.h"
#include "symbolize/sym_internal.h"
#include "test_util.h"

/* ---- probes in this binary --------------------------------------------- */

static int probe_leaf_line;
static int probe_call_line;

__attribute__((noinline)) int probe_leaf(int x);
__attribute__((noinline)) int probe_leaf(int x)
{
    probe_leaf_line = __LINE__ + 1;
    return x * 31 + (int)(uintptr_t)&probe_leaf_line % 7;
}

static inline __attribute__((always_inline)) int probe_inlined(volatile int *p)
{
    return *p * 3 + 1;
}

__attribute__((noinline)) int probe_outer(volatile int *p);
__attribute__((noinline)) int probe_outer(volatile int *p)
{
    int r = 0;
    for (int i = 0; i < *p; i++) {
        /* both statements on one line: the call site's line is known */
        r += probe_inlined(p); probe_call_line = __LINE__;
    }
    return r;
}

static uint64_t load_bias;

static int find_bias(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    load_bias = info->dlpi_addr; /* the first object is the executable */
    return 1;
}

static uint64_t self_addr(const void *fn)
{
    dl_iterate_phdr(find_bias, NULL);
    return (uint64_t)(uintptr_t)fn - load_bias;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = s ? strlen(s) : 0, b = strlen(suffix);
    return s != NULL && a >= b && strcmp(s + a - b, suffix) == 0;
}

static struct repro_sym_module *open_self(struct repro_sym_session **s)
{
    struct repro_sym_module *m = NULL;
    struct repro_error err = {0};
    assert_int_equal(repro_sym_session_new(s, NULL, &err), REPRO_OK);
    assert_int_equal(repro_sym_session_open(*s, "/proc/self/exe", &m, &err), REPRO_OK);
    assert_non_null(m);
    return m;
}

static void test_self_lookup(void **state)
{
    struct repro_sym_session *s;
    struct repro_sym_module *m = open_self(&s);
    struct repro_sym_result r;
    struct repro_error err = {0};
    volatile int three = 3;

    (void)state;
    assert_true(probe_leaf(2) > 0);
    assert_true(probe_outer(&three) > 0);
    assert_true(repro_sym_module_has_dwarf(m));
    repro_sym_result_init(&r);
    assert_int_equal(repro_sym_module_lookup(m, self_addr((const void *)probe_leaf) + 4, 0, &r,
                                             &err), REPRO_OK);
    assert_int_equal(r.status, REPRO_SYM_FOUND);
    assert_string_equal(r.frames[0].function, "probe_leaf");
    assert_true(ends_with(r.frames[0].file, "tests/unit/test_symbolize.c"));
    assert_true(r.frames[0].line >= (uint32_t)probe_leaf_line - 3
                && r.frames[0].line <= (uint32_t)probe_leaf_line + 1);
    /* a second open of the same file is the same module */
    {
        struct repro_sym_module *m2 = NULL;
        assert_int_equal(repro_sym_session_open(s, "/proc/self/exe", &m2, &err), REPRO_OK);
        assert_ptr_equal(m, m2);
    }
    repro_sym_session_free(s);
}

static void test_self_inline_chain(void **state)
{
    struct repro_sym_session *s;
    struct repro_sym_module *m = open_self(&s);
    struct repro_sym_result r;
    struct repro_error err = {0};
    uint64_t base = self_addr((const void *)probe_outer), a;
    int seen = 0;

    (void)state;
    repro_sym_result_init(&r);
    for (a = base; a < base + 256 && !seen; a++) {
        assert_int_equal(repro_sym_module_lookup(m, a, 0, &r, &err), REPRO_OK);
        if (r.status == REPRO_SYM_FOUND && r.n_frames >= 2 && r.frames[0].function
            && strcmp(r.frames[0].function, "probe_inlined") == 0) {
            assert_true(r.frames[0].inlined);
            assert_string_equal(r.frames[1].function, "probe_outer");
            assert_int_equal(r.frames[1].line, (uint32_t)probe_call_line);
            assert_true(ends_with(r.frames[1].file, "test_symbolize.c"));
            assert_false(r.frames[1].inlined);
            seen = 1;
        }
    }
    assert_true(seen);
    repro_sym_session_free(s);
}

/* ---- invariants ---------------------------------------------------------- */

static void check_unit(const struct sym_unit *u)
{
    size_t i;
    assert_true(u->n_segs >= 1);
    assert_int_equal(u->segs[u->n_segs - 1].func, SYM_NONE);
    for (i = 1; i < u->n_segs; i++) {
        assert_true(u->segs[i - 1].lo < u->segs[i].lo);
        assert_true(u->segs[i - 1].func != u->segs[i].func);
    }
    for (i = 0; i < u->n_segs; i++)
        assert_true(u->segs[i].func == SYM_NONE || u->segs[i].func < u->n_funcs);
    assert_true(u->n_rows >= 1);
    assert_int_equal(u->rows[u->n_rows - 1].file, SYM_GAP);
    for (i = 1; i < u->n_rows; i++)
        assert_true(u->rows[i - 1].addr < u->rows[i].addr);
    for (i = 0; i < u->n_rows; i++)
        assert_true(u->rows[i].file == SYM_GAP || u->rows[i].file < u->n_files);
    for (i = 0; i < u->n_funcs; i++) {
        const struct sym_func *f = &u->funcs[i];
        size_t k, lo = 0, hi = u->n_segs;
        assert_true(f->parent == SYM_NONE || f->parent < i);
        if (f->parent != SYM_NONE)
            assert_true(f->inlined);
        if (f->low == 0)
            continue;
        /* no lost ranges: a function's first address is inside some function */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (u->segs[mid].lo <= f->low)
                lo = mid + 1;
            else
                hi = mid;
        }
        k = lo;
        assert_true(k > 0);
        assert_true(u->segs[k - 1].func != SYM_NONE);
    }
}

static void test_invariants(void **state)
{
    struct repro_sym_session *s;
    struct repro_sym_module *m = open_self(&s);
    struct repro_error err = {0};
    struct repro_sym_stats st;
    size_t i;

    (void)state;
    assert_int_equal(repro_sym_module_build_all(m, &err), REPRO_OK);
    repro_sym_module_stats(m, &st);
    assert_true(st.n_units > 10); /* this binary links all of repro_lib */
    assert_int_equal(st.n_units_built + st.n_units_failed, st.n_units);
    assert_int_equal(st.n_units_failed, 0);
    for (i = 1; i < m->n_sections; i++)
        assert_true(m->sections[i - 1].shndx < m->sections[i].shndx);
    for (i = 1; i < m->symtab_main.n; i++) {
        const struct sym_elfsym *a = &m->symtab_main.syms[i - 1], *b = &m->symtab_main.syms[i];
        assert_true(a->shndx < b->shndx || (a->shndx == b->shndx && (a->value < b->value
                    || (a->value == b->value && a->order < b->order))));
    }
    for (i = 0; i < m->n_uranges; i++) {
        assert_true(m->uranges[i].lo < m->uranges[i].hi);
        assert_true(m->uranges[i].unit < m->n_units);
        if (i > 0) {
            assert_true(m->uranges[i - 1].lo <= m->uranges[i].lo);
            assert_true(m->uranges[i].hi_max >= m->uranges[i - 1].hi_max);
        }
        assert_true(m->uranges[i].hi_max >= m->uranges[i].hi);
    }
    for (i = 0; i < m->n_units; i++)
        if (atomic_load(&m->units[i].state) == UNIT_BUILT)
            check_unit(&m->units[i]);
    repro_sym_session_free(s);
}

/* Building units in the background (several threads at once, lookups
 * waiting for or building what they need) answers as lazy building does. */
/* The two texts are byte for byte the same. */
static void expect_same_text(const struct repro_buf *a, const struct repro_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
}

static void test_background(void **state)
{
    struct repro_sym_session *sa, *sb, *sc;
    struct repro_sym_module *ma = open_self(&sa), *mb = open_self(&sb), *mc = open_self(&sc);
    struct repro_sym_result *ra = malloc(sizeof *ra), *rb = malloc(sizeof *rb);
    struct repro_buf ba, bb;
    struct repro_error err = {0};
    struct repro_sym_stats st;
    size_t i, k, n = 0;
    unsigned fl = REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE;

    (void)state;
    assert_non_null(ra);
    assert_non_null(rb);
    repro_buf_init(&ba, 1u << 28);
    repro_buf_init(&bb, 1u << 28);
    repro_sym_result_init(ra);
    repro_sym_result_init(rb);
    assert_int_equal(repro_sym_module_build_background(mb, &err), REPRO_OK);
    assert_int_equal(repro_sym_module_build_background(mb, &err), REPRO_OK); /* idempotent */
    for (k = 0; k < 4; k++)
        for (i = 0; i < ma->symtab_main.n; i += 1 + k) {
            const struct sym_elfsym *sy = &ma->symtab_main.syms[i];
            uint64_t addr = sy->value + (sy->size > 1 ? (sy->size * k) / 4 : 0);
            assert_int_equal(repro_sym_module_lookup(ma, addr, fl, ra, &err), REPRO_OK);
            assert_int_equal(repro_sym_module_lookup(mb, addr, fl, rb, &err), REPRO_OK);
            assert_int_equal(repro_sym_format_addr2line(&ba, ra, 0x3f & ~REPRO_A2L_PRETTY),
                             REPRO_OK);
            assert_int_equal(repro_sym_format_addr2line(&bb, rb, 0x3f & ~REPRO_A2L_PRETTY),
                             REPRO_OK);
            n++;
        }
    assert_true(n > 100);
    expect_same_text(&ba, &bb);
    assert_int_equal(repro_sym_module_build_all(mb, &err), REPRO_OK);
    repro_sym_module_stats(mb, &st);
    assert_int_equal(st.n_units_built + st.n_units_failed, st.n_units);
    assert_true(st.index_ns > 0);
    for (i = 0; i < mb->n_units; i++)
        if (atomic_load(&mb->units[i].state) == UNIT_BUILT)
            check_unit(&mb->units[i]);
    /* freed while the builders run: they are stopped and joined */
    assert_int_equal(repro_sym_module_build_background(mc, &err), REPRO_OK);
    repro_sym_session_free(sc);
    repro_buf_release(&ba);
    repro_buf_release(&bb);
    free(ra);
    free(rb);
    repro_sym_session_free(sa);
    repro_sym_session_free(sb);
}

/* lookup_each's emit: formats into a buffer, counts, fails on request */
struct emit_ctx {
    struct repro_buf *out;
    size_t n;
    size_t fail_at; /* 0: never */
    int failed;     /* formatting failed (out of memory) */
};

static int emit_fmt(void *ctx, const struct repro_sym_result *r)
{
    struct emit_ctx *e = ctx;
    if (e->fail_at != 0 && e->n == e->fail_at)
        return REPRO_E_LIMIT;
    e->n++;
    if (repro_sym_format_addr2line(e->out, r, REPRO_A2L_FUNCTIONS | REPRO_A2L_INLINES
                                                  | REPRO_A2L_DEMANGLE | REPRO_A2L_ADDRESSES)
        != REPRO_OK) {
        e->failed = 1;
        return REPRO_E_NOMEM;
    }
    return REPRO_OK;
}

/* repro_sym_module_lookup_each (lookups resolved on every core, finished
 * in order) answers exactly what one-by-one lookups answer, binutils
 * history included, over several batches on the same module; stops at the
 * first error emit returns; small batches and empty ones work. */
static void test_lookup_each(void **state)
{
    struct repro_sym_session *sa, *sb;
    struct repro_sym_module *ma = open_self(&sa), *mb = open_self(&sb);
    struct repro_sym_result *ra = malloc(sizeof *ra), *rb = malloc(sizeof *rb);
    struct repro_buf ba, bb;
    struct repro_error err = {0};
    struct emit_ctx ea = {&ba, 0, 0, 0}, eb = {&bb, 0, 0, 0};
    size_t n = 0, cap = 4 * ma->symtab_main.n + 64, i, k;
    uint64_t *addrs = malloc(cap * sizeof *addrs), x = 0x9e3779b97f4a7c15ull;
    unsigned flags[2] = {REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE, REPRO_SYM_DEMANGLE}, f;

    (void)state;
    assert_non_null(ra);
    assert_non_null(rb);
    assert_non_null(addrs);
    /* inside functions (start, middle, last byte), padding, outside
     * everything; shuffled so that the history depends on the order */
    for (i = 0; i < ma->symtab_main.n; i++) {
        const struct sym_elfsym *sy = &ma->symtab_main.syms[i];
        addrs[n++] = sy->value;
        addrs[n++] = sy->value + sy->size / 2;
        addrs[n++] = sy->value + sy->size;
    }
    addrs[n++] = 0;
    addrs[n++] = 1;
    addrs[n++] = UINT64_MAX;
    for (i = n - 1; i > 0; i--) {
        uint64_t t;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        k = (size_t)(x % (i + 1));
        t = addrs[i], addrs[i] = addrs[k], addrs[k] = t;
    }
    assert_true(n > 3 * 256); /* several chunks */
    for (f = 0; f < 2; f++) {
        repro_buf_init(&ba, 1u << 28);
        repro_buf_init(&bb, 1u << 28);
        repro_sym_result_init(ra);
        repro_sym_result_init(rb);
        /* two batches on the same modules: the second one finds the
         * workers waiting and the history of the first */
        for (k = 0; k < 2; k++) {
            for (i = 0; i < n; i++) {
                assert_int_equal(repro_sym_module_lookup(ma, addrs[i], flags[f], ra, &err),
                                 REPRO_OK);
                assert_int_equal(emit_fmt(&ea, ra), REPRO_OK);
            }
            assert_int_equal(repro_sym_module_lookup_each(mb, addrs, n, flags[f], rb, emit_fmt,
                                                          &eb, &err),
                             REPRO_OK);
            assert_int_equal(ea.n, eb.n);
            expect_same_text(&ba, &bb);
        }
        repro_buf_release(&ba);
        repro_buf_release(&bb);
        /* fresh modules for the other flags: the history is per module */
        repro_sym_session_free(sa);
        repro_sym_session_free(sb);
        ma = open_self(&sa);
        mb = open_self(&sb);
        repro_sym_result_init(ra); /* its symbol cache pointed into the old ones */
        repro_sym_result_init(rb);
        ea.n = eb.n = 0;
    }
    /* emit fails halfway (in the third chunk): nothing more is emitted */
    repro_buf_init(&bb, 1u << 28);
    eb.n = 0;
    eb.fail_at = n / 2 + 1;
    assert_int_equal(repro_sym_module_lookup_each(mb, addrs, n, flags[0], rb, emit_fmt, &eb, &err),
                     REPRO_E_LIMIT);
    assert_int_equal(eb.n, n / 2 + 1);
    /* small and empty batches (one by one on the calling thread) */
    eb.fail_at = 0;
    eb.n = 0;
    assert_int_equal(repro_sym_module_lookup_each(mb, addrs, 3, flags[0], rb, emit_fmt, &eb, &err),
                     REPRO_OK);
    assert_int_equal(eb.n, 3);
    assert_int_equal(repro_sym_module_lookup_each(mb, addrs, 0, flags[0], rb, emit_fmt, &eb, &err),
                     REPRO_OK);
    assert_int_equal(eb.n, 3);
    repro_buf_release(&bb);
    free(addrs);
    free(ra);
    free(rb);
    repro_sym_session_free(sa);
    repro_sym_session_free(sb);
}

/* The bucket index answers what a binary search answers: sorted keys with
 * duplicates, dense runs, far outliers (a span that forces wide buckets),
 * every key and its neighbours, below and above everything. */
static void test_bucket_index(void **state)
{
    uint64_t x = 0x243f6a8885a308d3ull;
    size_t shape;
    (void)state;
    for (shape = 0; shape < 6; shape++) {
        size_t n = shape == 0 ? 16 : 40 + shape * 977, i, j;
        uint64_t *keys = malloc(n * sizeof *keys), base = shape == 5 ? UINT64_MAX - (1u << 20) : 0x1000;
        struct sym_bkt b;
        assert_non_null(keys);
        for (i = 0; i < n; i++) {
            uint64_t step;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            step = shape == 1 ? x % 3 : shape == 2 ? 1 + x % 200 : (x % 64 == 0 ? 4096 : x % 16);
            base += step;
            keys[i] = base;
        }
        if (shape == 3) /* one far outlier */
            keys[n - 1] = keys[n - 2] + (1ull << 40);
        if (shape == 4) /* an outlier at the start too */
            keys[0] = 0;
        repro__bkt_build(&b, keys, n, sizeof *keys, 0);
        assert_non_null(b.first);
        assert_true(b.n <= 4 * n + 65);
        for (i = 0; i < n; i++)
            for (j = 0; j < 3; j++) {
                uint64_t a = keys[i] + j - 1, want = 0;
                size_t k;
                for (k = 0; k < n; k++)
                    want += keys[k] <= a;
                assert_int_equal(repro__bkt_count_u64(&b, keys, n, a), want);
            }
        assert_int_equal(repro__bkt_count_u64(&b, keys, n, UINT64_MAX), keys[n - 1] <= UINT64_MAX ? n : 0);
        if (keys[0] > 0)
            assert_int_equal(repro__bkt_count_u64(&b, keys, n, keys[0] - 1), 0);
        repro__bkt_free(&b);
        assert_null(b.first);
        free(keys);
    }
}

/* DW_FORM_implicit_const values of every size survive the 8-byte
 * attribute specs: small ones inline, the others (beyond int32, and
 * INT32_MIN, the marker) through the table's wide list. A hand-made
 * abbreviation table read through a minimal module. */
static void test_implicit_const(void **state)
{
    static const int64_t vals[] = {0, 1, -1, 41, INT32_MAX, INT32_MIN, (int64_t)INT32_MIN + 1,
                                   (int64_t)INT32_MAX + 1, 3000000000ll, -5000000000ll,
                                   INT64_MAX, INT64_MIN};
    uint8_t buf[512];
    size_t n = 0, k;
    struct repro_sym_module *m = calloc(1, sizeof *m);
    struct sym_unit *u = calloc(1, sizeof *u);
    struct repro_error err = {0};
    const struct dw_abbrev *ab;
    (void)state;
    assert_non_null(m);
    assert_non_null(u);
    /* code 1: DW_TAG_subprogram, no children, one implicit_const per value
     * (attribute names 0x2000 + k: user range), then a data1 attribute */
    buf[n++] = 1;
    buf[n++] = DW_TAG_subprogram;
    buf[n++] = 0;
    for (k = 0; k < sizeof vals / sizeof *vals; k++) {
        int64_t v = vals[k];
        int more = 1;
        unsigned name = 0x2000 + (unsigned)k;
        buf[n++] = (uint8_t)(0x80 | (name & 0x7f));
        buf[n++] = (uint8_t)(name >> 7);
        buf[n++] = DW_FORM_implicit_const;
        while (more) { /* sleb128 */
            uint8_t byte = (uint8_t)(v & 0x7f);
            v >>= 7; /* arithmetic shift (gcc, clang) */
            if ((v == 0 && !(byte & 0x40)) || (v == -1 && (byte & 0x40)))
                more = 0;
            else
                byte |= 0x80;
            buf[n++] = byte;
        }
    }
    buf[n++] = DW_AT_decl_line;
    buf[n++] = DW_FORM_data1;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = 0; /* end of table */
    assert_true(n < sizeof buf);
    m->dw.abbrev.data = buf;
    m->dw.abbrev.len = n;
    u->version = 5;
    u->addr_size = 8;
    u->offset_size = 4;
    assert_int_equal(repro__unit_abbrevs(m, u, &err), REPRO_OK);
    ab = repro__abbrev_find(u->abbrevs, 1);
    assert_non_null(ab);
    assert_int_equal(ab->n_attrs, sizeof vals / sizeof *vals + 1);
    assert_int_equal(ab->fixed_size, 1); /* the implicit ones take no bytes */
    for (k = 0; k < sizeof vals / sizeof *vals; k++) {
        uint8_t none = 0;
        struct dw_cur c = {&none, &none + 1, 0};
        struct dw_attr a;
        repro__attr_read(m, u, &ab->attrs[k], &c, &a);
        assert_int_equal(a.name, 0x2000 + k);
        assert_true(a.is_int);
        assert_int_equal((int64_t)a.u, vals[k]);
        assert_ptr_equal(c.p, &none); /* nothing consumed */
    }
    repro__abbrevs_free(u->abbrevs);
    free(u);
    free(m);
}

/* ---- a small program built at test time ----------------------------------- */

static const char *tiny_src =
    "#include <stdlib.h>\n"
    "static inline int sq(int x) { return x * x; }\n"
    "static inline int sum(int n) { int s = 0; for (int i = 0; i < n; i++) s += sq(i); return s; }\n"
    "__attribute__((noinline)) int work(int n) { return n > 3 ? sum(n) : sq(n); }\n"
    "int main(int c, char **v) { return work(c > 1 ? atoi(v[1]) : c); }\n";

static char tiny_path[512];

/* one temporary directory for the whole run (test_tmpdir() makes a new one
 * per call) */
static const char *tmp(void)
{
    static char dir[256];
    if (dir[0] == '\0')
        snprintf(dir, sizeof dir, "%s", test_tmpdir());
    return dir;
}

static int build_tiny(void)
{
    char src[512], cmd[1400];
    FILE *f;
    if (tiny_path[0])
        return 1;
    snprintf(src, sizeof src, "%s/tiny.c", tmp());
    f = fopen(src, "w");
    if (f == NULL)
        return 0;
    fputs(tiny_src, f);
    fclose(f);
    snprintf(tiny_path, sizeof tiny_path, "%s/tiny", tmp());
    snprintf(cmd, sizeof cmd, "cc -O2 -g -o '%s' '%s' 2>/dev/null", tiny_path, src);
    if (system(cmd) != 0) {
        tiny_path[0] = '\0';
        return 0;
    }
    return 1;
}

static int write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0 && write(fd, p, n) == (ssize_t)n;
    if (fd >= 0)
        close(fd);
    return ok;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    struct stat st;
    uint8_t *p;
    int fd = open(path, O_RDONLY);
    *n = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    p = malloc((size_t)st.st_size + 1);
    if (p != NULL && read(fd, p, (size_t)st.st_size) != st.st_size) {
        free(p);
        p = NULL;
    }
    close(fd);
    *n = (size_t)st.st_size;
    return p;
}

/* open, build everything, look up a spread of addresses; returns the open
 * result (anything but a crash or a leak is acceptable for damaged input) */
static int exercise(const char *path, unsigned flags)
{
    struct repro_sym_session *s = NULL;
    struct repro_sym_module *m = NULL;
    struct repro_error err = {0};
    struct repro_sym_result r;
    int rc = repro_sym_session_new(&s, NULL, &err);
    uint64_t a;
    if (rc != REPRO_OK)
        return rc;
    rc = repro_sym_session_open(s, path, &m, &err);
    if (rc == REPRO_OK) {
        struct repro_buf b;
        repro_buf_init(&b, 1 << 20);
        repro_sym_result_init(&r);
        /* a batch first (units built by the workers and the resolvers,
         * allocation failures there included), then everything */
        {
            uint64_t addrs[0x3000 / 7 + 1];
            struct emit_ctx ec = {&b, 0, 0, 0};
            size_t n = 0;
            for (a = 0; a < 0x3000; a += 7)
                addrs[n++] = a;
            rc = repro_sym_module_lookup_each(m, addrs, n, flags, &r, emit_fmt, &ec, &err);
            if (ec.failed)
                repro_error_set(&err, rc, "formatting failed");
            repro_buf_reset(&b);
        }
        if (rc == REPRO_OK)
            rc = repro_sym_module_build_all(m, &err);
        for (a = 0; a < 0x3000 && rc == REPRO_OK; a += 7) {
            rc = repro_sym_module_lookup(m, a, flags, &r, &err);
            if (rc == REPRO_OK) {
                rc = repro_sym_format_addr2line(&b, &r, REPRO_A2L_FUNCTIONS | REPRO_A2L_INLINES
                                                            | REPRO_A2L_DEMANGLE);
                if (rc != REPRO_OK)
                    repro_error_set(&err, rc, "formatting failed");
            }
            repro_buf_reset(&b);
        }
        repro_buf_release(&b);
    }
    repro_sym_session_free(s);
    /* every failure says what failed */
    if (rc != REPRO_OK && (err.code == 0 || err.msg[0] == '\0')) {
        repro_alloc_fail_after(0);
        fail_msg("error %d without a message", rc);
    }
    return rc;
}

static void test_bad_files(void **state)
{
    struct repro_sym_session *s;
    struct repro_sym_module *m = NULL;
    struct repro_error err = {0};
    char path[600];
    uint8_t garbage[4096];
    size_t i;

    (void)state;
    assert_int_equal(repro_sym_session_new(&s, NULL, &err), REPRO_OK);
    assert_int_equal(repro_sym_session_open(s, "/nonexistent/x", &m, &err), REPRO_E_NOTFOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/x"));
    repro_error_clear(&err);
    assert_int_equal(repro_sym_session_open(s, tmp(), &m, &err), REPRO_E_IO);
    repro_error_clear(&err);
    snprintf(path, sizeof path, "%s/empty", tmp());
    assert_true(write_file(path, "", 0));
    assert_int_equal(repro_sym_session_open(s, path, &m, &err), REPRO_E_MALFORMED);
    assert_non_null(strstr(err.msg, "not an ELF file"));
    repro_error_clear(&err);
    for (i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(i * 131 + 7);
    snprintf(path, sizeof path, "%s/garbage", tmp());
    assert_true(write_file(path, garbage, sizeof garbage));
    assert_int_equal(repro_sym_session_open(s, path, &m, &err), REPRO_E_MALFORMED);
    repro_sym_session_free(s);
}

static void test_truncated_and_damaged(void **state)
{
    char path[600], cmd[1400];
    uint8_t *img;
    size_t n = 0, cut;
    unsigned seed;

    (void)state;
    if (!build_tiny())
        tu_skip("cc cannot build the test program");
    assert_int_equal(exercise(tiny_path, REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE), REPRO_OK);
    img = read_all(tiny_path, &n);
    assert_non_null(img);
    snprintf(path, sizeof path, "%s/damaged", tmp());
    /* every truncation on a coarse grid, then random damage */
    for (cut = 0; cut < n; cut += n / 97 + 1) {
        assert_true(write_file(path, img, cut));
        (void)exercise(path, REPRO_SYM_BINUTILS);
    }
    /* A cut file is refused as binutils refuses it ("file format not
     * recognized", bfd's elf_object_p): its section header table is at the
     * end, so any cut leaves it incomplete. It used to open and answer ??. */
    {
        const size_t cuts[] = {0, 16, 64, 100, 1000, n / 2, n - 64, n - 1};
        size_t k;
        for (k = 0; k < sizeof cuts / sizeof *cuts; k++) {
            struct repro_sym_session *s;
            struct repro_sym_module *m = NULL;
            struct repro_error err = {0};
            assert_true(write_file(path, img, cuts[k]));
            assert_int_equal(repro_sym_session_new(&s, NULL, &err), REPRO_OK);
            if (repro_sym_session_open(s, path, &m, &err) != REPRO_E_MALFORMED)
                fail_msg("a copy cut at %zu of %zu bytes was not refused", cuts[k], n);
            assert_non_null(strstr(err.msg, path));
            if (cuts[k] >= 64 && strstr(err.msg, "file format not recognized: the ") == NULL)
                fail_msg("cut at %zu: %s", cuts[k], err.msg);
            repro_sym_session_free(s);
        }
    }
    for (seed = 1; seed <= 150; seed++) {
        uint8_t *d = malloc(n);
        unsigned k, x = seed * 2654435761u;
        assert_non_null(d);
        memcpy(d, img, n);
        for (k = 0; k < 1 + seed % 40; k++) {
            x = x * 1103515245u + 12345u;
            /* the headers are at the start: hit the DWARF more often */
            d[(n / 3) + x % (n - n / 3)] ^= (uint8_t)(x >> 16 | 1);
        }
        assert_true(write_file(path, d, n));
        (void)exercise(path, REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE);
        free(d);
    }
    free(img);
    /* a stripped copy: no DWARF, no symbols; lookups answer "not found" */
    snprintf(cmd, sizeof cmd, "strip -o '%s/stripped' '%s' 2>/dev/null", tmp(), tiny_path);
    if (tu_require(system(cmd) == 0, "strip")) {
        struct repro_sym_session *s;
        struct repro_sym_module *m = NULL;
        struct repro_error err = {0};
        struct repro_sym_options o = {0};
        o.no_default_debug_dir = 1;
        o.no_dwfl_fallback = 1;
        snprintf(path, sizeof path, "%s/stripped", tmp());
        assert_int_equal(repro_sym_session_new(&s, &o, &err), REPRO_OK);
        if (repro_sym_session_open(s, path, &m, &err) != REPRO_OK)
            fail_msg("open stripped: %s", err.msg);
        assert_false(repro_sym_module_has_dwarf(m));
        assert_null(repro_sym_module_debug_path(m));
        repro_sym_session_free(s);
    }
}

/* A GNU .zdebug_ payload: "ZLIB", the size (big-endian 64-bit), a zlib
 * stream of one stored block of n zero bytes. Returns its length. */
static size_t zdebug_zeros(uint8_t *out, unsigned n)
{
    size_t k = 0, i;
    uint32_t a = 1, b = 0;
    memcpy(out, "ZLIB", 4);
    k = 4;
    for (i = 0; i < 8; i++)
        out[k++] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    out[k++] = 0x78;
    out[k++] = 0x01;
    out[k++] = 0x01; /* final stored block */
    out[k++] = (uint8_t)n;
    out[k++] = (uint8_t)(n >> 8);
    out[k++] = (uint8_t)~n;
    out[k++] = (uint8_t)(~n >> 8);
    for (i = 0; i < n; i++) {
        out[k++] = 0;
        a = (a + 0) % 65521;
        b = (b + a) % 65521;
    }
    out[k++] = (uint8_t)(b >> 8);
    out[k++] = (uint8_t)b;
    out[k++] = (uint8_t)(a >> 8);
    out[k++] = (uint8_t)a;
    return k;
}

/* More compressed DWARF sections than the open inflates itself (16): the
 * rest go to libelf, nothing is written past the job table (the table is
 * the module's last member: AddressSanitizer would see it), and the answers
 * equal those of the file without the extra sections. */
static void test_many_compressed_sections(void **state)
{
    char cmd[8192], blob[600], path[600];
    uint8_t payload[128];
    size_t len = zdebug_zeros(payload, 64), k;
    int i;
    (void)state;
    if (!build_tiny())
        tu_skip("cc cannot build the test program");
    snprintf(blob, sizeof blob, "%s/zeros.zdebug", tmp());
    assert_true(write_file(blob, payload, len));
    snprintf(path, sizeof path, "%s/manyz", tmp());
    /* objcopy refuses to add two sections of one name (ELF does not mind):
     * add .x0 ... .x19, then rename them all to .zdebug_ranges */
    k = (size_t)snprintf(cmd, sizeof cmd, "objcopy --compress-debug-sections=zlib-gabi");
    for (i = 0; i < 20; i++)
        k += (size_t)snprintf(cmd + k, sizeof cmd - k, " --add-section .x%d='%s'", i, blob);
    snprintf(cmd + k, sizeof cmd - k, " '%s' '%s.tmp' 2>/dev/null", tiny_path, path);
    if (system(cmd) != 0)
        tu_skip("objcopy failed or is missing");
    k = (size_t)snprintf(cmd, sizeof cmd, "objcopy");
    for (i = 0; i < 20; i++)
        k += (size_t)snprintf(cmd + k, sizeof cmd - k, " --rename-section .x%d=.zdebug_ranges", i);
    snprintf(cmd + k, sizeof cmd - k, " '%s.tmp' '%s' 2>/dev/null", path, path);
    assert_int_equal(system(cmd), 0);
    {
        struct repro_sym_session *s1, *s2;
        struct repro_sym_module *m1 = NULL, *m2 = NULL;
        struct repro_error err = {0};
        struct repro_sym_options o = {0};
        struct repro_sym_result *r = malloc(sizeof *r);
        struct repro_buf b1, b2;
        uint64_t a;
        assert_non_null(r);
        o.no_default_debug_dir = 1;
        o.no_dwfl_fallback = 1;
        assert_int_equal(repro_sym_session_new(&s1, &o, &err), REPRO_OK);
        assert_int_equal(repro_sym_session_new(&s2, &o, &err), REPRO_OK);
        assert_int_equal(repro_sym_session_open(s1, tiny_path, &m1, &err), REPRO_OK);
        if (repro_sym_session_open(s2, path, &m2, &err) != REPRO_OK)
            fail_msg("open %s: %s", path, err.msg);
        assert_true(repro_sym_module_has_dwarf(m2));
        repro_buf_init(&b1, 1u << 24);
        repro_buf_init(&b2, 1u << 24);
        for (k = 0; k < 2; k++) {
            repro_sym_result_init(r);
            for (a = 0; a < 0x3000; a += 5) {
                assert_int_equal(repro_sym_module_lookup(k ? m2 : m1, a, REPRO_SYM_BINUTILS, r, &err),
                                 REPRO_OK);
                assert_int_equal(repro_sym_format_addr2line(k ? &b2 : &b1, r,
                                                            0x3f & ~REPRO_A2L_PRETTY),
                                 REPRO_OK);
            }
        }
        expect_same_text(&b1, &b2);
        repro_buf_release(&b1);
        repro_buf_release(&b2);
        free(r);
        repro_sym_session_free(s1);
        repro_sym_session_free(s2);
    }
}

static void test_alloc_failures(void **state)
{
    unsigned long n;
    int rc = REPRO_E_NOMEM;

    (void)state;
    if (!build_tiny())
        tu_skip("cc cannot build the test program");
    for (n = 1; n < 100000 && rc != REPRO_OK; n++) {
        repro_alloc_fail_after(n);
        rc = exercise(tiny_path, REPRO_SYM_BINUTILS | REPRO_SYM_DEMANGLE);
        repro_alloc_fail_after(0);
        assert_true(rc == REPRO_OK || rc == REPRO_E_NOMEM);
    }
    assert_int_equal(rc, REPRO_OK);
    print_message("%lu allocation failure points, each a clean REPRO_E_NOMEM\n", n - 1);
    assert_true(n > 10);
}

/* ---- output format ------------------------------------------------------- */

static void test_format(void **state)
{
    struct repro_sym_result r;
    struct repro_buf b;
    (void)state;
    repro_buf_init(&b, 1 << 16);
    repro_sym_result_init(&r);
    r.addr = 0x1234;
    r.status = REPRO_SYM_NOT_FOUND;
    assert_int_equal(repro_sym_format_addr2line(&b, &r, REPRO_A2L_ADDRESSES | REPRO_A2L_FUNCTIONS),
                     REPRO_OK);
    assert_int_equal(b.len, strlen("0x0000000000001234\n??\n??:0\n"));
    assert_memory_equal(b.data, "0x0000000000001234\n??\n??:0\n", b.len);
    repro_buf_reset(&b);
    r.status = REPRO_SYM_FOUND;
    r.n_frames = 2;
    r.frames[0].function = "_Z3fooi";
    r.frames[0].demangled = "foo(int)";
    r.frames[0].file = "/src/a.h";
    r.frames[0].line = 7;
    r.frames[0].discriminator = 2;
    r.frames[0].inlined = 1;
    r.frames[1].function = "main";
    r.frames[1].demangled = "main";
    r.frames[1].file = "/src/m.c";
    r.frames[1].line = 0;
    assert_int_equal(repro_sym_format_addr2line(&b, &r, REPRO_A2L_FUNCTIONS | REPRO_A2L_INLINES
                                                            | REPRO_A2L_PRETTY | REPRO_A2L_DEMANGLE
                                                            | REPRO_A2L_BASENAMES), REPRO_OK);
    assert_memory_equal(b.data, "foo(int) at a.h:7 (discriminator 2)\n (inlined by) main at m.c:?\n",
                        b.len);
    repro_buf_release(&b);
    {
        char *d = repro_sym_demangle("_Z3maxIiET_S0_S0_");
        assert_non_null(d);
        assert_string_equal(d, "int max<int>(int, int)");
        repro_free(d);
        d = repro_sym_demangle("_ZN3geo6CircleD0Ev");
        assert_non_null(d);
        assert_string_equal(d, "geo::Circle::~Circle()");
        repro_free(d);
        d = repro_sym_demangle("_Z3barv@@V2");
        assert_non_null(d);
        assert_string_equal(d, "bar()@@V2");
        repro_free(d);
        assert_null(repro_sym_demangle("main"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_lookup),
        cmocka_unit_test(test_self_inline_chain),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_lookup_each),
        cmocka_unit_test(test_bucket_index),
        cmocka_unit_test(test_implicit_const),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_truncated_and_damaged),
        cmocka_unit_test(test_many_compressed_sections),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_format),
    };
    return tu_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
