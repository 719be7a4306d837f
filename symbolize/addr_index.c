/*
 * The per-module address index and its lookup: address → ALLOC section →
 * unit (unit map) → the unit's function segment and line row → the inline
 * chain, with binutils' symbol-table fallback for the function name. Units
 * are built on the first address that falls into them (line table first:
 * call_file names come from it), or ahead of need by background threads
 * (repro_sym_module_build_background); a thread claims a unit with a
 * compare-and-swap (NEW → BUILDING), builds it without a lock and publishes
 * it with a release store; lookups read built units without locks and wait
 * for a unit another thread is building.
 *
 * The decisions follow binutils 2.40 _bfd_dwarf2_find_nearest_line(),
 * _bfd_elf_find_nearest_line() and addr2line's translate_addresses(), so
 * that repro addr2line prints what addr2line prints:
 *  - an address outside every SHF_ALLOC section of the file is not found;
 *  - the first unit whose range holds the address and that knows a line or a
 *    function for it answers;
 *  - a DWARF function with a linkage name (or a DW_AT_name in C) names
 *    frame 0; otherwise the ELF symbol binutils would pick does, and its
 *    STT_FILE stands in for a missing file name;
 *  - nothing from DWARF: the symbol tables (debug file's, then the file's).
 */
#include "sym_internal.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

void repro_sym_result_init(struct repro_sym_result *r)
{
    memset(r, 0, sizeof *r);
}

/* Wakes the threads waiting in unit_wait() (u just left UNIT_BUILDING,
 * stored seq_cst: either a waiter is counted here or it sees the state). */
static void unit_notify(struct repro_sym_module *m)
{
    if (atomic_load(&m->n_waiters) == 0)
        return;
    pthread_mutex_lock(&m->ulock);
    pthread_cond_broadcast(&m->ucond);
    pthread_mutex_unlock(&m->ulock);
}

/* Waits while another thread builds u. */
static void unit_wait(struct repro_sym_module *m, struct sym_unit *u)
{
    pthread_mutex_lock(&m->ulock);
    atomic_fetch_add(&m->n_waiters, 1);
    while (atomic_load(&u->state) == UNIT_BUILDING)
        pthread_cond_wait(&m->ucond, &m->ulock);
    atomic_fetch_sub(&m->n_waiters, 1);
    pthread_mutex_unlock(&m->ulock);
}

/* Builds u if it is UNIT_NEW and this thread claims it (NEW → BUILDING);
 * returns at once otherwise (the caller looks at the state again). Units
 * are built concurrently: building one writes only that unit (and reads
 * other units' DIEs through repro__unit_read_die, which is thread-safe). */
