/*
 * Functions and inlined instances of one unit: a walk over its DIEs
 * (DW_TAG_subprogram, DW_TAG_entry_point, DW_TAG_inlined_subroutine, DWARF 5
 * sections 3.3 and 3.3.8) into an array of functions, then their address
 * ranges flattened into disjoint segments, each naming the function binutils
 * would pick there.
 *
 * binutils' choice (bfd/dwarf2.c lookup_address_in_function_table): among
 * every function range holding the address, the shortest; on equal length
 * the function read last. Ranges are merged as its arange_add() merges
 * them (a range that starts where a kept one ends extends it). Names follow
 * its scan_unit_for_symbols()/find_abstract_instance(): DW_AT_linkage_name
 * wins, DW_AT_name counts as a linkage name in C-like languages, and
 * DW_AT_abstract_origin / DW_AT_specification are followed (100 levels at
 * most). The caller of an inlined instance is the nearest enclosing
 * function DIE.
 *
 * Workload: once per unit; libc's units total a few hundred thousand DIEs of
 * which a tenth are functions.
 */
#include "sym_internal.h"

#include <dwarf.h>
#include <stdlib.h>

struct ival {
    uint64_t lo, hi;
    uint32_t func;
};

struct arange {
    uint64_t lo, hi;
};

struct fb {
    struct repro_sym_module *m;
    struct sym_unit *u;
    struct sym_func *funcs;
    size_t n_funcs, cap_funcs;
    struct ival *iv;
    size_t n_iv, cap_iv;
    struct arange *ar; /* ranges of the function being read, in binutils' list order */
    size_t n_ar, cap_ar;
};

/* binutils' mangle_style() == 0: DW_AT_name is taken as the linkage name. */
static int name_is_linkage(uint16_t lang)
{
    switch (lang) {
    case DW_LANG_C89: case DW_LANG_C: case DW_LANG_Cobol74: case DW_LANG_Cobol85:
    case DW_LANG_Fortran77: case DW_LANG_Pascal83: case DW_LANG_PLI: case DW_LANG_C99:
    case DW_LANG_UPC: case DW_LANG_C11: case DW_LANG_Mips_Assembler:
    case 0x8765: /* DW_LANG_Upc */
    case 0x8003: /* DW_LANG_HP_Basic91 */
    case 0x8005: /* DW_LANG_HP_IMacro */
    case 0x8006: /* DW_LANG_HP_Assembler */
        return 1;
    default:
        return 0;
    }
}

/* binutils arange_add() on the current function's list. */
static int arange_add(uint64_t lo, uint64_t hi, void *ctx)
{
    struct fb *b = ctx;
    size_t i;
    int rc;
    if (lo == hi)
        return REPRO_OK;
    if (b->n_ar == 0) {
        rc = repro__grow((void **)&b->ar, &b->cap_ar, 1, sizeof *b->ar, SYM_MAX_RANGES);
        if (rc != REPRO_OK)
            return rc;
        b->ar[0].lo = lo;
        b->ar[0].hi = hi;
        b->n_ar = 1;
        return REPRO_OK;
    }
    for (i = 0; i < b->n_ar; i++) {
        if (lo == b->ar[i].hi) {
            b->ar[i].hi = hi;
            return REPRO_OK;
        }
        if (hi == b->ar[i].lo) {
            b->ar[i].lo = lo;
            return REPRO_OK;
        }
    }
    rc = repro__grow((void **)&b->ar, &b->cap_ar, b->n_ar + 1, sizeof *b->ar, SYM_MAX_RANGES);
    if (rc != REPRO_OK)
        return rc;
    /* inserted after the first, as binutils does */
    memmove(&b->ar[2], &b->ar[1], (b->n_ar - 1) * sizeof *b->ar);
    b->ar[1].lo = lo;
    b->ar[1].hi = hi;
    b->n_ar++;
    return REPRO_OK;
}

/* find_abstract_instance(): the name behind a DW_AT_abstract_origin or
 * DW_AT_specification reference. Unreadable references leave name alone. */
