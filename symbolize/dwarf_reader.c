/*
 * DWARF reading primitives for the address index: unit headers of
 * .debug_info, abbreviation tables, attribute values of every DWARF 2-5
 * form (DWARF 5, section 7.5), range lists (.debug_ranges and
 * .debug_rnglists) and the unit map from .debug_aranges or the unit DIEs.
 *
 * Every read goes through the bounds-checked cursor of sym_internal.h: the
 * input is "any sequence of octets" (fuzzed by tests/fuzz/fuzz_symbolize.c).
 * Left out: split DWARF (.dwo), type units' contents, the dwz alternate file
 * (DW_FORM_GNU_strp_alt and DW_FORM_GNU_ref_alt read as unknown).
 *
 * Workload: a unit header walk at open (a few thousand units), then one
 * abbreviation table per unit built.
 */
#include "sym_internal.h"

#include <stddef.h>

#include <sched.h>

#include <dwarf.h>
#include <stdlib.h>

int repro__grow(void **p, size_t *cap, size_t need, size_t elem, size_t max)
{
    size_t n;
    void *q;
    if (need <= *cap)
        return REPRO_OK;
    if (need > max)
        return REPRO_E_LIMIT;
    n = *cap ? *cap : 16;
    while (n < need)
        n = n > max / 2 ? max : n * 2;
    q = repro_realloc(*p, n * elem);
    if (q == NULL)
        return REPRO_E_NOMEM;
    *p = q;
    *cap = n;
    return REPRO_OK;
}

const char *repro__dw_str_at(const struct dw_section *s, uint64_t off)
{
    const char *p;
    if (s->data == NULL || off >= s->len)
        return NULL;
    p = (const char *)s->data + off;
    if (memchr(p, 0, s->len - (size_t)off) == NULL)
        return NULL;
    return p;
}

/* ---- forms -------------------------------------------------------------- */

/* Size of a form's value when it does not depend on the data, else -1. */
static int form_fixed_size(const struct sym_unit *u, uint16_t form)
{
    switch (form) {
    case DW_FORM_addr:
        return u->addr_size;
    case DW_FORM_data1: case DW_FORM_ref1: case DW_FORM_flag: case DW_FORM_strx1:
    case DW_FORM_addrx1:
        return 1;
    case DW_FORM_data2: case DW_FORM_ref2: case DW_FORM_strx2: case DW_FORM_addrx2:
        return 2;
    case DW_FORM_strx3: case DW_FORM_addrx3:
        return 3;
    case DW_FORM_data4: case DW_FORM_ref4: case DW_FORM_strx4: case DW_FORM_addrx4:
    case DW_FORM_ref_sup4:
        return 4;
    case DW_FORM_data8: case DW_FORM_ref8: case DW_FORM_ref_sig8: case DW_FORM_ref_sup8:
        return 8;
    case DW_FORM_data16:
        return 16;
    case DW_FORM_strp: case DW_FORM_line_strp: case DW_FORM_sec_offset: case DW_FORM_strp_sup:
    case DW_FORM_GNU_ref_alt: case DW_FORM_GNU_strp_alt:
        return u->offset_size;
    case DW_FORM_ref_addr:
        return u->version <= 2 ? u->addr_size : u->offset_size;
    case DW_FORM_flag_present: case DW_FORM_implicit_const:
        return 0;
    default:
        return -1;
    }
}

/* The form a DW_FORM_indirect attribute names (read from c); marks c bad
 * when it is indirect again, implicit_const (no value to read) or
 * out of range. */
static uint16_t indirect_form(struct dw_cur *c)
{
    uint64_t f = dw_uleb(c);
    if (f == DW_FORM_indirect || f == DW_FORM_implicit_const || f > 0xffff) {
        c->bad = 1;
        return 0;
    }
    return (uint16_t)f;
}