static int unit_build(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    struct repro_error e2 = {0};
    uint64_t t0, t1;
    int rc, st = UNIT_NEW;

    if (!atomic_compare_exchange_strong_explicit(&u->state, &st, UNIT_BUILDING,
                                                 memory_order_acquire, memory_order_acquire))
        return REPRO_OK;
    t0 = repro_mono_ns();
    rc = repro__unit_read_die(m, u, &e2);
    if (rc == REPRO_OK)
        rc = repro__line_build(m, u, &e2);
    if (rc == REPRO_E_MALFORMED) {
        /* the functions can still be named without the lines */
        repro_log(REPRO_LOG_WARN, "symbolize", "malformed DWARF in '%s': unit at "
                  ".debug_info+0x%llx: %s", m->debug_path, (unsigned long long)u->off, e2.msg);
        repro_error_clear(&e2);
        repro_free(u->files);
        u->files = NULL;
        u->n_files = 0;
        u->has_stmt_list = 0;
        /* (u's DIE is read or known bad by now: nothing writes it any more) */
        rc = u->abbrevs != NULL ? repro__line_build(m, u, &e2) : REPRO_E_MALFORMED;
    }
    if (rc == REPRO_OK)
        rc = repro__funcs_build(m, u, &e2);
    if (rc == REPRO_OK) {
        size_t k;
        u->ext_lo = UINT64_MAX;
        u->ext_hi = 0;
        for (k = 0; k + 1 < u->n_segs; k++)
            if (u->segs[k].func != SYM_NONE) {
                u->ext_lo = u->segs[k].lo < u->ext_lo ? u->segs[k].lo : u->ext_lo;
                u->ext_hi = u->segs[k + 1].lo > u->ext_hi ? u->segs[k + 1].lo : u->ext_hi;
            }
        for (k = 0; k + 1 < u->n_rows; k++)
            if (u->rows[k].file != SYM_GAP) {
                u->ext_lo = u->rows[k].addr < u->ext_lo ? u->rows[k].addr : u->ext_lo;
                u->ext_hi = u->rows[k + 1].addr > u->ext_hi ? u->rows[k + 1].addr : u->ext_hi;
            }
        /* (no memory for these: plain binary searches) */
        repro__bkt_build(&u->seg_bkt, u->segs, u->n_segs, sizeof *u->segs,
                         offsetof(struct sym_seg, lo));
        repro__bkt_build(&u->row_bkt, u->rows, u->n_rows, sizeof *u->rows,
                         offsetof(struct sym_row, addr));
    }
    t1 = repro_mono_ns();
    atomic_fetch_add(&m->units_ns, t1 - t0);
    if (rc == REPRO_OK) {
        size_t bytes = u->n_funcs * sizeof *u->funcs + u->n_segs * sizeof *u->segs
                       + u->n_rows * sizeof *u->rows
                       + ((size_t)u->seg_bkt.n + u->row_bkt.n) * sizeof(uint32_t);
        atomic_fetch_add(&m->n_funcs, u->n_funcs);
        atomic_fetch_add(&m->n_segs, u->n_segs);
        atomic_fetch_add(&m->n_rows, u->n_rows);
        atomic_fetch_add(&m->bytes, bytes);
        atomic_store(&u->state, UNIT_BUILT);
        if (atomic_fetch_add(&m->n_built, 1) + 1 + atomic_load(&m->n_failed) == m->n_units)
            atomic_store(&m->index_ns, t1 - m->open_t0);
    } else if (rc == REPRO_E_MALFORMED || rc == REPRO_E_LIMIT) {
        repro_log(REPRO_LOG_WARN, "symbolize", "malformed DWARF in '%s': unit at "
                  ".debug_info+0x%llx skipped: %s", m->debug_path, (unsigned long long)u->off,
                  e2.msg);
        repro__unit_release(u);
        atomic_store(&u->state, UNIT_FAILED);
        if (atomic_fetch_add(&m->n_failed, 1) + 1 + atomic_load(&m->n_built) == m->n_units)
            atomic_store(&m->index_ns, t1 - m->open_t0);
        rc = REPRO_OK;
    } else {
        repro__unit_release(u); /* out of memory: retried next time */
        atomic_store(&u->state, UNIT_NEW);
        repro_error_set(err, rc, "%s", e2.msg);
    }
    unit_notify(m);
    return rc;
}

/* Makes u built or failed (building it here, or waiting for the thread
 * that builds it): REPRO_OK when built, REPRO_E_NOTFOUND when failed,
 * REPRO_E_NOMEM. */
static int ensure_built(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    for (;;) {
        int st = atomic_load_explicit(&u->state, memory_order_acquire), rc;
        switch (st) {
        case UNIT_BUILT:
            return REPRO_OK;
        case UNIT_FAILED:
            return REPRO_E_NOTFOUND;
        case UNIT_BUILDING:
            unit_wait(m, u);
            break;
        default:
            rc = unit_build(m, u, err);
            if (rc != REPRO_OK)
                return rc;
            break;
        }
    }
}

int repro_sym_module_build_all(struct repro_sym_module *m, struct repro_error *err)
{
    size_t i;
    /* share the in-order claims with the workers (waiting on a unit one of
     * them builds would serialize the two), then wait for what they hold */
    while ((i = atomic_fetch_add(&m->bg_next, 1)) < m->n_units) {
        int rc = unit_build(m, &m->units[i], err);
        if (rc != REPRO_OK)
            return rc;
    }
    for (i = 0; i < m->n_units; i++) {
        int rc = ensure_built(m, &m->units[i], err);
        if (rc != REPRO_OK && rc != REPRO_E_NOTFOUND)
            return rc;
    }
    return REPRO_OK;
}