static int abstract_name(struct fb *b, struct sym_unit *u, const struct dw_attr *a, int depth,
                         const char **name, uint8_t *is_linkage, struct repro_error *err)
{
    struct repro_sym_module *m = b->m;
    struct sym_unit *tu;
    const struct dw_abbrev *ab;
    struct dw_cur c;
    uint64_t off, code;
    uint32_t i;
    int rc;

    if (depth >= 100)
        return REPRO_OK;
    switch (a->form) {
    case DW_FORM_ref_addr:
        off = a->u;
        break;
    case DW_FORM_ref1: case DW_FORM_ref2: case DW_FORM_ref4: case DW_FORM_ref8:
    case DW_FORM_ref_udata:
        if (a->u > UINT64_MAX - u->off)
            return REPRO_OK;
        off = u->off + a->u;
        break;
    default:
        return REPRO_OK; /* dwz alternate file, type signatures: not followed */
    }
    tu = off >= u->off && off < u->end ? u : repro__unit_at(m, off);
    if (tu == NULL || off < tu->die_off)
        return REPRO_OK;
    if (tu != u) {
        struct repro_error e2 = {0};
        rc = repro__unit_read_die(m, tu, &e2);
        if (rc == REPRO_E_NOMEM)
            return repro_error_set(err, rc, "%s", e2.msg);
        if (rc != REPRO_OK)
            return REPRO_OK;
    }
    c.p = m->dw.info.data + off;
    c.end = m->dw.info.data + tu->end;
    c.bad = 0;
    code = dw_uleb(&c);
    if (c.bad || code == 0 || (ab = repro__abbrev_find(tu->abbrevs, code)) == NULL)
        return REPRO_OK;
    for (i = 0; i < ab->n_attrs && !c.bad; i++) {
        const struct dw_attrspec *sp = &ab->attrs[i];
        struct dw_attr v;
        if (sp->name != DW_AT_name && sp->name != DW_AT_linkage_name
            && sp->name != DW_AT_MIPS_linkage_name && sp->name != DW_AT_specification) {
            repro__attr_skip(tu, sp->form, &c);
            continue;
        }
        repro__attr_read(m, tu, sp, &c, &v);
        if (c.bad)
            break;
        if (sp->name == DW_AT_name) {
            if (*name == NULL && v.is_str && v.s != NULL) {
                *name = v.s;
                if (name_is_linkage(tu->lang))
                    *is_linkage = 1;
            }
        } else if (sp->name == DW_AT_specification) {
            if (v.is_int) {
                rc = abstract_name(b, tu, &v, depth + 1, name, is_linkage, err);
                if (rc != REPRO_OK)
                    return rc;
            }
        } else if (v.is_str && v.s != NULL) {
            *name = v.s;
            *is_linkage = 1;
        }
    }
    return REPRO_OK;
}

static const char *call_file_name(const struct sym_unit *u, uint64_t v)
{
    if (u->n_files == 0)
        return NULL;
    return u->files[v < u->n_files - 1 ? v : u->n_files - 1];
}

/* Reads the attributes of one function DIE into f and b->ar. */
static int read_func(struct fb *b, const struct dw_abbrev *ab, struct dw_cur *c,
                     struct sym_func *f, struct repro_error *err)
{
    struct sym_unit *u = b->u;
    uint64_t low = 0, high = 0, ranges_val = 0;
    int high_rel = 0, has_ranges = 0, rc;
    uint16_t ranges_form = 0;
    uint32_t i;