void repro__attr_skip(const struct sym_unit *u, uint16_t form, struct dw_cur *c)
{
    int n = form_fixed_size(u, form);
    if (n >= 0) {
        dw_skip(c, (uint64_t)n);
        return;
    }
    switch (form) {
    case DW_FORM_string:
        (void)dw_cstr(c);
        return;
    case DW_FORM_block1:
        dw_skip(c, dw_u8(c));
        return;
    case DW_FORM_block2:
        dw_skip(c, dw_fixed(c, 2));
        return;
    case DW_FORM_block4:
        dw_skip(c, dw_fixed(c, 4));
        return;
    case DW_FORM_block: case DW_FORM_exprloc:
        dw_skip(c, dw_uleb(c));
        return;
    case DW_FORM_sdata:
        (void)dw_sleb(c);
        return;
    case DW_FORM_udata: case DW_FORM_ref_udata: case DW_FORM_strx: case DW_FORM_addrx:
    case DW_FORM_loclistx: case DW_FORM_rnglistx: case DW_FORM_GNU_addr_index:
    case DW_FORM_GNU_str_index:
        (void)dw_uleb(c);
        return;
    case DW_FORM_indirect: {
        uint16_t f = indirect_form(c);
        if (!c->bad)
            repro__attr_skip(u, f, c);
        return;
    }
    default:
        c->bad = 1; /* unknown form: the rest of the unit cannot be parsed */
        return;
    }
}

/* Reads entry idx (each `size` bytes wide) of a DWARF 5 table that starts
 * at base in section sec (.debug_addr, .debug_str_offsets,
 * .debug_rnglists): 0 and *out set, or -1 when it lies outside the data. */
static int table_entry(const struct dw_section *sec, uint64_t base, uint64_t idx, unsigned size,
                       uint64_t *out)
{
    struct dw_cur c;
    uint64_t off;
    if (size == 0 || idx > (UINT64_MAX - base) / size)
        return -1;
    off = base + idx * size;
    if (sec->data == NULL || off >= sec->len)
        return -1;
    c.p = sec->data + off;
    c.end = sec->data + sec->len;
    c.bad = 0;
    *out = dw_fixed(&c, size);
    return c.bad ? -1 : 0;
}

static uint64_t read_addrx(const struct repro_sym_module *m, const struct sym_unit *u, uint64_t idx)
{
    uint64_t v;
    return table_entry(&m->dw.addr, u->addr_base ? u->addr_base : 8, idx, u->addr_size, &v) == 0
               ? v
               : 0;
}

static const char *read_strx(const struct repro_sym_module *m, const struct sym_unit *u,
                             uint64_t idx)
{
    uint64_t base = u->str_offsets_base ? u->str_offsets_base : (u->offset_size == 8 ? 16 : 8);
    uint64_t off;
    if (table_entry(&m->dw.str_offsets, base, idx, u->offset_size, &off) != 0)
        return NULL;
    return repro__dw_str_at(&m->dw.str, off);
}

static int64_t wide_const(const struct dw_abbrev_table *t, const struct dw_attrspec *spec);