void repro_sym_module_stats(const struct repro_sym_module *m, struct repro_sym_stats *st)
{
    memset(st, 0, sizeof *st);
    st->open_ns = m->open_ns;
    st->units_ns = atomic_load(&m->units_ns);
    st->index_ns = atomic_load(&m->index_ns);
    st->n_units = m->n_units;
    st->n_units_built = atomic_load(&m->n_built);
    st->n_units_failed = atomic_load(&m->n_failed);
    st->n_symbols = m->symtab_main.n + m->symtab_dbg.n;
    st->n_functions = atomic_load(&m->n_funcs);
    st->n_segments = atomic_load(&m->n_segs);
    st->n_rows = atomic_load(&m->n_rows);
    st->bytes = atomic_load(&m->bytes) + m->n_units * sizeof *m->units
                + m->n_uranges * sizeof *m->uranges
                + st->n_symbols * sizeof(struct sym_elfsym);
}

/* Number of elements with key <= addr in an array sorted by key (so the
 * last such element is out - 1). Branchless: the halving step compiles to
 * a conditional move, so a search costs its loads and no mispredicted
 * branches (random addresses make every branch of a plain binary search a
 * coin toss). */
#define UPPER_LE(arr, n, field, addr, out)                                  \
    do {                                                                    \
        size_t n_ = (n), b_ = 0;                                            \
        if (n_ == 0) {                                                      \
            (out) = 0;                                                      \
            break;                                                          \
        }                                                                   \
        while (n_ > 1) {                                                    \
            size_t half_ = n_ / 2;                                          \
            b_ = (arr)[b_ + half_].field <= (addr) ? b_ + half_ : b_;       \
            n_ -= half_;                                                    \
        }                                                                   \
        (out) = b_ + ((arr)[b_].field <= (addr));                           \
    } while (0)

/* ---- bucket indexes ------------------------------------------------------ */

#define BKT_KEY(arr, stride, off, k) (*(const uint64_t *)((const char *)(arr) + (k) * (stride) + (off)))

void repro__bkt_build(struct sym_bkt *b, const void *arr, size_t n, size_t stride, size_t off)
{
    uint64_t lo, span;
    size_t nb, i, k = 0;
    unsigned shift = 6; /* 64-byte buckets: a few rows of code each */

    memset(b, 0, sizeof *b);
    /* small: a binary search over a few cache lines is as good; the
     * bucket count (<= 4n + 65) must fit in 32 bits */
    if (n < 16 || n > (UINT32_MAX - 65) / 4)
        return;
    lo = BKT_KEY(arr, stride, off, 0);
    span = BKT_KEY(arr, stride, off, n - 1) - lo;
    /* at most about four buckets per element, whatever the spread */
    while (shift < 63 && (span >> shift) >= 4 * (uint64_t)n + 64)
        shift++;
    nb = (size_t)(span >> shift) + 1;
    b->first = repro_malloc(nb * sizeof *b->first);
    if (b->first == NULL)
        return;
    for (i = 0; i < nb; i++) {
        uint64_t start = lo + ((uint64_t)i << shift);
        while (k < n && BKT_KEY(arr, stride, off, k) < start)
            k++;
        b->first[i] = (uint32_t)k;
    }
    b->base = lo;
    b->n = (uint32_t)nb;
    b->shift = (uint8_t)shift;
}

void repro__bkt_free(struct sym_bkt *b)
{
    repro_free(b->first);
    memset(b, 0, sizeof *b);
}

/* The bucket entry of addr (the first element at or after its bucket's
 * start), or NULL when b has no index or addr lies outside its span. */
static inline const uint32_t *bkt_entry(const struct sym_bkt *b, uint64_t addr)
{
    uint64_t i;
    if (b->first == NULL || addr < b->base)
        return NULL;
    i = (addr - b->base) >> b->shift;
    return i < b->n ? &b->first[i] : NULL;
}

/* Number of elements with key <= addr (as UPPER_LE), through b: only the
 * elements between addr's bucket entry and the next one are searched. */
#define BKT_UPPER_LE(bk, arr, cnt, field, addr, out)                                 \
    do {                                                                          \
        size_t lo2_ = 0, n2_ = (cnt), r2_;                                        \
        if ((bk)->first != NULL) {                                                \
            const uint32_t *e_ = bkt_entry((bk), (addr));                         \
            if (e_ != NULL) {                                                     \
                lo2_ = *e_;                                                       \
                n2_ = (e_ + 1 < (bk)->first + (bk)->n ? e_[1] : (cnt)) - lo2_;    \
            } else {                                                              \
                lo2_ = (addr) < (bk)->base ? 0 : (cnt); /* below or above all */  \
                n2_ = 0;                                                          \
            }                                                                     \
        }                                                                         \
        UPPER_LE((arr) + lo2_, n2_, field, addr, r2_);                            \
        (out) = lo2_ + r2_;                                                       \
    } while (0)

