/*
 * Private to symbolize/: the structures of a module's address index and the
 * functions the files of the component share (repro__ prefix). Nothing
 * outside symbolize/ includes this header.
 *
 * Invariants (asserted by tests/unit/test_symbolize.c):
 *  - module->sections: SHF_ALLOC sections in section-header order.
 *  - a symtab's syms are sorted by (shndx, value, order); order is the
 *    index in the ELF table, so equal values keep table order.
 *  - module->uranges sorted by lo; hi_max[i] = max(hi[0..i]).
 *  - unit->segs sorted by strictly increasing lo; each covers [lo, next lo);
 *    the last one is a gap (func == SYM_NONE).
 *  - unit->rows sorted by strictly increasing addr; the last one is a gap
 *    (file == SYM_GAP).
 *  - funcs[i].parent < i (a caller precedes its inlined callees).
 */
#ifndef REPRO_SYM_INTERNAL_H
#define REPRO_SYM_INTERNAL_H

#include <gelf.h>
#include <libelf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "repro/symbolize.h"

#define SYM_NONE UINT32_MAX
#define SYM_GAP UINT32_MAX

/* Caps on what one unit may hold (file input is bounded, not trusted). */
#define SYM_MAX_UNIT_FUNCS (1u << 24)
#define SYM_MAX_UNIT_ROWS (1u << 26)
#define SYM_MAX_FILES (1u << 20)
#define SYM_MAX_DEPTH 4096
#define SYM_MAX_RANGES (1u << 24)

/* ---- bounds-checked reading --------------------------------------------- */

/* A read cursor over [p, end). Any read past end sets bad and returns 0;
 * callers check bad once after a group of reads. */
struct dw_cur {
    const uint8_t *p;
    const uint8_t *end;
    int bad;
};

static inline uint8_t dw_u8(struct dw_cur *c)
{
    if (c->p >= c->end) {
        c->bad = 1;
        return 0;
    }
    return *c->p++;
}

static inline uint64_t dw_fixed(struct dw_cur *c, unsigned n)
{
    uint64_t v = 0;
    unsigned i;
    if ((size_t)(c->end - c->p) < n) {
        c->bad = 1;
        c->p = c->end;
        return 0;
    }
    for (i = 0; i < n; i++)
        v |= (uint64_t)c->p[i] << (8 * i); /* little-endian (x86-64, aarch64) */
    c->p += n;
    return v;
}

static inline uint64_t dw_uleb(struct dw_cur *c)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (c->p < c->end) {
        uint8_t b = *c->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if ((b & 0x80) == 0)
            return v;
    }
    c->bad = 1;
    return 0;
}

static inline int64_t dw_sleb(struct dw_cur *c)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (c->p < c->end) {
        b = *c->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if ((b & 0x80) == 0) {
            if (shift < 64 && (b & 0x40))
                v |= ~(uint64_t)0 << shift;
            return (int64_t)v;
        }
    }
    c->bad = 1;
    return 0;
}

static inline void dw_skip(struct dw_cur *c, uint64_t n)
{
    if ((uint64_t)(c->end - c->p) < n) {
        c->bad = 1;
        c->p = c->end;
        return;
    }
    c->p += n;
}

/* A NUL-terminated string at c; NULL (and bad) if unterminated. */
static inline const char *dw_cstr(struct dw_cur *c)
{
    const uint8_t *z = memchr(c->p, 0, (size_t)(c->end - c->p));
    const char *s = (const char *)c->p;
    if (z == NULL) {
        c->bad = 1;
        c->p = c->end;
        return NULL;
    }
    c->p = z + 1;
    return s;
}

/* ---- DWARF sections and units ----------------------------------------- */

struct dw_section {
    const uint8_t *data;
    size_t len;
};

struct dw_sections {
    struct dw_section info, abbrev, line, str, line_str, ranges, rnglists, addr, str_offsets,
        aranges;
};

/* String at offset off of a string section; NULL when out of bounds or
 * unterminated. */
const char *repro__dw_str_at(const struct dw_section *s, uint64_t off);

/* 8 bytes (a table of libc's 309,000 specs is 2.5 MB, not 4.9): the
 * value of DW_FORM_implicit_const is ival when it fits (about always);
 * IVAL_WIDE says it is in the table's wide[] (see repro__attr_read). */