void repro__attr_read(const struct repro_sym_module *m, const struct sym_unit *u,
                      const struct dw_attrspec *spec, struct dw_cur *c, struct dw_attr *a)
{
    uint16_t form = spec->form;
    a->name = spec->name;
    a->u = 0;
    a->s = NULL;
    a->is_str = 0;
    a->is_int = 1;
again:
    a->form = form;
    switch (form) {
    case DW_FORM_addr:
        a->u = dw_fixed(c, u->addr_size);
        return;
    case DW_FORM_data1: case DW_FORM_ref1: case DW_FORM_flag:
        a->u = dw_u8(c);
        return;
    case DW_FORM_data2: case DW_FORM_ref2:
        a->u = dw_fixed(c, 2);
        return;
    case DW_FORM_data4: case DW_FORM_ref4: case DW_FORM_ref_sup4:
        a->u = dw_fixed(c, 4);
        return;
    case DW_FORM_data8: case DW_FORM_ref8: case DW_FORM_ref_sig8: case DW_FORM_ref_sup8:
        a->u = dw_fixed(c, 8);
        return;
    case DW_FORM_sdata:
        a->u = (uint64_t)dw_sleb(c);
        return;
    case DW_FORM_udata: case DW_FORM_ref_udata: case DW_FORM_loclistx: case DW_FORM_rnglistx:
        a->u = dw_uleb(c);
        return;
    case DW_FORM_sec_offset: case DW_FORM_GNU_ref_alt:
        a->u = dw_fixed(c, u->offset_size);
        return;
    case DW_FORM_ref_addr:
        a->u = dw_fixed(c, u->version <= 2 ? u->addr_size : u->offset_size);
        return;
    case DW_FORM_flag_present:
        a->u = 1;
        return;
    case DW_FORM_implicit_const:
        /* a spec from u's abbreviation table (or a made-up one: ival 0) */
        a->u = spec->ival != DW_IVAL_WIDE ? (uint64_t)(int64_t)spec->ival
                                          : (uint64_t)wide_const(u->abbrevs, spec);
        return;
    case DW_FORM_addrx: case DW_FORM_GNU_addr_index:
        a->u = read_addrx(m, u, dw_uleb(c));
        return;
    case DW_FORM_addrx1: case DW_FORM_addrx2: case DW_FORM_addrx3: case DW_FORM_addrx4: {
        unsigned n = form == DW_FORM_addrx1 ? 1 : form == DW_FORM_addrx2 ? 2
                     : form == DW_FORM_addrx3 ? 3 : 4;
        a->u = read_addrx(m, u, dw_fixed(c, n));
        return;
    }
    case DW_FORM_string:
        a->is_int = 0;
        a->is_str = 1;
        a->s = dw_cstr(c);
        return;
    case DW_FORM_strp:
        a->is_int = 0;
        a->is_str = 1;
        a->s = repro__dw_str_at(&m->dw.str, dw_fixed(c, u->offset_size));
        return;
    case DW_FORM_line_strp:
        a->is_int = 0;
        a->is_str = 1;
        a->s = repro__dw_str_at(&m->dw.line_str, dw_fixed(c, u->offset_size));
        return;
    case DW_FORM_strx: case DW_FORM_GNU_str_index:
        a->is_int = 0;
        a->is_str = 1;
        a->s = read_strx(m, u, dw_uleb(c));
        return;
    case DW_FORM_strx1: case DW_FORM_strx2: case DW_FORM_strx3: case DW_FORM_strx4: {
        unsigned n = form == DW_FORM_strx1 ? 1 : form == DW_FORM_strx2 ? 2
                     : form == DW_FORM_strx3 ? 3 : 4;
        a->is_int = 0;
        a->is_str = 1;
        a->s = read_strx(m, u, dw_fixed(c, n));
        return;
    }
    case DW_FORM_strp_sup: case DW_FORM_GNU_strp_alt:
        /* the string lives in the alternate (dwz) file, which we do not read */
        a->is_int = 0;
        a->is_str = 1;
        dw_skip(c, u->offset_size);
        return;
    case DW_FORM_indirect:
        form = indirect_form(c);
        if (c->bad)
            return;
        goto again;
    default:
        a->is_int = 0;
        repro__attr_skip(u, form, c);
        return;
    }
}

/* ---- abbreviations ------------------------------------------------------ */

void repro__abbrevs_free(struct dw_abbrev_table *t)
{
    if (t == NULL)
        return;
    repro_free(t->direct);
    repro_free(t->sparse);
    repro_free(t->sparse_codes);
    repro_free(t->attr_pool);
    repro_free(t->wide_at);
    repro_free(t->wide);
    repro_free(t);
}

/* Index of key in the increasing keys[0..n), or n. */
static size_t find_u64(const uint64_t *keys, size_t n, uint64_t key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo] == key ? lo : n;
}

/* The DW_FORM_implicit_const value of spec, an element of t's pool marked
 * DW_IVAL_WIDE (wide_at is increasing: pool order); 0 when not found. */
static int64_t wide_const(const struct dw_abbrev_table *t, const struct dw_attrspec *spec)
{
    size_t k;
    if (t == NULL || spec < t->attr_pool || spec >= t->attr_pool + t->n_attr_pool)
        return 0;
    k = find_u64(t->wide_at, t->n_wide, (uint64_t)(spec - t->attr_pool));
    return k < t->n_wide ? t->wide[k] : 0;
}

const struct dw_abbrev *repro__abbrev_find(const struct dw_abbrev_table *t, uint64_t code)
{
    size_t k;
    if (code - 1 < t->n_direct)
        return t->direct[code - 1].attrs != NULL || t->direct[code - 1].tag ? &t->direct[code - 1]
                                                                           : NULL;
    k = find_u64(t->sparse_codes, t->n_sparse, code);
    return k < t->n_sparse ? &t->sparse[k] : NULL;
}

static int parse_abbrevs(const struct repro_sym_module *m, const struct sym_unit *u,
                         struct dw_abbrev_table **out, struct repro_error *err)
{
    struct dw_cur c;
    struct dw_abbrev_table *t = NULL;
    size_t n_abbrevs = 0, n_attrs = 0, n_wide = 0, ai = 0, i;
    uint64_t max_code = 0;
    int rc = REPRO_E_NOMEM;