size_t repro__bkt_count_u64(const struct sym_bkt *b, const uint64_t *keys, size_t n,
                            uint64_t addr)
{
    struct key1 {
        uint64_t k;
    };
    const struct key1 *arr = (const struct key1 *)keys;
    size_t out;
    BKT_UPPER_LE(b, arr, n, k, addr, out);
    return out;
}

struct hit {
    const struct sym_unit *u;
    const struct sym_func *f;
    const struct sym_row *row;
};

/* Looks addr up in one built unit. */
static void unit_lookup(const struct sym_unit *u, uint64_t addr, struct hit *h)
{
    size_t k;
    h->u = u;
    h->f = NULL;
    h->row = NULL;
    BKT_UPPER_LE(&u->seg_bkt, u->segs, u->n_segs, lo, addr, k);
    if (k > 0 && u->segs[k - 1].func != SYM_NONE)
        h->f = &u->funcs[u->segs[k - 1].func];
    BKT_UPPER_LE(&u->row_bkt, u->rows, u->n_rows, addr, addr, k);
    if (k > 0 && u->rows[k - 1].file != SYM_GAP)
        h->row = &u->rows[k - 1];
}

/* What a lookup finds without looking at (or changing) the binutils
 * history: the section, the unit/function/row hit, and the units visited
 * (binutils has decoded them once this lookup happened). Computed by
 * resolve() on any thread; finish() applies it in input order. */
#define PRE_TOUCH 4
struct sym_pre {
    uint64_t addr;
    const struct sym_section *sec;
    struct hit h;
    uint32_t touched[PRE_TOUCH];
    uint8_t n_touched;
    uint8_t overflow; /* visited more units than touched[] holds */
    int rc;           /* REPRO_OK or the error of building a unit */
    /* h.row's fields, copied where the row is hot (the resolving thread),
     * so that finishing touches neither the row nor the unit's file table */
    const char *file;
    uint32_t line, column, discriminator;
};

static void take_row(struct sym_pre *p)
{
    const struct sym_row *row = p->h.row;
    if (row == NULL)
        return;
    p->file = p->h.u->files[row->file];
    p->line = row->line;
    p->column = row->column;
    p->discriminator = row->discriminator;
}

/* The unit map part of a DWARF lookup: the first unit whose range holds
 * addr and that knows a line or a function for it. With mark, the visited
 * units are marked decoded now; without, they are recorded in p. */
static int dwarf_find(struct repro_sym_module *m, unsigned flags, struct sym_pre *p, int mark,
                      struct repro_error *err)
{
    uint64_t addr = p->addr;
    size_t lo, i;
    /* first range whose running maximum end lies above addr */
    BKT_UPPER_LE(&m->urange_bkt, m->uranges, m->n_uranges, hi_max, addr, lo);
    for (i = lo; i < m->n_uranges && m->uranges[i].lo <= addr; i++) {
        struct sym_unit *u;
        int rc;
        if (addr >= m->uranges[i].hi)
            continue;
        u = &m->units[m->uranges[i].unit];
        rc = ensure_built(m, u, err);
        if (rc == REPRO_E_NOTFOUND)
            continue;
        if (rc != REPRO_OK)
            return rc;
        if (!(flags & REPRO_SYM_BINUTILS))
            ;
        else if (mark) {
            if (!atomic_load_explicit(&u->bu_touched, memory_order_relaxed))
                atomic_store_explicit(&u->bu_touched, 1, memory_order_relaxed);
        }
        else if (p->n_touched < PRE_TOUCH)
            p->touched[p->n_touched++] = m->uranges[i].unit;
        else
            p->overflow = 1;
        unit_lookup(u, addr, &p->h);
        if (p->h.f != NULL || p->h.row != NULL)
            return REPRO_OK;
    }
    memset(&p->h, 0, sizeof p->h);
    return REPRO_OK;
}

/* binutils also finds a unit it has decoded through its line sequences and
 * function ranges (padding between functions): depends on the history. */
static void dwarf_find_decoded(struct repro_sym_module *m, uint64_t addr, struct hit *h)
{
    size_t i;
    for (i = 0; i < m->n_units; i++) {
        struct sym_unit *u = &m->units[i];
        if (!atomic_load_explicit(&u->bu_touched, memory_order_relaxed)
            || atomic_load_explicit(&u->state, memory_order_acquire) != UNIT_BUILT
            || addr < u->ext_lo || addr >= u->ext_hi)
            continue;
        unit_lookup(u, addr, h);
        if (h->f != NULL || h->row != NULL)
            return;
    }
    memset(h, 0, sizeof *h);
}