    b->n_ar = 0;
    for (i = 0; i < ab->n_attrs; i++) {
        const struct dw_attrspec *sp = &ab->attrs[i];
        struct dw_attr a;
        switch (sp->name) {
        case DW_AT_name: case DW_AT_linkage_name: case DW_AT_MIPS_linkage_name:
        case DW_AT_abstract_origin: case DW_AT_specification: case DW_AT_low_pc:
        case DW_AT_high_pc: case DW_AT_ranges: case DW_AT_call_file: case DW_AT_call_line:
        case DW_AT_call_column:
            break;
        default:
            repro__attr_skip(u, sp->form, c);
            continue;
        }
        repro__attr_read(b->m, u, sp, c, &a);
        if (c->bad)
            return REPRO_E_MALFORMED;
        switch (sp->name) {
        case DW_AT_name:
            if (f->name == NULL && a.is_str && a.s != NULL) {
                f->name = a.s;
                if (name_is_linkage(u->lang))
                    f->is_linkage = 1;
            }
            break;
        case DW_AT_linkage_name: case DW_AT_MIPS_linkage_name:
            if (a.is_str && a.s != NULL) {
                f->name = a.s;
                f->is_linkage = 1;
            }
            break;
        case DW_AT_abstract_origin: case DW_AT_specification:
            rc = abstract_name(b, u, &a, 0, &f->name, &f->is_linkage, err);
            if (rc != REPRO_OK)
                return rc;
            break;
        case DW_AT_low_pc:
            if (a.is_int)
                low = a.u;
            break;
        case DW_AT_high_pc:
            if (a.is_int) {
                high = a.u;
                high_rel = a.form != DW_FORM_addr && a.form != DW_FORM_addrx
                           && !(a.form >= DW_FORM_addrx1 && a.form <= DW_FORM_addrx4);
            }
            break;
        case DW_AT_ranges:
            if (a.is_int) {
                has_ranges = 1;
                ranges_val = a.u;
                ranges_form = a.form;
            }
            break;
        case DW_AT_call_file:
            if (a.is_int)
                f->call_file = call_file_name(u, a.u);
            break;
        case DW_AT_call_line:
            if (a.is_int)
                f->call_line = (uint32_t)a.u;
            break;
        case DW_AT_call_column:
            if (a.is_int)
                f->call_column = (uint32_t)a.u;
            break;
        default:
            break;
        }
    }
    if (has_ranges) {
        uint64_t off = ranges_form == DW_FORM_rnglistx ? repro__rnglistx(b->m, u, ranges_val)
                                                       : ranges_val;
        rc = off == UINT64_MAX ? REPRO_E_MALFORMED : repro__ranges_walk(b->m, u, off, arange_add, b);
        if (rc == REPRO_E_NOMEM || rc == REPRO_E_LIMIT)
            return rc;
        /* a bad range list loses this function's ranges, not the unit */
    }
    if (high_rel)
        high += low;
    if (high != 0) {
        rc = arange_add(low, high, b);
        if (rc != REPRO_OK)
            return rc;
    }
    f->low = b->n_ar ? b->ar[0].lo : 0;
    for (i = 0; i < b->n_ar; i++) {
        if (b->ar[i].hi <= b->ar[i].lo)
            continue; /* never holds an address in binutils either */
        rc = repro__grow((void **)&b->iv, &b->cap_iv, b->n_iv + 1, sizeof *b->iv, SYM_MAX_RANGES);
        if (rc != REPRO_OK)
            return rc;
        b->iv[b->n_iv].lo = b->ar[i].lo;
        b->iv[b->n_iv].hi = b->ar[i].hi;
        b->iv[b->n_iv].func = (uint32_t)b->n_funcs;
        b->n_iv++;
    }
    return REPRO_OK;
}

static int walk_dies(struct fb *b, struct repro_error *err)
{
    struct sym_unit *u = b->u;
    struct dw_cur c;
    uint32_t nested[SYM_MAX_DEPTH];
    int level = 0, rc;

    c.p = b->m->dw.info.data + u->die_off;
    c.end = b->m->dw.info.data + u->end;
    c.bad = 0;
    while (c.p < c.end) {
        uint64_t code = dw_uleb(&c);
        const struct dw_abbrev *ab;
        if (c.bad)
            return REPRO_E_MALFORMED;
        if (code == 0) {
            if (--level <= 0)
                break;
            continue;
        }
        ab = repro__abbrev_find(u->abbrevs, code);
        if (ab == NULL)
            return REPRO_E_MALFORMED;
        if (!ab->interesting) {
            if (ab->fixed_size >= 0) {
                dw_skip(&c, (uint64_t)ab->fixed_size);
            } else {
                uint32_t i;
                for (i = 0; i < ab->n_attrs; i++)
                    repro__attr_skip(u, ab->attrs[i].form, &c);
            }
            nested[level] = SYM_NONE;
        } else {
            struct sym_func *f;
            int k;
            if (b->n_funcs >= SYM_MAX_UNIT_FUNCS)
                return REPRO_E_LIMIT;
            rc = repro__grow((void **)&b->funcs, &b->cap_funcs, b->n_funcs + 1, sizeof *b->funcs,
                             SYM_MAX_UNIT_FUNCS);
            if (rc != REPRO_OK)
                return rc;
            f = &b->funcs[b->n_funcs];
            memset(f, 0, sizeof *f);
            atomic_init(&f->demangled, NULL);
            atomic_init(&f->bu_done, 0);
            atomic_init(&f->bu_sym, NULL);
            f->parent = SYM_NONE;
            f->inlined = ab->tag == DW_TAG_inlined_subroutine;
            if (f->inlined)
                for (k = level - 1; k >= 0; k--)
                    if (nested[k] != SYM_NONE) {
                        f->parent = nested[k];
                        break;
                    }
            rc = read_func(b, ab, &c, f, err);
            if (rc != REPRO_OK)
                return rc;
            nested[level] = (uint32_t)b->n_funcs;
            b->n_funcs++;
        }
        if (c.bad)
            return REPRO_E_MALFORMED;
        if (ab->has_children) {
            if (++level >= SYM_MAX_DEPTH)
                return REPRO_E_MALFORMED;
            nested[level] = SYM_NONE;
        } else if (level == 0) {
            break; /* a unit DIE without children */
        }
    }
    return REPRO_OK;
}