#define DW_IVAL_WIDE INT32_MIN
struct dw_attrspec {
    uint16_t name;
    uint16_t form;
    int32_t ival;
};

struct dw_abbrev {
    uint16_t tag;
    uint8_t has_children;
    uint8_t interesting;   /* subprogram, inlined subroutine, entry point */
    uint32_t n_attrs;
    int32_t fixed_size;    /* bytes of all attributes when constant, else -1 */
    struct dw_attrspec *attrs;
};

/* Abbreviations of one table. Codes 1..n_direct index direct[code-1];
 * others (rare) live in sparse, sorted by code. */
struct dw_abbrev_table {
    struct dw_abbrev *direct;
    size_t n_direct;
    struct dw_abbrev *sparse;
    uint64_t *sparse_codes;
    size_t n_sparse;
    struct dw_attrspec *attr_pool;
    size_t n_attr_pool;
    /* implicit constants that do not fit in ival: by attr_pool index */
    uint64_t *wide_at;
    int64_t *wide;
    size_t n_wide;
};

struct sym_func {
    const char *name;               /* raw (mangled) or NULL */
    const char *call_file;          /* owned by the unit's file table, or NULL */
    _Atomic(const char *) demangled; /* cache: NULL = not yet; == name when it does not demangle */
    uint64_t low;                   /* binutils' arange.low: first range's low */
    uint32_t parent;                /* enclosing function (inlined only), else SYM_NONE */
    uint32_t call_line;
    uint32_t call_column;
    uint8_t inlined;
    uint8_t is_linkage;
    /* binutils history (REPRO_SYM_BINUTILS): once named through the symbol
     * table, binutils marks the function as having a linkage name and, when
     * the symbol starts where the function does, renames it */
    _Atomic uint8_t bu_done;
    _Atomic(const struct sym_elfsym *) bu_sym;
};

struct sym_seg {
    uint64_t lo;
    uint32_t func; /* SYM_NONE: no function */
};

struct sym_row {
    uint64_t addr;
    uint32_t file; /* index into unit->files; SYM_GAP: no line here */
    uint32_t line;
    uint32_t column;
    uint32_t discriminator;
};

/* A bucket index over a sorted array of 64-bit keys (addresses): bucket i
 * covers [base + (i << shift), base + ((i + 1) << shift)) and holds the
 * first element whose key is >= its start, so a search only has to look
 * between two neighbouring buckets' entries: a cache line or two instead
 * of every level of a binary search over the whole array (random
 * addresses miss the cache at nearly every level). first == NULL: no
 * index (small array or no memory), plain binary search. */
struct sym_bkt {
    uint64_t base;
    uint32_t *first;
    uint32_t n;
    uint8_t shift;
};
/* Builds b over n elements of stride bytes whose key is the uint64_t at
 * byte offset off (b is left empty when it would not pay or on ENOMEM). */
void repro__bkt_build(struct sym_bkt *b, const void *arr, size_t n, size_t stride, size_t off);
void repro__bkt_free(struct sym_bkt *b);
/* Number of keys[0..n) <= addr through b (built over keys, stride 8):
 * for tests of the bucket search. */
size_t repro__bkt_count_u64(const struct sym_bkt *b, const uint64_t *keys, size_t n,
                            uint64_t addr);

/* unit states: NEW → BUILDING (claimed by one thread) → BUILT or FAILED
 * (or back to NEW when memory ran out) */
enum { UNIT_NEW = 0, UNIT_BUILT = 1, UNIT_FAILED = 2, UNIT_BUILDING = 3 };
enum { DIE_NEW = 0, DIE_READ = 1, DIE_BAD = 2, DIE_READING = 3 };

