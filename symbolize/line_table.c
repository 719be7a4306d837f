/*
 * The line table of one unit (DWARF 2-5 .debug_line, DWARF 5 section 6.2),
 * decoded into a flat array of rows sorted by address, ready for one binary
 * search per lookup.
 *
 * The rules are those of binutils' bfd/dwarf2.c, whose answers addr2line
 * prints and which repro addr2line must reproduce:
 *  - of consecutive rows with the same address, the last one wins;
 *  - sequences are sorted by start (longest first on ties); a sequence
 *    nested in an earlier one is dropped, an overlapping one is trimmed;
 *  - an address maps to the row at or before it in its sequence; the end of
 *    a sequence maps to nothing;
 *  - a sequence starts with file entry 0 in DWARF 5 (binutils 2.40's
 *    initial file name; the DWARF default is 1), entry 1 before;
 *  - file names are joined as concat_filename() does: DWARF 5 uses entry 0
 *    of the directory and file tables, DWARF 2-4 count from 1; a relative
 *    name gets its directory, and a relative directory gets DW_AT_comp_dir
 *    in front ("comp_dir/dir/name"); nothing is normalised.
 * is_stmt is ignored (binutils keeps every row). VLIW op_index is not
 * supported (x86-64 and aarch64 do not use it).
 *
 * Workload: once per unit on its first lookup; libc's 4,000 units hold
 * about a million rows.
 */
#include "sym_internal.h"

#include <dwarf.h>
#include <stdlib.h>

struct raw_row {
    uint64_t addr;
    uint32_t file, line, column, discriminator;
    uint8_t end;
};

struct seq {
    size_t begin, n; /* rows[begin..begin+n), the last is the end row */
    uint64_t low, high;
    size_t order;
};

struct lt_file {
    const char *name;
    uint64_t dir;
};

struct lt {
    struct raw_row *rows;
    size_t n_rows, cap_rows;
    struct seq *seqs;
    size_t n_seqs, cap_seqs;
    const char **dirs;
    size_t n_dirs, cap_dirs;
    struct lt_file *files;
    size_t n_files, cap_files;
    int v5;
};

static void lt_release(struct lt *t)
{
    repro_free(t->rows);
    repro_free(t->seqs);
    repro_free(t->dirs);
    repro_free(t->files);
}

/* Reads one value of form for a v5 directory/file entry. */
static void entry_value(const struct repro_sym_module *m, const struct sym_unit *u,
                        uint16_t form, struct dw_cur *c, const char **s, uint64_t *v)
{
    struct dw_attrspec sp = {0, form, 0};
    struct dw_attr a;
    repro__attr_read(m, u, &sp, c, &a);
    if (a.is_str)
        *s = a.s;
    else
        *v = a.u;
}

static int read_v5_entries(const struct repro_sym_module *m, const struct sym_unit *u,
                           struct dw_cur *c, struct lt *t, int files)
{
    uint8_t n_fmt = dw_u8(c);
    uint64_t fmt[2 * 32], n, i;
    unsigned k;
    int rc;
    if (n_fmt > 32)
        return REPRO_E_MALFORMED;
    for (k = 0; k < 2u * n_fmt; k++)
        fmt[k] = dw_uleb(c);
    n = dw_uleb(c);
    if (c->bad || n > SYM_MAX_FILES)
        return REPRO_E_MALFORMED;
    for (i = 0; i < n; i++) {
        const char *path = NULL;
        uint64_t dir = 0;
        for (k = 0; k < n_fmt; k++) {
            uint64_t type = fmt[2 * k], form = fmt[2 * k + 1];
            const char *s = NULL;
            uint64_t v = 0;
            if (form > 0xffff)
                return REPRO_E_MALFORMED;
            entry_value(m, u, (uint16_t)form, c, &s, &v);
            if (type == DW_LNCT_path)
                path = s;
            else if (type == DW_LNCT_directory_index)
                dir = v;
        }
        if (c->bad)
            return REPRO_E_MALFORMED;
        if (files) {
            rc = repro__grow((void **)&t->files, &t->cap_files, t->n_files + 1, sizeof *t->files,
                             SYM_MAX_FILES);
            if (rc != REPRO_OK)
                return rc;
            t->files[t->n_files].name = path;
            t->files[t->n_files].dir = dir;
            t->n_files++;
        } else {
            rc = repro__grow((void **)&t->dirs, &t->cap_dirs, t->n_dirs + 1, sizeof *t->dirs,
                             SYM_MAX_FILES);
            if (rc != REPRO_OK)
                return rc;
            t->dirs[t->n_dirs++] = path;
        }
    }
    return REPRO_OK;
}