/* ---- segments ------------------------------------------------------------ */

static int cmp_ival_lo(const void *a, const void *b)
{
    const struct ival *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->func < y->func ? -1 : x->func > y->func;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* heap order: shorter first, then the later function */
static int better(const struct ival *x, const struct ival *y)
{
    uint64_t lx = x->hi - x->lo, ly = y->hi - y->lo;
    if (lx != ly)
        return lx < ly;
    return x->func > y->func;
}

static void heap_push(uint32_t *h, size_t *n, const struct ival *iv, uint32_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(&iv[v], &iv[h[p]]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static void heap_pop(uint32_t *h, size_t *n, const struct ival *iv)
{
    size_t i = 0, cnt = --(*n);
    uint32_t v = h[cnt];
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        uint32_t bv = v;
        if (l < cnt && better(&iv[h[l]], &iv[bv]))
            best = l, bv = h[l];
        if (l + 1 < cnt && better(&iv[h[l + 1]], &iv[bv]))
            best = l + 1, bv = h[l + 1];
        if (best == i)
            break;
        h[i] = h[best];
        i = best;
    }
    if (cnt > 0)
        h[i] = v;
}

static int build_segments(struct fb *b)
{
    struct sym_unit *u = b->u;
    size_t n = b->n_iv, n_pts = 0, i, j = 0, hn = 0, n_segs = 0, cap_segs = 0;
    uint64_t *pts = NULL;
    uint32_t *heap = NULL;
    struct sym_seg *segs = NULL;
    int rc = REPRO_E_NOMEM;

    if (n == 0) {
        segs = repro_malloc(sizeof *segs);
        if (segs == NULL)
            return REPRO_E_NOMEM;
        segs[0].lo = 0;
        segs[0].func = SYM_NONE;
        u->segs = segs;
        u->n_segs = 1;
        return REPRO_OK;
    }
    qsort(b->iv, n, sizeof *b->iv, cmp_ival_lo);
    pts = repro_malloc(2 * n * sizeof *pts);
    heap = repro_malloc(n * sizeof *heap);
    if (pts == NULL || heap == NULL)
        goto out;
    for (i = 0; i < n; i++) {
        pts[n_pts++] = b->iv[i].lo;
        pts[n_pts++] = b->iv[i].hi;
    }
    qsort(pts, n_pts, sizeof *pts, cmp_u64);
    for (i = 0; i < n_pts; i++) {
        uint64_t p = pts[i];
        uint32_t best;
        if (i > 0 && pts[i - 1] == p)
            continue;
        while (j < n && b->iv[j].lo <= p)
            heap_push(heap, &hn, b->iv, (uint32_t)j++);
        while (hn > 0 && b->iv[heap[0]].hi <= p)
            heap_pop(heap, &hn, b->iv);
        best = hn > 0 ? b->iv[heap[0]].func : SYM_NONE;
        if (n_segs > 0 && segs[n_segs - 1].func == best)
            continue;
        rc = repro__grow((void **)&segs, &cap_segs, n_segs + 1, sizeof *segs, 2 * SYM_MAX_RANGES);
        if (rc != REPRO_OK)
            goto out;
        segs[n_segs].lo = p;
        segs[n_segs].func = best;
        n_segs++;
    }
    u->segs = segs;
    u->n_segs = n_segs;
    segs = NULL;
    rc = REPRO_OK;
out:
    repro_free(pts);
    repro_free(heap);
    repro_free(segs);
    return rc;
}

int repro__funcs_build(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    struct fb b;
    int rc;

    memset(&b, 0, sizeof b);
    b.m = m;
    b.u = u;
    rc = walk_dies(&b, err);
    if (rc == REPRO_E_MALFORMED) {
        /* keep what was read before the damage */
        repro_log(REPRO_LOG_WARN, "symbolize",
                  "malformed DWARF in '%s': unit at .debug_info+0x%llx, %zu functions kept",
                  m->path, (unsigned long long)u->off, b.n_funcs);
        rc = REPRO_OK;
    }
    if (rc == REPRO_OK)
        rc = build_segments(&b);
    repro_free(b.iv);
    repro_free(b.ar);
    if (rc != REPRO_OK) {
        repro_free(b.funcs);
        if (err && err->code == 0)
            repro_error_set(err, rc, "%s indexing functions of unit at .debug_info+0x%llx",
                            rc == REPRO_E_LIMIT ? "too many functions" : "out of memory",
                            (unsigned long long)u->off);
        return rc;
    }
    u->funcs = b.funcs;
    u->n_funcs = b.n_funcs;
    return REPRO_OK;
}