struct sym_unit {
    /* index, valid once state == UNIT_BUILT; what a lookup reads comes
     * first (two cache lines: the lookup prefetches them) */
    _Atomic int state;
    struct sym_seg *segs;
    size_t n_segs;
    struct sym_row *rows;
    size_t n_rows;
    struct sym_bkt seg_bkt, row_bkt; /* over segs[].lo and rows[].addr */
    struct sym_func *funcs;
    char **files;        /* binutils-joined names; entries may be NULL */
    /* the unit as read */
    uint64_t off;        /* unit header offset in .debug_info */
    uint64_t end;        /* offset past the unit */
    uint64_t die_off;    /* offset of the unit DIE */
    uint64_t abbrev_off;
    uint8_t version;
    uint8_t addr_size;
    uint8_t offset_size;
    uint8_t unit_type;
    /* the unit DIE (read by the thread that claims it in
     * repro__unit_read_die, then published): DIE_NEW, DIE_READING,
     * DIE_READ, DIE_BAD; the fields below up to abbrevs are valid once
     * die_read == DIE_READ, read with acquire */
    _Atomic uint8_t die_read;
    uint8_t has_stmt_list;
    uint8_t has_ranges;
    uint16_t lang;
    const char *comp_dir;
    uint64_t stmt_list;
    uint64_t base_addr;  /* DW_AT_low_pc, base of range lists */
    uint64_t ranges_off; /* DW_AT_ranges (resolved to a section offset) */
    uint64_t low_pc, high_pc;
    uint64_t str_offsets_base, addr_base, rnglists_base;
    uint8_t has_rnglists_base;
    struct dw_abbrev_table *abbrevs; /* lazily */
    /* binutils has decoded this unit (REPRO_SYM_BINUTILS): its line
     * sequences and function ranges now count as the unit's range */
    _Atomic uint8_t bu_touched;
    uint64_t ext_lo, ext_hi; /* bounds of everything rows and segs cover */
    size_t n_funcs;
    size_t n_files;
};

struct pre_batch; /* addr_index.c */



struct sym_urange {
    uint64_t lo, hi;
    uint64_t hi_max; /* running maximum of hi over [0..i] */
    uint32_t unit;
};

/* ---- ELF symbols (the binutils fallback) ------------------------------ */

struct sym_elfsym {
    uint64_t value;
    uint64_t size;      /* st_size, 1 when 0 (as bfd) */
    const char *name;
    const char *file;   /* the STT_FILE binutils attaches, or NULL */
    _Atomic(const char *) demangled;
    uint32_t order;
    uint32_t shndx;
    uint8_t is_func;    /* STT_FUNC or STT_GNU_IFUNC */
    uint8_t is_notype;
};

struct sym_symtab {
    struct sym_elfsym *syms;
    size_t n;
    char *names;        /* owned copies for versioned dynamic names */
};

/* Loads the function-like symbols of elf (SHT_SYMTAB, or SHT_DYNSYM when
 * want_dynsym) into t. Returns REPRO_OK, REPRO_E_NOTFOUND (no such table),
 * REPRO_E_NOMEM. */
int repro__symtab_load(struct sym_symtab *t, Elf *elf, int want_dynsym, struct repro_error *err);
void repro__symtab_release(struct sym_symtab *t);
/* binutils _bfd_elf_find_function for (shndx, addr), using and updating the
 * cache in r. Returns the symbol or NULL. */
const struct sym_elfsym *repro__symtab_find(const struct sym_symtab *t, int table_id,
                                            uint32_t shndx, uint64_t addr,
                                            struct repro_sym_result *r);

/* ---- modules and sessions --------------------------------------------- */

/* One compressed section to inflate (dw_inflate.c): src/src_len the
 * deflate stream with its zlib header, dst a buffer of dst_len bytes (the
 * size announced) allocated by the caller; failed is set when the stream
 * does not inflate to exactly dst_len bytes. */
struct repro__dw_zjob {
    const uint8_t *src;
    size_t src_len;
    uint8_t *dst;
    size_t dst_len;
    struct dw_section *slot;
    Elf_Scn *scn;
    const char *name;
    int gnu;     /* .zdebug_* */
    int failed;
};
struct repro__dw_zpool {
    struct repro__dw_zjob *jobs;
    size_t n;
    _Atomic size_t next;
    pthread_t th[3];
    size_t n_th;
    void (*after)(void *ctx);
    void *after_ctx;
    _Atomic int after_claimed;
};
/* Inflates jobs (reordered: biggest first) on up to one thread per core:
 * the calling thread inflates the biggest, helpers the others; after(ctx)
 * (may be NULL) runs once on whichever thread runs out of jobs first (it
 * must not touch what the jobs write). start returns once the calling
 * thread finds no job left to take (helpers may still run); finish waits
 * for them. */