/* Fills p for addr without touching the binutils history unless mark. */
static int resolve(struct repro_sym_module *m, uint64_t addr, unsigned flags, struct sym_pre *p,
                   int mark, struct repro_error *err)
{
    size_t i;
    memset(p, 0, sizeof *p);
    p->addr = addr;
    for (i = 0; i < m->n_sections; i++)
        if (addr >= m->sections[i].addr && addr - m->sections[i].addr < m->sections[i].size) {
            p->sec = &m->sections[i];
            break;
        }
    if (p->sec == NULL || !m->has_dwarf)
        return REPRO_OK;
    p->rc = dwarf_find(m, flags, p, mark, err);
    take_row(p);
    return p->rc;
}

static const char *func_name(struct sym_func *f, unsigned flags)
{
    if (!(flags & REPRO_SYM_DEMANGLE) || f->name == NULL)
        return f->name;
    return repro__demangle_cached(&f->demangled, f->name);
}

static void set_sym(struct repro_sym_frame *fr, const struct sym_elfsym *s, unsigned flags)
{
    fr->function = s->name;
    fr->demangled = (flags & REPRO_SYM_DEMANGLE)
                        ? repro__demangle_cached((_Atomic(const char *) *)&s->demangled, s->name)
                        : s->name;
}

/* The name binutils gives f now (after any renaming by an earlier lookup). */
static void set_func(struct repro_sym_frame *fr, struct sym_func *f, unsigned flags)
{
    const struct sym_elfsym *s = NULL;
    if ((flags & REPRO_SYM_BINUTILS) && atomic_load_explicit(&f->bu_done, memory_order_acquire))
        s = atomic_load_explicit(&f->bu_sym, memory_order_acquire);
    if (s != NULL) {
        set_sym(fr, s, flags);
        return;
    }
    fr->function = f->name;
    fr->demangled = func_name(f, flags);
}

/* Turns p into r in input order: applies and consults the binutils
 * history, names the frames, walks the inline chain. */
static int finish(struct repro_sym_module *m, struct sym_pre *p, unsigned flags,
                  struct repro_sym_result *r, struct repro_error *err)
{
    const struct sym_section *sec;
    struct repro_sym_frame *fr = &r->frames[0];
    struct hit h;
    const struct sym_elfsym *s = NULL;
    const uint64_t addr = p->addr;
    int found = 0, rc;
    size_t i;