    if (u->abbrev_off >= m->dw.abbrev.len)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "abbreviation offset 0x%llx of unit 0x%llx is out of bounds",
                               (unsigned long long)u->abbrev_off, (unsigned long long)u->off);
    /* pass 1: count */
    c.p = m->dw.abbrev.data + u->abbrev_off;
    c.end = m->dw.abbrev.data + m->dw.abbrev.len;
    c.bad = 0;
    for (;;) {
        uint64_t code = dw_uleb(&c);
        if (c.bad || code == 0)
            break;
        if (code > max_code)
            max_code = code;
        (void)dw_uleb(&c);
        (void)dw_u8(&c);
        n_abbrevs++;
        for (;;) {
            uint64_t name = dw_uleb(&c), form = dw_uleb(&c);
            if (c.bad || (name == 0 && form == 0))
                break;
            if (form == DW_FORM_implicit_const) {
                int64_t v = dw_sleb(&c);
                if (v <= DW_IVAL_WIDE || v > INT32_MAX)
                    n_wide++;
            }
            n_attrs++;
        }
    }
    if (c.bad)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "truncated abbreviation table at 0x%llx",
                               (unsigned long long)u->abbrev_off);
    t = repro_calloc(1, sizeof *t);
    if (t == NULL)
        goto fail;
    t->attr_pool = repro_calloc(n_attrs ? n_attrs : 1, sizeof *t->attr_pool);
    if (t->attr_pool == NULL)
        goto fail;
    t->n_attr_pool = n_attrs;
    if (n_wide > 0) {
        t->wide_at = repro_calloc(n_wide, sizeof *t->wide_at);
        t->wide = repro_calloc(n_wide, sizeof *t->wide);
        if (t->wide_at == NULL || t->wide == NULL)
            goto fail;
    }
    if (max_code <= n_abbrevs * 4 + 64) {
        t->n_direct = (size_t)max_code;
        t->direct = repro_calloc(t->n_direct ? t->n_direct : 1, sizeof *t->direct);
        if (t->direct == NULL)
            goto fail;
    } else {
        t->sparse = repro_calloc(n_abbrevs ? n_abbrevs : 1, sizeof *t->sparse);
        t->sparse_codes = repro_calloc(n_abbrevs ? n_abbrevs : 1, sizeof *t->sparse_codes);
        if (t->sparse == NULL || t->sparse_codes == NULL)
            goto fail;
    }
    /* pass 2: fill */
    c.p = m->dw.abbrev.data + u->abbrev_off;
    c.bad = 0;
    for (i = 0; i < n_abbrevs; i++) {
        uint64_t code = dw_uleb(&c), tag = dw_uleb(&c);
        struct dw_abbrev *a;
        int32_t fixed = 0;
        if (t->direct != NULL) {
            a = &t->direct[code - 1];
        } else {
            /* codes are usually increasing; keep the array sorted */
            size_t k = t->n_sparse;
            while (k > 0 && t->sparse_codes[k - 1] > code) {
                t->sparse_codes[k] = t->sparse_codes[k - 1];
                t->sparse[k] = t->sparse[k - 1];
                k--;
            }
            t->sparse_codes[k] = code;
            a = &t->sparse[k];
            memset(a, 0, sizeof *a);
            t->n_sparse++;
        }
        a->tag = (uint16_t)tag;
        a->has_children = dw_u8(&c) != 0;
        a->interesting = tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine
                         || tag == DW_TAG_entry_point;
        a->attrs = &t->attr_pool[ai];
        a->n_attrs = 0;
        for (;;) {
            uint64_t name = dw_uleb(&c), form = dw_uleb(&c);
            struct dw_attrspec *sp;
            int sz;
            if (name == 0 && form == 0)
                break;
            sp = &t->attr_pool[ai++];
            sp->name = (uint16_t)(name > 0xffff ? 0xffff : name);
            sp->form = (uint16_t)(form > 0xffff ? 0xffff : form);
            sp->ival = 0;
            if (form == DW_FORM_implicit_const) {
                int64_t v = dw_sleb(&c);
                if (v > DW_IVAL_WIDE && v <= INT32_MAX) {
                    sp->ival = (int32_t)v;
                } else if (t->n_wide < n_wide) { /* (pass 1 counted them) */
                    sp->ival = DW_IVAL_WIDE;
                    t->wide_at[t->n_wide] = ai - 1;
                    t->wide[t->n_wide++] = v;
                }
            }
            a->n_attrs++;
            sz = form_fixed_size(u, sp->form);
            if (sz < 0 || fixed < 0)
                fixed = -1;
            else
                fixed += sz;
        }
        a->fixed_size = fixed;
    }
    *out = t;
    return REPRO_OK;
fail:
    repro__abbrevs_free(t);
    return repro_error_set(err, rc, "out of memory reading abbreviations");
}