static int add_file_v4(struct lt *t, const char *name, uint64_t dir)
{
    int rc = repro__grow((void **)&t->files, &t->cap_files, t->n_files + 1, sizeof *t->files,
                         SYM_MAX_FILES);
    if (rc != REPRO_OK)
        return rc;
    t->files[t->n_files].name = name;
    t->files[t->n_files].dir = dir;
    t->n_files++;
    return REPRO_OK;
}

static int is_abs(const char *p)
{
    return p[0] == '/';
}

/* binutils' concat_filename(); writes into out (NULL: measure). Returns the
 * length, or -1 for "<unknown>". */
static size_t join_name(const struct lt *t, const char *comp_dir, uint64_t file, char *out)
{
    const char *name, *dir_name = NULL, *sub = NULL;
    uint64_t dir;
    size_t n;
    if (!t->v5) {
        if (file == 0)
            goto unknown;
        file--;
    }
    if (file >= t->n_files || t->files[file].name == NULL)
        goto unknown;
    name = t->files[file].name;
    if (!is_abs(name)) {
        dir = t->files[file].dir;
        if (!t->v5)
            dir--; /* 0 wraps: no directory */
        if (dir < t->n_dirs)
            sub = t->dirs[dir];
        if (sub == NULL || !is_abs(sub))
            dir_name = comp_dir;
        if (dir_name == NULL) {
            dir_name = sub;
            sub = NULL;
        }
        if (dir_name != NULL) {
            n = strlen(dir_name) + 1 + (sub ? strlen(sub) + 1 : 0) + strlen(name);
            if (out) {
                char *p = out;
                size_t l = strlen(dir_name);
                memcpy(p, dir_name, l);
                p += l;
                *p++ = '/';
                if (sub) {
                    l = strlen(sub);
                    memcpy(p, sub, l);
                    p += l;
                    *p++ = '/';
                }
                memcpy(p, name, strlen(name));
            }
            return n;
        }
    }
    n = strlen(name);
    if (out)
        memcpy(out, name, n);
    return n;
unknown:
    if (out)
        memcpy(out, "<unknown>", 9);
    return 9;
}

/* Builds u->files: index f is the name of file register value f; the last
 * entry is "<unknown>" for values out of range. One allocation holds the
 * pointer array and the strings. */
static int build_files(struct sym_unit *u, const struct lt *t)
{
    size_t n = (t->v5 ? t->n_files : t->n_files + 1) + 1, total = 0, i;
    char **files, *p;
    for (i = 0; i + 1 < n; i++)
        total += join_name(t, u->comp_dir, i, NULL) + 1;
    total += 10;
    files = repro_malloc(n * sizeof *files + total);
    if (files == NULL)
        return REPRO_E_NOMEM;
    p = (char *)(files + n);
    for (i = 0; i < n; i++) {
        size_t l;
        if (i + 1 < n) {
            l = join_name(t, u->comp_dir, i, p);
        } else {
            l = 9;
            memcpy(p, "<unknown>", 9);
        }
        p[l] = '\0';
        files[i] = l ? p : NULL; /* binutils drops empty names */
        p += l + 1;
    }
    u->files = files;
    u->n_files = n;
    return REPRO_OK;
}

static int emit(struct lt *t, uint64_t addr, uint64_t file, uint32_t line, uint32_t col,
                uint32_t disc, int end, size_t seq_begin)
{
    struct raw_row *last = t->n_rows > seq_begin ? &t->rows[t->n_rows - 1] : NULL;
    int rc;
    if (last != NULL && last->addr == addr && last->end == (uint8_t)end) {
        /* binutils keeps only the last row of an address (PR ld/4986) */
        last->file = file > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)file;
        last->line = line;
        last->column = col;
        last->discriminator = disc;
        return REPRO_OK;
    }
    rc = repro__grow((void **)&t->rows, &t->cap_rows, t->n_rows + 1, sizeof *t->rows,
                     SYM_MAX_UNIT_ROWS);
    if (rc != REPRO_OK)
        return rc;
    last = &t->rows[t->n_rows++];
    last->addr = addr;
    last->file = file > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)file;
    last->line = line;
    last->column = col;
    last->discriminator = disc;
    last->end = (uint8_t)end;
    return REPRO_OK;
}