    r->addr = addr;
    r->status = REPRO_SYM_NOT_FOUND;
    r->n_frames = 0;
    r->truncated = 0;
    memset(fr, 0, sizeof *fr);
    if (p->rc != REPRO_OK || p->overflow) {
        /* again here, in order (and for the error message) */
        rc = resolve(m, addr, flags, p, 1, err);
        if (rc != REPRO_OK)
            return rc;
    } else {
        for (i = 0; i < p->n_touched; i++) {
            struct sym_unit *u = &m->units[p->touched[i]];
            if (!atomic_load_explicit(&u->bu_touched, memory_order_relaxed))
                atomic_store_explicit(&u->bu_touched, 1, memory_order_relaxed);
        }
    }
    sec = p->sec;
    if (sec == NULL)
        return REPRO_OK;
    if (m->has_dwarf && p->h.f == NULL && p->h.row == NULL && (flags & REPRO_SYM_BINUTILS)) {
        dwarf_find_decoded(m, addr, &p->h);
        take_row(p);
    }
    h = p->h;
    if (m->has_dwarf) {
        struct sym_func *f = (struct sym_func *)h.f;
        found = f != NULL || h.row != NULL;
        if (h.row != NULL) {
            fr->file = p->file;
            fr->line = p->line;
            fr->column = p->column;
            fr->discriminator = p->discriminator;
        }
        if (f != NULL && (f->is_linkage || atomic_load_explicit(&f->bu_done, memory_order_acquire)
                          || (!(flags & REPRO_SYM_BINUTILS) && f->name != NULL))) {
            set_func(fr, f, flags);
        } else {
            const struct sym_symtab *t = &m->symtab_main;
            int table_id = 0;
            if (m->dbg_elf != m->elf && m->dbg_sections_match && m->symtab_dbg.n > 0) {
                t = &m->symtab_dbg;
                table_id = 1;
            }
            s = repro__symtab_find(t, table_id, sec->shndx, addr, r);
            if (s != NULL) {
                found = 1;
                set_sym(fr, s, flags);
                if (fr->file == NULL)
                    fr->file = s->file;
            } else if (f != NULL) {
                set_func(fr, f, flags);
            }
            if (f != NULL && (flags & REPRO_SYM_BINUTILS)) {
                if (s != NULL && s->value == f->low)
                    atomic_store_explicit(&f->bu_sym, s, memory_order_release);
                atomic_store_explicit(&f->bu_done, 1, memory_order_release);
            }
        }
    }
    if (!found) {
        s = repro__symtab_find(&m->symtab_main, 0, sec->shndx, addr, r);
        if (s == NULL)
            return REPRO_OK;
        memset(fr, 0, sizeof *fr);
        set_sym(fr, s, flags);
        fr->file = s->file;
    }
    r->status = REPRO_SYM_FOUND;
    r->n_frames = 1;
    if (h.f != NULL && h.f->inlined) {
        const struct sym_func *f = h.f;
        while (f->inlined && f->parent != SYM_NONE) {
            struct sym_func *par = &h.u->funcs[f->parent];
            struct repro_sym_frame *o;
            if (r->n_frames >= REPRO_SYM_MAX_FRAMES) {
                r->truncated = 1;
                break;
            }
            r->frames[r->n_frames - 1].inlined = 1;
            o = &r->frames[r->n_frames++];
            set_func(o, par, flags);
            o->file = f->call_file;
            o->line = f->call_line;
            o->column = f->call_column;
            o->discriminator = 0;
            o->inlined = 0;
            f = par;
        }
    }
    return REPRO_OK;
}

int repro_sym_module_lookup(struct repro_sym_module *m, uint64_t addr, unsigned flags,
                            struct repro_sym_result *r, struct repro_error *err)
{
    struct sym_pre p;
    int rc = resolve(m, addr, flags, &p, 1, err);
    if (rc != REPRO_OK) {
        r->addr = addr;
        r->status = REPRO_SYM_NOT_FOUND;
        r->n_frames = 0;
        r->truncated = 0;
        memset(&r->frames[0], 0, sizeof r->frames[0]);
        return rc;
    }
    return finish(m, &p, flags, r, err);
}

/* ---- many addresses: resolved on every core, finished in order ---------- */

#define PRE_CHUNK 256

struct pre_batch {
    struct repro_sym_module *m;
    const uint64_t *addrs;
    size_t n, n_chunks;
    unsigned flags;
    struct sym_pre *pre;
    _Atomic uint8_t *ready; /* per chunk: resolved (release) */
    _Atomic size_t next;    /* next chunk to claim */
    _Atomic int stop;
};

/* Software pipelining of a chunk's lookups: the three searches of a lookup
 * are chains of dependent cache misses (unit -> bucket entry -> row), so
 * for the address PF_DIST x 3 ahead the unit is prefetched, for the one
 * PF_DIST x 2 ahead its bucket entries, for the one PF_DIST ahead the rows
 * and segments they point to; each step only reads what the step before
 * brought in. Hints only: a unit that is not built yet is skipped. */
#define PF_DIST 4
#define PF_RING 16 /* > 3 * PF_DIST, a power of two */

static void prefetch_ahead(const struct repro_sym_module *m, const uint64_t *addrs, size_t i,
                           size_t end, const struct sym_unit **ring)
{
    size_t j = i + 3 * PF_DIST, k;
    const struct sym_unit *u;
    if (j < end) {
        uint64_t a = addrs[j];
        BKT_UPPER_LE(&m->urange_bkt, m->uranges, m->n_uranges, hi_max, a, k);
        u = k < m->n_uranges ? &m->units[m->uranges[k].unit] : NULL;
        ring[j % PF_RING] = u;
        if (u != NULL) {
            __builtin_prefetch(u);
            __builtin_prefetch((const char *)u + 64);
        }
    }
    j = i + 2 * PF_DIST;
    if (j < end && (u = ring[j % PF_RING]) != NULL
        && atomic_load_explicit(&u->state, memory_order_acquire) == UNIT_BUILT) {
        const uint32_t *e;
        if ((e = bkt_entry(&u->row_bkt, addrs[j])) != NULL)
            __builtin_prefetch(e);
        if ((e = bkt_entry(&u->seg_bkt, addrs[j])) != NULL)
            __builtin_prefetch(e);
    }
    j = i + PF_DIST;
    if (j < end && (u = ring[j % PF_RING]) != NULL
        && atomic_load_explicit(&u->state, memory_order_acquire) == UNIT_BUILT) {
        const uint32_t *e;
        if ((e = bkt_entry(&u->row_bkt, addrs[j])) != NULL)
            __builtin_prefetch(&u->rows[*e]);
        if ((e = bkt_entry(&u->seg_bkt, addrs[j])) != NULL)
            __builtin_prefetch(&u->segs[*e]);
    }
}