int repro__unit_abbrevs(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    if (u->abbrevs != NULL)
        return REPRO_OK;
    return parse_abbrevs(m, u, &u->abbrevs, err);
}

/* ---- units -------------------------------------------------------------- */

struct sym_unit *repro__unit_at(struct repro_sym_module *m, uint64_t off)
{
    size_t lo = 0, hi = m->n_units;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->units[mid].end <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n_units && m->units[lo].off <= off && off < m->units[lo].end)
        return &m->units[lo];
    return NULL;
}

/* Reads every attribute of the unit DIE; bases first (strx/addrx/rnglistx
 * values depend on them wherever they appear). Called by the thread that
 * claimed u's DIE (repro__unit_read_die). */
static int unit_read_die_claimed(struct repro_sym_module *m, struct sym_unit *u,
                                struct repro_error *err)
{
    const struct dw_abbrev *ab;
    struct dw_cur c;
    uint64_t code, ranges_val = 0;
    uint16_t ranges_form = 0;
    int pass, rc, high_rel = 0, has_low = 0, has_high = 0;
    uint32_t i;

    rc = repro__unit_abbrevs(m, u, err);
    if (rc != REPRO_OK)
        return rc;
    for (pass = 0; pass < 2; pass++) {
        c.p = m->dw.info.data + u->die_off;
        c.end = m->dw.info.data + u->end;
        c.bad = 0;
        code = dw_uleb(&c);
        ab = code ? repro__abbrev_find(u->abbrevs, code) : NULL;
        if (ab == NULL)
            return repro_error_set(err, REPRO_E_MALFORMED,
                                   "unit DIE at 0x%llx has no valid abbreviation",
                                   (unsigned long long)u->die_off);
        if (pass == 0)
            u->unit_type = ab->tag == DW_TAG_partial_unit ? DW_UT_partial : u->unit_type;
        for (i = 0; i < ab->n_attrs && !c.bad; i++) {
            struct dw_attr a;
            const struct dw_attrspec *sp = &ab->attrs[i];
            if (pass == 0) {
                if (sp->name == DW_AT_str_offsets_base || sp->name == DW_AT_addr_base
                    || sp->name == DW_AT_GNU_addr_base || sp->name == DW_AT_rnglists_base) {
                    repro__attr_read(m, u, sp, &c, &a);
                    if (sp->name == DW_AT_str_offsets_base)
                        u->str_offsets_base = a.u;
                    else if (sp->name == DW_AT_rnglists_base) {
                        u->rnglists_base = a.u;
                        u->has_rnglists_base = 1;
                    } else
                        u->addr_base = a.u;
                } else {
                    repro__attr_skip(u, sp->form, &c);
                }
                continue;
            }
            repro__attr_read(m, u, sp, &c, &a);
            switch (sp->name) {
            case DW_AT_comp_dir:
                if (a.is_str)
                    u->comp_dir = a.s;
                break;
            case DW_AT_stmt_list:
                if (a.is_int) {
                    u->stmt_list = a.u;
                    u->has_stmt_list = 1;
                }
                break;
            case DW_AT_language:
                u->lang = (uint16_t)a.u;
                break;
            case DW_AT_low_pc:
                u->low_pc = a.u;
                u->base_addr = a.u;
                has_low = 1;
                break;
            case DW_AT_high_pc:
                u->high_pc = a.u;
                high_rel = a.form != DW_FORM_addr && a.form != DW_FORM_addrx
                           && !(a.form >= DW_FORM_addrx1 && a.form <= DW_FORM_addrx4);
                has_high = 1;
                break;
            case DW_AT_ranges:
                ranges_val = a.u;
                ranges_form = a.form;
                u->has_ranges = 1;
                break;
            default:
                break;
            }
        }
        if (c.bad)
            return repro_error_set(err, REPRO_E_MALFORMED, "truncated unit DIE at 0x%llx",
                                   (unsigned long long)u->die_off);
    }
    if (has_high && high_rel)
        u->high_pc += u->low_pc;
    if (!has_low || !has_high)
        u->high_pc = u->low_pc;
    if (u->has_ranges) {
        if (ranges_form == DW_FORM_rnglistx)
            u->ranges_off = repro__rnglistx(m, u, ranges_val);
        else if (u->version < 5 && u->has_rnglists_base)
            u->ranges_off = ranges_val; /* GNU split-DWARF style; treated as absolute */
        else
            u->ranges_off = ranges_val;
    }
    return REPRO_OK;
}