void repro__dw_inflate_start(struct repro__dw_zpool *p, struct repro__dw_zjob *jobs, size_t n,
                             void (*after)(void *ctx), void *ctx);
void repro__dw_inflate_finish(struct repro__dw_zpool *p);


struct sym_section {
    uint64_t addr, size;
    uint32_t shndx;
    const char *name;
};

struct repro_sym_module {
    struct repro_sym_session *session;
    struct repro_sym_module *next;
    char *path;
    char *debug_path;       /* file holding the DWARF, NULL when none */
    uint8_t build_id[64];
    size_t build_id_len;
    int fd, dbg_fd;
    Elf *elf, *dbg_elf;     /* dbg_elf == elf when the DWARF is in the file */
    struct sym_section *sections;
    size_t n_sections;
    struct sym_symtab symtab_main;   /* .symtab, else .dynsym */
    struct sym_symtab symtab_dbg;    /* the debug file's .symtab */
    int dbg_sections_match;          /* debug file section headers mirror the file's */
    struct dw_sections dw;
    uint8_t **dw_bufs;      /* sections repro inflated itself */
    size_t n_dw_bufs;
    /* at open, when sections are inflated: the symbol tables load as the
     * inflate pool's after task, which leaves its result here */
    int symtab_rc;
    struct repro_error symtab_err;
    size_t n_zjobs;
    struct repro__dw_zpool zpool;
    int has_dwarf;
    struct sym_unit *units;
    size_t n_units;
    struct sym_urange *uranges;
    size_t n_uranges;
    struct sym_bkt urange_bkt; /* over uranges[].hi_max */
    pthread_mutex_t *lock;  /* the session's */
    /* waiting for a unit another thread builds: ucond is broadcast when a
     * unit leaves UNIT_BUILDING while n_waiters > 0 */
    pthread_mutex_t ulock;
    pthread_cond_t ucond;
    int ulock_init;
    _Atomic unsigned n_waiters;
    /* workers (repro_sym_module_build_background): they help with the
     * batch of repro_sym_module_lookup_each() in progress, else build the
     * units in .debug_info order, else wait on wcond (under ulock) */
    pthread_t bg_th[3];
    size_t n_bg;
    int bg_started;
    _Atomic int bg_stop;
    _Atomic size_t bg_next;
    pthread_cond_t wcond;      /* a batch was published, a worker left one, or stop */
    struct pre_batch *batch;   /* the batch workers may help with (ulock) */
    unsigned batch_refs;       /* workers inside it (ulock) */
    /* stats */
    uint64_t open_t0;       /* repro_mono_ns() when the open began */
    _Atomic uint64_t index_ns; /* open start → every unit built; 0 until then */
    uint64_t open_ns;
    _Atomic uint64_t units_ns;
    _Atomic size_t n_built, n_failed, n_funcs, n_segs, n_rows, bytes;
    /* at open: sections being inflated (last, so that AddressSanitizer
     * sees a write past it) */
    struct repro__dw_zjob zjobs[16];
};

/* Reads the unit headers of .debug_info into m->units and the unit map
 * (from .debug_aranges when present, else from each unit DIE). */
int repro__units_load(struct repro_sym_module *m, struct repro_error *err);
/* Reads the unit DIE's attributes (idempotent). */
int repro__unit_read_die(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err);
/* The abbreviation table of u (parsed on first use). */
int repro__unit_abbrevs(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err);
const struct dw_abbrev *repro__abbrev_find(const struct dw_abbrev_table *t, uint64_t code);
void repro__abbrevs_free(struct dw_abbrev_table *t);
/* The unit holding .debug_info offset off, or NULL. */
struct sym_unit *repro__unit_at(struct repro_sym_module *m, uint64_t off);

/* One attribute value as read. */
struct dw_attr {
    uint16_t name, form;
    uint64_t u;          /* constants, offsets, addresses, indexes */
    const char *s;       /* strings (NULL when not a string or unreadable) */
    uint8_t is_str, is_int;
};
/* Reads one attribute value of spec at c for unit u (strings and addrx are
 * resolved). Sets c->bad on malformed input. */
void repro__attr_read(const struct repro_sym_module *m, const struct sym_unit *u,
                      const struct dw_attrspec *spec, struct dw_cur *c, struct dw_attr *a);