static int resolve_next(struct pre_batch *b)
{
    const struct sym_unit *ring[PF_RING] = {0};
    size_t c = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed), i, end;
    if (c >= b->n_chunks)
        return 0;
    end = (c + 1) * PRE_CHUNK < b->n ? (c + 1) * PRE_CHUNK : b->n;
    for (i = c * PRE_CHUNK; i < end; i++) {
        struct repro_error e = {0};
        prefetch_ahead(b->m, b->addrs, i, end, ring);
        /* an error is kept in pre[i].rc: finish() redoes that address */
        (void)resolve(b->m, b->addrs[i], b->flags, &b->pre[i], 0, &e);
    }
    atomic_store_explicit(&b->ready[c], 1, memory_order_release);
    return 1;
}

/* Offers b to the module's workers; 1 when they may now help. */
static int publish_batch(struct repro_sym_module *m, struct pre_batch *b)
{
    int ok = 0;
    pthread_mutex_lock(&m->ulock);
    if (m->n_bg > 0 && m->batch == NULL) {
        m->batch = b;
        ok = 1;
        pthread_cond_broadcast(&m->wcond);
    }
    pthread_mutex_unlock(&m->ulock);
    return ok;
}

/* Takes b back: no worker is inside it on return. */
static void retract_batch(struct repro_sym_module *m, struct pre_batch *b)
{
    atomic_store(&b->stop, 1);
    pthread_mutex_lock(&m->ulock);
    m->batch = NULL;
    while (m->batch_refs > 0)
        pthread_cond_wait(&m->wcond, &m->ulock);
    pthread_mutex_unlock(&m->ulock);
}

int repro_sym_module_lookup_each(struct repro_sym_module *m, const uint64_t *addrs, size_t n,
                                 unsigned flags, struct repro_sym_result *r,
                                 int (*emit)(void *ctx, const struct repro_sym_result *r),
                                 void *ctx, struct repro_error *err)
{
    struct pre_batch b;
    size_t c, i;
    int rc = REPRO_OK, shared = 0;

    memset(&b, 0, sizeof b);
    b.n_chunks = (n + PRE_CHUNK - 1) / PRE_CHUNK;
    if (b.n_chunks >= 2 && m->has_dwarf && sysconf(_SC_NPROCESSORS_ONLN) >= 2) {
        struct repro_error e = {0};
        /* the workers: they also build the units no address needs yet */
        (void)repro_sym_module_build_background(m, &e);
        if (m->n_bg > 0) {
            b.pre = repro_malloc(n * sizeof *b.pre);
            b.ready = repro_calloc(b.n_chunks, sizeof *b.ready);
            if (b.ready != NULL)
                for (c = 0; c < b.n_chunks; c++)
                    atomic_init(&b.ready[c], 0);
        }
    }
    if (b.pre == NULL || b.ready == NULL) {
        /* one by one on this thread (small batch, one core, no memory) */
        repro_free(b.pre);
        repro_free((void *)b.ready);
        for (i = 0; i < n && rc == REPRO_OK; i++) {
            rc = repro_sym_module_lookup(m, addrs[i], flags, r, err);
            if (rc == REPRO_OK)
                rc = emit(ctx, r);
        }
        return rc;
    }
    b.m = m;
    b.addrs = addrs;
    b.n = n;
    b.flags = flags;
    atomic_init(&b.next, 0);
    atomic_init(&b.stop, 0);
    shared = publish_batch(m, &b);
    for (c = 0; c < b.n_chunks && rc == REPRO_OK; c++) {
        size_t end = (c + 1) * PRE_CHUNK < n ? (c + 1) * PRE_CHUNK : n;
        /* help while chunk c is resolved elsewhere; wait when nothing is left */
        while (!atomic_load_explicit(&b.ready[c], memory_order_acquire))
            if (!resolve_next(&b))
                sched_yield();
        for (i = c * PRE_CHUNK; i < end && rc == REPRO_OK; i++) {
            /* the function and the strings of the answers ahead (two
             * steps: the name needs the function) */
            if (i + 2 * PF_DIST < end && b.pre[i + 2 * PF_DIST].h.f != NULL)
                __builtin_prefetch(b.pre[i + 2 * PF_DIST].h.f);
            if (i + PF_DIST < end) {
                const struct sym_pre *q = &b.pre[i + PF_DIST];
                if (q->file != NULL)
                    __builtin_prefetch(q->file);
                if (q->h.f != NULL && q->h.f->name != NULL)
                    __builtin_prefetch(q->h.f->name);
            }
            rc = finish(m, &b.pre[i], flags, r, err);
            if (rc == REPRO_OK)
                rc = emit(ctx, r);
        }
    }
    if (shared)
        retract_batch(m, &b);
    repro_free(b.pre);
    repro_free((void *)b.ready);
    return rc;
}