/* Thread-safe and idempotent: the thread that claims the DIE (DIE_NEW →
 * DIE_READING) reads it and publishes it; others wait for it (a unit being
 * built by one thread may be read by another that follows a reference into
 * it). A malformed DIE stays malformed, so its fields are never rewritten
 * once another thread may read them. */
int repro__unit_read_die(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    for (;;) {
        uint8_t st = atomic_load_explicit(&u->die_read, memory_order_acquire);
        int rc;
        if (st == DIE_READ)
            return REPRO_OK;
        if (st == DIE_BAD)
            return repro_error_set(err, REPRO_E_MALFORMED, "unit DIE at 0x%llx is malformed",
                                   (unsigned long long)u->die_off);
        if (st == DIE_READING) {
            sched_yield(); /* a DIE and its abbreviations: microseconds */
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(&u->die_read, &st, DIE_READING,
                                                     memory_order_acquire,
                                                     memory_order_acquire))
            continue;
        rc = unit_read_die_claimed(m, u, err);
        atomic_store_explicit(&u->die_read,
                              rc == REPRO_OK ? DIE_READ
                              : rc == REPRO_E_MALFORMED ? DIE_BAD
                                                        : DIE_NEW, /* out of memory: retried */
                              memory_order_release);
        return rc;
    }
}

uint64_t repro__rnglistx(const struct repro_sym_module *m, const struct sym_unit *u, uint64_t idx)
{
    uint64_t base = u->has_rnglists_base ? u->rnglists_base : (u->offset_size == 8 ? 20 : 12);
    uint64_t off;
    if (table_entry(&m->dw.rnglists, base, idx, u->offset_size, &off) != 0 ||
        off > UINT64_MAX - base)
        return UINT64_MAX;
    return base + off;
}

int repro__ranges_walk(const struct repro_sym_module *m, const struct sym_unit *u, uint64_t off,
                       int (*fn)(uint64_t lo, uint64_t hi, void *ctx), void *ctx)
{
    struct dw_cur c;
    uint64_t base = u->base_addr;
    int rc;
    unsigned as = u->addr_size;
    uint64_t maxaddr = as >= 8 ? UINT64_MAX : (((uint64_t)1 << (8 * as)) - 1);

    if (as == 0 || as > 8)
        return REPRO_E_MALFORMED;
    if (u->version < 5) {
        if (m->dw.ranges.data == NULL || off >= m->dw.ranges.len)
            return REPRO_E_MALFORMED;
        c.p = m->dw.ranges.data + off;
        c.end = m->dw.ranges.data + m->dw.ranges.len;
        c.bad = 0;
        for (;;) {
            uint64_t lo = dw_fixed(&c, as), hi = dw_fixed(&c, as);
            if (c.bad)
                return REPRO_E_MALFORMED;
            if (lo == 0 && hi == 0)
                return REPRO_OK;
            if (lo == maxaddr) {
                base = hi;
                continue;
            }
            rc = fn(base + lo, base + hi, ctx);
            if (rc != REPRO_OK)
                return rc;
        }
    }
    if (m->dw.rnglists.data == NULL || off >= m->dw.rnglists.len)
        return REPRO_E_MALFORMED;
    c.p = m->dw.rnglists.data + off;
    c.end = m->dw.rnglists.data + m->dw.rnglists.len;
    c.bad = 0;
    for (;;) {
        uint8_t kind = dw_u8(&c);
        uint64_t a, b;
        if (c.bad)
            return REPRO_E_MALFORMED;
        switch (kind) {
        case DW_RLE_end_of_list:
            return REPRO_OK;
        case DW_RLE_base_addressx:
            base = read_addrx(m, u, dw_uleb(&c));
            continue;
        case DW_RLE_startx_endx:
            a = read_addrx(m, u, dw_uleb(&c));
            b = read_addrx(m, u, dw_uleb(&c));
            break;
        case DW_RLE_startx_length:
            a = read_addrx(m, u, dw_uleb(&c));
            b = a + dw_uleb(&c);
            break;
        case DW_RLE_offset_pair:
            a = base + dw_uleb(&c);
            b = base + dw_uleb(&c);
            break;
        case DW_RLE_base_address:
            base = dw_fixed(&c, as);
            continue;
        case DW_RLE_start_end:
            a = dw_fixed(&c, as);
            b = dw_fixed(&c, as);
            break;
        case DW_RLE_start_length:
            a = dw_fixed(&c, as);
            b = a + dw_uleb(&c);
            break;
        default:
            return REPRO_E_MALFORMED;
        }
        if (c.bad)
            return REPRO_E_MALFORMED;
        rc = fn(a, b, ctx);
        if (rc != REPRO_OK)
            return rc;
    }
}