static int cmp_raw_row(const void *a, const void *b)
{
    const struct raw_row *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return x < y ? -1 : x > y; /* not reached for distinct rows of a deduplicated run */
}

static int close_seq(struct lt *t, size_t begin)
{
    struct seq *s;
    size_t i;
    int sorted = 1, rc;
    for (i = begin + 1; i < t->n_rows; i++)
        if (t->rows[i].addr < t->rows[i - 1].addr)
            sorted = 0;
    if (!sorted) /* rare: compilers emit increasing addresses */
        qsort(t->rows + begin, t->n_rows - begin, sizeof *t->rows, cmp_raw_row);
    rc = repro__grow((void **)&t->seqs, &t->cap_seqs, t->n_seqs + 1, sizeof *t->seqs,
                     SYM_MAX_UNIT_ROWS);
    if (rc != REPRO_OK)
        return rc;
    s = &t->seqs[t->n_seqs];
    s->begin = begin;
    s->n = t->n_rows - begin;
    s->low = t->rows[begin].addr;
    s->high = t->rows[t->n_rows - 1].addr;
    s->order = t->n_seqs;
    t->n_seqs++;
    return REPRO_OK;
}

static int cmp_seq(const void *a, const void *b)
{
    const struct seq *x = a, *y = b;
    if (x->low != y->low)
        return x->low < y->low ? -1 : 1;
    if (x->high != y->high)
        return x->high > y->high ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static int run_program(const struct repro_sym_module *m, const struct sym_unit *u,
                       struct dw_cur *c, struct lt *t, const uint8_t *std_len, uint8_t opcode_base,
                       uint8_t min_inst, int8_t line_base, uint8_t line_range)
{
    int rc;
    (void)m;
    while (c->p < c->end) {
        /* binutils starts a DWARF 5 sequence with file entry 0, not 1 (the
         * DWARF default): a sequence without DW_LNS_set_file names entry 0 */
        uint64_t addr = 0, file = t->v5 ? 0 : 1;
        uint32_t line = 1, col = 0, disc = 0;
        size_t begin = t->n_rows;
        int end = 0;
        while (!end && c->p < c->end) {
            uint8_t op = dw_u8(c);
            if (op >= opcode_base) {
                unsigned adj = op - opcode_base;
                addr += (uint64_t)(adj / line_range) * min_inst;
                line += (uint32_t)(line_base + (int)(adj % line_range));
                rc = emit(t, addr, file, line, col, disc, 0, begin);
                if (rc != REPRO_OK)
                    return rc;
                disc = 0;
                continue;
            }
            switch (op) {
            case 0: {
                uint64_t len = dw_uleb(c);
                const uint8_t *next;
                uint8_t sub;
                if (c->bad || len == 0 || len > (uint64_t)(c->end - c->p))
                    return REPRO_E_MALFORMED;
                next = c->p + len;
                sub = dw_u8(c);
                switch (sub) {
                case DW_LNE_end_sequence:
                    rc = emit(t, addr, file, line, col, disc, 1, begin);
                    if (rc == REPRO_OK)
                        rc = close_seq(t, begin);
                    if (rc != REPRO_OK)
                        return rc;
                    end = 1;
                    break;
                case DW_LNE_set_address:
                    addr = dw_fixed(c, len - 1 >= 1 && len - 1 <= 8 ? (unsigned)(len - 1)
                                                                      : u->addr_size);
                    break;
                case DW_LNE_define_file:
                    if (!t->v5) {
                        const char *name = dw_cstr(c);
                        uint64_t dir = dw_uleb(c);
                        if (!c->bad) {
                            rc = add_file_v4(t, name, dir);
                            if (rc != REPRO_OK)
                                return rc;
                        }
                    }
                    break;
                case DW_LNE_set_discriminator:
                    disc = (uint32_t)dw_uleb(c);
                    break;
                default:
                    break;
                }
                c->p = next;
                break;
            }
            case DW_LNS_copy:
                rc = emit(t, addr, file, line, col, disc, 0, begin);
                if (rc != REPRO_OK)
                    return rc;
                disc = 0;
                break;
            case DW_LNS_advance_pc:
                addr += dw_uleb(c) * min_inst;
                break;
            case DW_LNS_advance_line:
                line += (uint32_t)dw_sleb(c);
                break;
            case DW_LNS_set_file:
                file = dw_uleb(c);
                break;
            case DW_LNS_set_column:
                col = (uint32_t)dw_uleb(c);
                break;
            case DW_LNS_negate_stmt: case DW_LNS_set_basic_block:
            case DW_LNS_set_prologue_end: case DW_LNS_set_epilogue_begin:
                break;
            case DW_LNS_const_add_pc:
                addr += (uint64_t)min_inst * ((255u - opcode_base) / line_range);
                break;
            case DW_LNS_fixed_advance_pc:
                addr += dw_fixed(c, 2);
                break;
            default: {
                unsigned k;
                for (k = 0; k < std_len[op - 1]; k++)
                    (void)dw_uleb(c);
                break;
            }
            }
            if (c->bad)
                return REPRO_E_MALFORMED;
        }
        if (!end) /* a sequence without its end row is dropped */
            t->n_rows = begin;
    }
    return REPRO_OK;
}

/* Flattens the sorted, trimmed sequences into u->rows. */
static int flatten(struct sym_unit *u, struct lt *t)
{
    size_t i, n = 0, cap = 0, kept = 0;
    uint64_t last_high = 0;
    struct sym_row *out = NULL;
    int rc;

    if (t->n_seqs > 1)
        qsort(t->seqs, t->n_seqs, sizeof *t->seqs, cmp_seq);
    for (i = 0; i < t->n_seqs; i++) {
        struct seq *s = &t->seqs[i];
        size_t k;
        if (kept > 0 && s->low < last_high) {
            if (s->high <= last_high)
                continue; /* nested: dropped */
            s->low = last_high; /* overlapping: trimmed */
        }
        if (s->low >= s->high) {
            last_high = s->high > last_high ? s->high : last_high;
            kept++;
            continue;
        }
        last_high = s->high;
        kept++;
        /* the row in effect at s->low */
        k = s->begin;
        while (k + 1 < s->begin + s->n - 1 && t->rows[k + 1].addr <= s->low)
            k++;
        for (; k < s->begin + s->n; k++) {
            const struct raw_row *r = &t->rows[k];
            uint64_t lo = r->addr < s->low ? s->low : r->addr;
            struct sym_row *o;
            if (n > 0 && out[n - 1].addr == lo)
                n--; /* a gap (or an empty row) replaced by what starts here */
            rc = repro__grow((void **)&out, &cap, n + 1, sizeof *out, SYM_MAX_UNIT_ROWS);
            if (rc != REPRO_OK) {
                repro_free(out);
                return rc;
            }
            o = &out[n++];
            o->addr = lo;
            if (r->end || k == s->begin + s->n - 1) {
                o->file = SYM_GAP;
                o->line = o->column = o->discriminator = 0;
            } else {
                size_t nf = u->n_files;
                o->file = r->file < nf - 1 ? r->file : (uint32_t)(nf - 1);
                o->line = r->line;
                o->column = r->column;
                o->discriminator = r->discriminator;
            }
        }
    }
    if (n == 0 || out[n - 1].file != SYM_GAP) {
        rc = repro__grow((void **)&out, &cap, n + 1, sizeof *out, SYM_MAX_UNIT_ROWS);
        if (rc != REPRO_OK) {
            repro_free(out);
            return rc;
        }
        out[n].addr = n ? out[n - 1].addr + 1 : 0;
        out[n].file = SYM_GAP;
        out[n].line = out[n].column = out[n].discriminator = 0;
        n++;
    }
    u->rows = out;
    u->n_rows = n;
    return REPRO_OK;
}

int repro__line_build(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err)
{
    struct lt t;
    struct dw_cur c;
    uint64_t len, hdr_len;
    unsigned osz = 4;
    uint16_t version;
    uint8_t min_inst, line_range, opcode_base;
    int8_t line_base;
    const uint8_t *std_len, *prog;
    int rc = REPRO_E_MALFORMED;

    memset(&t, 0, sizeof t);
    if (!u->has_stmt_list || m->dw.line.data == NULL) {
        /* no line table: every file register maps to "<unknown>" */
        rc = build_files(u, &t);
        if (rc == REPRO_OK)
            rc = flatten(u, &t);
        lt_release(&t);
        return rc == REPRO_OK ? rc : repro_error_set(err, rc, "out of memory building lines");
    }
    if (u->stmt_list >= m->dw.line.len)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "line table offset 0x%llx is out of bounds",
                               (unsigned long long)u->stmt_list);
    c.p = m->dw.line.data + u->stmt_list;
    c.end = m->dw.line.data + m->dw.line.len;
    c.bad = 0;
    len = dw_fixed(&c, 4);
    if (len == 0xffffffffu) {
        len = dw_fixed(&c, 8);
        osz = 8;
    }
    if (c.bad || len > (uint64_t)(c.end - c.p))
        goto malformed;
    c.end = c.p + len;
    version = (uint16_t)dw_fixed(&c, 2);
    if (version < 2 || version > 5)
        goto malformed;
    t.v5 = version >= 5;
    if (t.v5) {
        (void)dw_u8(&c); /* address size */
        (void)dw_u8(&c); /* segment selector size */
    }
    hdr_len = dw_fixed(&c, osz);
    if (c.bad || hdr_len > (uint64_t)(c.end - c.p))
        goto malformed;
    prog = c.p + hdr_len;
    min_inst = dw_u8(&c);
    if (version >= 4)
        (void)dw_u8(&c); /* maximum operations per instruction */
    (void)dw_u8(&c);     /* default_is_stmt */
    line_base = (int8_t)dw_u8(&c);
    line_range = dw_u8(&c);
    opcode_base = dw_u8(&c);
    if (c.bad || line_range == 0 || opcode_base == 0)
        goto malformed;
    std_len = c.p;
    dw_skip(&c, opcode_base - 1u);
    if (c.bad)
        goto malformed;
    {
        /* the program's cursor must not read the header as its own */
        struct sym_unit hu;
        /* field by field: u->state may be touched by other threads */
        memset(&hu, 0, sizeof hu);
        hu.off = u->off;
        hu.end = u->end;
        hu.die_off = u->die_off;
        hu.abbrev_off = u->abbrev_off;
        hu.version = u->version;
        hu.addr_size = u->addr_size;
        hu.unit_type = u->unit_type;
        hu.lang = u->lang;
        hu.comp_dir = u->comp_dir;
        hu.base_addr = u->base_addr;
        hu.str_offsets_base = u->str_offsets_base;
        hu.addr_base = u->addr_base;
        hu.rnglists_base = u->rnglists_base;
        hu.has_rnglists_base = u->has_rnglists_base;
        hu.abbrevs = u->abbrevs;
        hu.offset_size = (uint8_t)osz;
        if (t.v5) {
            rc = read_v5_entries(m, &hu, &c, &t, 0);
            if (rc == REPRO_OK)
                rc = read_v5_entries(m, &hu, &c, &t, 1);
            if (rc != REPRO_OK)
                goto fail;
        } else {
            for (;;) {
                const char *d = dw_cstr(&c);
                if (c.bad)
                    goto malformed;
                if (*d == '\0')
                    break;
                rc = repro__grow((void **)&t.dirs, &t.cap_dirs, t.n_dirs + 1, sizeof *t.dirs,
                                 SYM_MAX_FILES);
                if (rc != REPRO_OK)
                    goto fail;
                t.dirs[t.n_dirs++] = d;
            }
            for (;;) {
                const char *f = dw_cstr(&c);
                uint64_t dir;
                if (c.bad)
                    goto malformed;
                if (*f == '\0')
                    break;
                dir = dw_uleb(&c);
                (void)dw_uleb(&c);
                (void)dw_uleb(&c);
                rc = add_file_v4(&t, f, dir);
                if (rc != REPRO_OK)
                    goto fail;
            }
        }
    }
    if (c.bad)
        goto malformed;
    c.p = prog;
    rc = run_program(m, u, &c, &t, std_len, opcode_base, min_inst, line_base, line_range);
    if (rc != REPRO_OK)
        goto fail;
    rc = build_files(u, &t);
    if (rc != REPRO_OK)
        goto fail;
    rc = flatten(u, &t);
    if (rc != REPRO_OK)
        goto fail;
    lt_release(&t);
    return REPRO_OK;
malformed:
    rc = REPRO_E_MALFORMED;
fail:
    lt_release(&t);
    repro_free(u->files);
    u->files = NULL;
    u->n_files = 0;
    if (rc == REPRO_E_MALFORMED)
        return repro_error_set(err, rc, "malformed line table at .debug_line+0x%llx",
                               (unsigned long long)u->stmt_list);
    return repro_error_set(err, rc, "out of memory decoding the line table at .debug_line+0x%llx",
                           (unsigned long long)u->stmt_list);
}