/* ---- workers ------------------------------------------------------------ */

/* A worker: helps with the published batch while it has chunks left,
 * otherwise claims the next unit in .debug_info order (address order for
 * the usual link) and builds it; with nothing to do (every unit claimed,
 * or memory ran out: lookups then build what they need) it waits for a
 * batch or the module's end. */
static void *bg_main(void *arg)
{
    struct repro_sym_module *m = arg;
    int building = 1;
    for (;;) {
        struct pre_batch *b = NULL;
        size_t i;
        pthread_mutex_lock(&m->ulock);
        for (;;) {
            if (atomic_load(&m->bg_stop))
                break;
            if (m->batch != NULL && !atomic_load(&m->batch->stop)
                && atomic_load_explicit(&m->batch->next, memory_order_relaxed)
                       < m->batch->n_chunks) {
                b = m->batch;
                m->batch_refs++;
                break;
            }
            if (building)
                break;
            pthread_cond_wait(&m->wcond, &m->ulock);
        }
        pthread_mutex_unlock(&m->ulock);
        /* (a worker holding a batch reference gives it back first) */
        if (b == NULL && atomic_load(&m->bg_stop))
            break;
        if (b != NULL) {
            while (!atomic_load_explicit(&b->stop, memory_order_relaxed) && resolve_next(b))
                ;
            pthread_mutex_lock(&m->ulock);
            if (--m->batch_refs == 0)
                pthread_cond_broadcast(&m->wcond);
            pthread_mutex_unlock(&m->ulock);
            continue;
        }
        i = atomic_fetch_add(&m->bg_next, 1);
        if (i >= m->n_units) {
            building = 0;
            continue;
        }
        if (atomic_load_explicit(&m->units[i].state, memory_order_relaxed) == UNIT_NEW) {
            struct repro_error e = {0};
            if (unit_build(m, &m->units[i], &e) != REPRO_OK)
                building = 0;
        }
    }
    return NULL;
}

int repro_sym_module_build_background(struct repro_sym_module *m, struct repro_error *err)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want, k;
    int rc = REPRO_OK;

    if (!m->has_dwarf || m->n_units == 0 || cores < 2)
        return REPRO_OK;
    want = cores - 1 < 3 ? (size_t)(cores - 1) : 3;
    pthread_mutex_lock(&m->ulock);
    if (!m->bg_started) {
        m->bg_started = 1;
        for (k = 0; k < want; k++) {
            int e = pthread_create(&m->bg_th[k], NULL, bg_main, m);
            if (e != 0) {
                if (k == 0)
                    rc = repro_error_set(err, REPRO_E_NOMEM,
                                         "cannot start a thread to build the index: %s",
                                         strerror(e));
                break;
            }
            m->n_bg++;
        }
    }
    pthread_mutex_unlock(&m->ulock);
    return rc;
}

void repro__bg_stop(struct repro_sym_module *m)
{
    size_t k, n;
    if (!m->ulock_init)
        return;
    pthread_mutex_lock(&m->ulock);
    n = m->n_bg;
    m->n_bg = 0;
    atomic_store(&m->bg_stop, 1);
    pthread_cond_broadcast(&m->wcond);
    pthread_mutex_unlock(&m->ulock);
    for (k = 0; k < n; k++)
        pthread_join(m->bg_th[k], NULL);
}