/* ---- the unit map ------------------------------------------------------- */

struct urange_ctx {
    struct repro_sym_module *m;
    size_t cap;
    uint32_t unit;
};

static int add_urange(uint64_t lo, uint64_t hi, void *ctx)
{
    struct urange_ctx *x = ctx;
    struct repro_sym_module *m = x->m;
    int rc;
    if (hi <= lo)
        return REPRO_OK;
    rc = repro__grow((void **)&m->uranges, &x->cap, m->n_uranges + 1, sizeof *m->uranges,
                     SYM_MAX_RANGES);
    if (rc != REPRO_OK)
        return rc;
    m->uranges[m->n_uranges].lo = lo;
    m->uranges[m->n_uranges].hi = hi;
    m->uranges[m->n_uranges].unit = x->unit;
    m->n_uranges++;
    return REPRO_OK;
}

static int cmp_urange(const void *a, const void *b)
{
    const struct sym_urange *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    if (x->unit != y->unit)
        return x->unit < y->unit ? -1 : 1;
    return x->hi < y->hi ? -1 : x->hi > y->hi;
}

/* .debug_aranges: one set per unit, (address, length) tuples. */
static int load_aranges(struct repro_sym_module *m, struct urange_ctx *x, struct repro_error *err)
{
    struct dw_cur c;
    const uint8_t *start = m->dw.aranges.data;
    c.p = start;
    c.end = start + m->dw.aranges.len;
    c.bad = 0;
    while (c.p < c.end) {
        const uint8_t *set = c.p, *set_end;
        uint64_t len = dw_fixed(&c, 4), info_off;
        unsigned osz = 4, as, seg;
        struct sym_unit *u;
        int rc;
        if (len == 0xffffffffu) {
            len = dw_fixed(&c, 8);
            osz = 8;
        }
        if (c.bad || len > (uint64_t)(c.end - c.p))
            return repro_error_set(err, REPRO_E_MALFORMED,
                                   "truncated .debug_aranges set at 0x%llx",
                                   (unsigned long long)(set - start));
        set_end = c.p + len;
        (void)dw_fixed(&c, 2);
        info_off = dw_fixed(&c, osz);
        as = dw_u8(&c);
        seg = dw_u8(&c);
        if (c.bad || as == 0 || as > 8 || seg != 0) {
            c.p = set_end;
            continue;
        }
        /* tuples start at a multiple of twice the address size */
        while ((size_t)(c.p - set) % (2 * as) != 0 && c.p < set_end)
            c.p++;
        u = repro__unit_at(m, info_off);
        x->unit = u ? (uint32_t)(u - m->units) : SYM_NONE;
        for (;;) {
            struct dw_cur t = {c.p, set_end, 0};
            uint64_t a = dw_fixed(&t, as), l = dw_fixed(&t, as);
            if (t.bad)
                break;
            c.p = t.p;
            if (a == 0 && l == 0)
                break;
            if (u == NULL || l == 0 || a + l < a)
                continue;
            rc = add_urange(a, a + l, x);
            if (rc != REPRO_OK)
                return repro_error_set(err, rc, "out of memory reading .debug_aranges");
        }
        c.p = set_end;
    }
    return REPRO_OK;
}

static int unit_ranges_from_die(struct repro_sym_module *m, struct urange_ctx *x,
                                struct repro_error *err)
{
    size_t i;
    for (i = 0; i < m->n_units; i++) {
        struct sym_unit *u = &m->units[i];
        struct repro_error e2 = {0};
        int rc;
        if (u->unit_type == DW_UT_type || u->unit_type == DW_UT_split_type)
            continue;
        rc = repro__unit_read_die(m, u, &e2);
        if (rc == REPRO_E_NOMEM)
            return repro_error_set(err, rc, "%s", e2.msg);
        if (rc != REPRO_OK) {
            repro_log(REPRO_LOG_DEBUG, "symbolize", "%s: %s", m->path, e2.msg);
            continue;
        }
        x->unit = (uint32_t)i;
        if (u->has_ranges) {
            rc = u->ranges_off == UINT64_MAX ? REPRO_E_MALFORMED
                                             : repro__ranges_walk(m, u, u->ranges_off, add_urange, x);
            if (rc == REPRO_E_NOMEM || rc == REPRO_E_LIMIT)
                return repro_error_set(err, rc, "out of memory reading unit ranges");
        }
        if (u->high_pc > u->low_pc) {
            rc = add_urange(u->low_pc, u->high_pc, x);
            if (rc != REPRO_OK)
                return repro_error_set(err, rc, "out of memory reading unit ranges");
        }
    }
    return REPRO_OK;
}