/* Skips one attribute value of form at c. */
void repro__attr_skip(const struct sym_unit *u, uint16_t form, struct dw_cur *c);

/* Calls fn(lo, hi, ctx) for each range of the list at offset off (a
 * resolved .debug_ranges or .debug_rnglists offset) of unit u.
 * Returns REPRO_OK, REPRO_E_MALFORMED or fn's error. */
int repro__ranges_walk(const struct repro_sym_module *m, const struct sym_unit *u, uint64_t off,
                       int (*fn)(uint64_t lo, uint64_t hi, void *ctx), void *ctx);
/* DW_FORM_rnglistx index → section offset; UINT64_MAX when invalid. */
uint64_t repro__rnglistx(const struct repro_sym_module *m, const struct sym_unit *u, uint64_t idx);

/* Decodes u's line table into u->rows and u->files. */
int repro__line_build(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err);
/* Walks u's DIEs into u->funcs and u->segs (needs u->files). */
int repro__funcs_build(struct repro_sym_module *m, struct sym_unit *u, struct repro_error *err);
/* Frees what a unit's build allocated (its state is left alone). */
void repro__unit_release(struct sym_unit *u);
/* Stops and joins m's background builders (module_free). */
void repro__bg_stop(struct repro_sym_module *m);


/* Whether elf, read from path of file_size bytes, is whole enough to use,
 * by binutils' rules (bfd's elf_object_p): its program header table and
 * its section header table must lie inside the file. Returns REPRO_OK, or
 * REPRO_E_MALFORMED with the reason in why[0..why_len) (a truncated file:
 * "the section header table ends at byte N, past the end of the file (M
 * bytes)"). A section whose contents run past the end is not fatal
 * (binutils warns "has a section extending past end of file" and goes on):
 * the first one is logged as a warning, and the readers treat it as
 * absent. Thread-safe for distinct elf handles. */
int repro__elf_check_extent(Elf *elf, const char *path, uint64_t file_size, char *why,
                            size_t why_len);

/* Opens path read-only as a module or debug file whose name came from a
 * crash record (or from a file such a record named): anything but a
 * regular file is refused before it is opened, so a FIFO cannot hang the
 * caller and no device is opened; the open itself never blocks
 * (O_NONBLOCK), and the descriptor is checked to be the file that was
 * examined. REPRO_OK with *fd_out (transferred: close it);
 * REPRO_E_NOTFOUND when path does not exist; REPRO_E_IO otherwise, with
 * err saying what path is ("cannot open 'x': not a regular file (a
 * FIFO)"). Thread-safe. */
int repro__open_regular(const char *path, int *fd_out, struct repro_error *err);

/* The debug directories of a session (dwfl_session.c owns the session and
 * fills them from its options; debug_find.c searches them). */
struct repro__sym_dirs {
    char **dirs;
    size_t n_dirs;
    int use_dwfl; /* libdwfl's own search (debuginfod included) as a fallback */
};

/* The session's debug directories; borrowed for the session's lifetime.
 * Thread-safe (set once at creation). */
const struct repro__sym_dirs *repro__session_dirs(struct repro_sym_session *s);

/* The session's libdwfl handle, created on first use (Dwfl of
 * <elfutils/libdwfl.h>); NULL when it cannot be made. Borrowed until the
 * session is freed. Call with the session lock held. */
struct Dwfl *repro__session_dwfl(struct repro_sym_session *s);

/* Finds the debug file of m (see repro/symbolize.h). On success sets
 * m->dbg_fd, m->dbg_elf and m->debug_path; REPRO_E_NOTFOUND when there is
 * none (not an error for the caller). */
int repro__debug_find(struct repro_sym_session *s, struct repro_sym_module *m,
                      struct repro_error *err);

/* The demangled form of raw through a module's cache slot (demangle.c);
 * raw itself when it does not demangle. Lock-free. */
const char *repro__demangle_cached(_Atomic(const char *) *slot, const char *raw);

/* Grows *p (of *cap elements of elem bytes) to hold need elements, doubling,
 * never past max: REPRO_OK, REPRO_E_LIMIT or REPRO_E_NOMEM (unchanged). */
int repro__grow(void **p, size_t *cap, size_t need, size_t elem, size_t max);

#endif