int repro__units_load(struct repro_sym_module *m, struct repro_error *err)
{
    struct dw_cur c;
    size_t cap = 0;
    struct urange_ctx x = {m, 0, 0};
    int rc;
    size_t i;

    c.p = m->dw.info.data;
    c.end = m->dw.info.data + m->dw.info.len;
    c.bad = 0;
    while (c.p < c.end) {
        struct sym_unit *u;
        uint64_t off = (uint64_t)(c.p - m->dw.info.data), len;
        unsigned osz = 4;
        const uint8_t *body;
        len = dw_fixed(&c, 4);
        if (len == 0xffffffffu) {
            len = dw_fixed(&c, 8);
            osz = 8;
        } else if (len >= 0xfffffff0u) {
            c.bad = 1;
        }
        if (c.bad || len > (uint64_t)(c.end - c.p) || len < 7) {
            repro_log(REPRO_LOG_WARN, "symbolize",
                      "malformed DWARF in '%s': bad unit length at .debug_info+0x%llx, "
                      "%zu units kept", m->path, (unsigned long long)off, m->n_units);
            break;
        }
        body = c.p;
        rc = repro__grow((void **)&m->units, &cap, m->n_units + 1, sizeof *m->units, 1u << 22);
        if (rc != REPRO_OK)
            return repro_error_set(err, rc, "out of memory reading unit headers");
        u = &m->units[m->n_units];
        memset(u, 0, sizeof *u);
        u->off = off;
        u->end = (uint64_t)(body - m->dw.info.data) + len;
        u->offset_size = (uint8_t)osz;
        c.end = body + len;
        u->version = (uint8_t)dw_fixed(&c, 2);
        if (u->version >= 5) {
            u->unit_type = dw_u8(&c);
            u->addr_size = dw_u8(&c);
            u->abbrev_off = dw_fixed(&c, osz);
            if (u->unit_type == DW_UT_skeleton || u->unit_type == DW_UT_split_compile)
                dw_skip(&c, 8);
            else if (u->unit_type == DW_UT_type || u->unit_type == DW_UT_split_type)
                dw_skip(&c, 8 + osz);
        } else {
            u->unit_type = DW_UT_compile;
            u->abbrev_off = dw_fixed(&c, osz);
            u->addr_size = dw_u8(&c);
        }
        u->die_off = (uint64_t)(c.p - m->dw.info.data);
        c.p = body + len;
        c.end = m->dw.info.data + m->dw.info.len;
        if (u->version < 2 || u->version > 5 || u->addr_size == 0 || u->addr_size > 8
            || u->die_off >= u->end) {
            repro_log(REPRO_LOG_DEBUG, "symbolize", "%s: skipping unit at 0x%llx (version %u)",
                      m->path, (unsigned long long)off, u->version);
            continue; /* not counted */
        }
        atomic_init(&u->state, UNIT_NEW);
        m->n_units++;
    }
    if (m->dw.aranges.len > 0)
        rc = load_aranges(m, &x, err);
    else
        rc = unit_ranges_from_die(m, &x, err);
    if (rc == REPRO_E_MALFORMED) {
        /* a broken .debug_aranges: fall back to the unit DIEs */
        repro_log(REPRO_LOG_WARN, "symbolize", "'%s': %s; reading unit ranges instead", m->path,
                  err ? err->msg : ".debug_aranges is malformed");
        if (err)
            repro_error_clear(err);
        m->n_uranges = 0;
        rc = unit_ranges_from_die(m, &x, err);
    }
    if (rc != REPRO_OK)
        return rc;
    if (m->n_uranges > 1)
        qsort(m->uranges, m->n_uranges, sizeof *m->uranges, cmp_urange);
    for (i = 0; i < m->n_uranges; i++)
        m->uranges[i].hi_max = i == 0 || m->uranges[i].hi > m->uranges[i - 1].hi_max
                                   ? m->uranges[i].hi
                                   : m->uranges[i - 1].hi_max;
    repro__bkt_build(&m->urange_bkt, m->uranges, m->n_uranges, sizeof *m->uranges,
                     offsetof(struct sym_urange, hi_max));
    return REPRO_OK;
}
