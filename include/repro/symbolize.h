/*
 * repro symbolize: addresses to function, file, line, column and the chain
 * of inlined frames, for ELF modules with DWARF 2-5 debug information.
 *
 * A session (struct repro_sym_session) owns modules. A module is opened
 * once per file and kept, keyed by build-id, for the session's life. Its
 * address index is repro's own: sorted ALLOC sections, the ELF symbol table
 * sorted for the binutils-compatible fallback, and per compilation unit
 * (built lazily, on the first address that falls into the unit) the
 * flattened line table and the function/inline ranges flattened into
 * disjoint segments. A lookup is three binary searches and a walk up the
 * inline chain; it does not allocate.
 *
 * Results follow GNU binutils addr2line (2.40) exactly: same function
 * choice (smallest enclosing DWARF range, else the nearest ELF symbol), the
 * same file name joining (comp_dir, include directory and file name of the
 * line table, DWARF 4 and 5 rules), the same discriminators. docs/symbolize.md
 * lists the rules and the known differences.
 *
 * Debug information is found in the file itself, in build-id trees
 * (DIR/.build-id/xx/rest.debug for each --debug-dir and /usr/lib/debug),
 * through .gnu_debuglink (next to the file, in its .debug/ folder and under
 * each debug directory), and last through libdwfl's standard search (which
 * asks debuginfod when DEBUGINFOD_URLS is set). A candidate whose build-id
 * differs from the module's is refused with a warning.
 *
 * Thread-safety: a session may be used from several threads. Opening
 * modules is serialized by the session's mutex; units are built by one
 * thread each (several units at once), and lookups on a module are
 * lock-free once the unit is built. A struct
 * repro_sym_result belongs to one thread at a time.
 */
#ifndef REPRO_SYMBOLIZE_H
#define REPRO_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "repro/core.h"

struct repro_sym_session;
struct repro_sym_module;

/* Options for a session. All pointers are borrowed for the call to
 * repro_sym_session_new() only (strings are copied). */
struct repro_sym_options {
    /* Extra debug directories holding build-id trees and debuglink
     * mirrors, searched in order before /usr/lib/debug. */
    const char *const *debug_dirs;
    size_t n_debug_dirs;
    /* Non-zero: do not search /usr/lib/debug. */
    int no_default_debug_dir;
    /* Non-zero: do not fall back to libdwfl's standard search (debuginfod). */
    int no_dwfl_fallback;
};

/*
 * Creates a session. opt may be NULL (defaults). On success *out is
 * transferred to the caller: free it with repro_sym_session_free().
 * Returns REPRO_OK or REPRO_E_NOMEM. Thread-safe.
 */
int repro_sym_session_new(struct repro_sym_session **out, const struct repro_sym_options *opt,
                          struct repro_error *err);

/* Frees the session and every module it opened (all borrowed pointers into
 * modules and results become invalid). Accepts NULL. */
void repro_sym_session_free(struct repro_sym_session *s);

/*
 * Opens the ELF file at path (an executable, a shared library or a debug
 * file) and prepares its index: sections, symbol table, the unit map. The
 * debug information is searched as described above. A second open of a file
 * with the same build-id (or, without one, the same path) returns the same
 * module.
 *
 * *out is callee-owned: valid until repro_sym_session_free().
 * Returns REPRO_OK; REPRO_E_NOTFOUND when path does not exist ("no such
 * file"); REPRO_E_IO when it cannot be read; REPRO_E_MALFORMED when it is not
 * an ELF file; REPRO_E_NOMEM. A module without any debug information is not
 * an error: lookups then use the symbol table only (see
 * repro_sym_module_has_dwarf()). Thread-safe.
 */
int repro_sym_session_open(struct repro_sym_session *s, const char *path,
                           struct repro_sym_module **out, struct repro_error *err);

/* Non-zero if the module has DWARF (in the file or a separate debug file).
 * Thread-safe. */
int repro_sym_module_has_dwarf(const struct repro_sym_module *m);

/* The path of the debug file in use, the module's own path when the DWARF
 * is in the file, or NULL. Borrowed: valid for the session's life. */
const char *repro_sym_module_debug_path(const struct repro_sym_module *m);

/* Copies the module's GNU build-id into buf (up to buf_len bytes) and
 * returns its length (0 when the module has none). Thread-safe. */
size_t repro_sym_module_build_id(const struct repro_sym_module *m, uint8_t *buf, size_t buf_len);

/*
 * Builds the index of every unit now instead of on first use (benchmarks,
 * long-running symbolizers), together with the workers when they run.
 * Returns REPRO_OK or REPRO_E_NOMEM; malformed
 * units are skipped (counted in stats). Thread-safe.
 */
int repro_sym_module_build_all(struct repro_sym_module *m, struct repro_error *err);

/*
 * Starts the module's workers: up to one thread per core but one (three at
 * most; none on a single core). They help with the batch of
 * repro_sym_module_lookup_each() in progress, else build the units' index
 * in .debug_info order while lookups go on (a lookup that needs a unit a
 * worker is building waits for it, one that needs a unit nobody has
 * claimed builds it itself), else sleep until a batch comes. Results are
 * the same as with lazy building. Idempotent; the threads are stopped and
 * joined by repro_sym_session_free(). Returns REPRO_OK (also when there is
 * nothing to build) or REPRO_E_NOMEM when no thread could be started
 * (lookups then build lazily). Thread-safe.
 */
int repro_sym_module_build_background(struct repro_sym_module *m, struct repro_error *err);

/* Counters and timings of a module's index. */
struct repro_sym_stats {
    uint64_t open_ns;        /* repro_sym_session_open: files, sections, symbols, unit map */
    uint64_t units_ns;       /* time spent building units so far (summed over threads) */
    uint64_t index_ns;       /* wall time from the start of the open until every unit was
                              * built (0 while some are not) */
    size_t n_units;          /* compilation units */
    size_t n_units_built;
    size_t n_units_failed;   /* units whose DWARF was malformed */
    size_t n_symbols;        /* function-like ELF symbols indexed */
    size_t n_functions;      /* subprogram, entry point and inlined DIEs indexed */
    size_t n_segments;       /* disjoint function segments */
    size_t n_rows;           /* line table rows kept */
    size_t bytes;            /* memory held by the index (approximate) */
};

/* Fills *st. Thread-safe (values may be a moment old). */
void repro_sym_module_stats(const struct repro_sym_module *m, struct repro_sym_stats *st);

/* ---- lookups ---------------------------------------------------------- */

/* Inline chains longer than this are cut (result.truncated is set). */
#define REPRO_SYM_MAX_FRAMES 64

/*
 * One level of the answer. frames[0] is the innermost: the function that
 * holds the code at the address (an inlined one if it was inlined) with the
 * line table's file, line, column and discriminator. frames[k] (k > 0) is
 * the function frames[k-1] was inlined into, with the call site's file,
 * line and column. All strings are borrowed from the module: valid until
 * repro_sym_session_free(). Any of them may be NULL (unknown).
 */
struct repro_sym_frame {
    const char *function;     /* name as recorded (mangled for C++) */
    const char *demangled;    /* demangled name when REPRO_SYM_DEMANGLE was asked and
                               * the name demangles, else equal to function */
    const char *file;         /* file name, joined as binutils joins it */
    uint32_t line;            /* 0: unknown */
    uint32_t column;          /* 0: unknown */
    uint32_t discriminator;   /* line-table discriminator (frames[0] only; binutils
                               * prints it after every level's line) */
    int inlined;              /* non-zero: this frame was inlined into frames[k+1] */
};

/* Lookup outcome. */
enum repro_sym_status {
    REPRO_SYM_NOT_FOUND = 0,  /* not in any ALLOC section, or nothing known: "??:0" */
    REPRO_SYM_FOUND = 1       /* frames[0..n_frames) hold what is known */
};

/*
 * The answer for one address. Caller-owned and reusable: initialise with
 * repro_sym_result_init() once, pass it to any number of lookups on one
 * thread. It also carries the binutils symbol-table cache emulation, so a
 * sequence of lookups gives the same names binutils gives for the same
 * sequence.
 */
struct repro_sym_result {
    uint64_t addr;
    enum repro_sym_status status;
    size_t n_frames;
    int truncated;
    struct repro_sym_frame frames[REPRO_SYM_MAX_FRAMES];
    /* private: binutils' elf_find_function cache */
    const void *priv_cache_sym;
    uint64_t priv_cache_size;
    int priv_cache_table;
};

/* Prepares r for its first lookup. */
void repro_sym_result_init(struct repro_sym_result *r);

/* Lookup flags. */
#define REPRO_SYM_DEMANGLE 0x1u /* fill frames[].demangled (binutils -C) */
/* Reproduce binutils' history-dependent answers (repro addr2line sets it):
 * once binutils has read a unit, the padding after its functions belongs to
 * it; and a function without a linkage name is named by the ELF symbol on
 * its first lookup, then by its DWARF name (or that symbol's, when the
 * symbol starts where the function does). The state lives in the module:
 * lookups with this flag should come from one thread, in input order.
 * Without it, a function's DWARF name is preferred and padding is unknown
 * to DWARF. */
#define REPRO_SYM_BINUTILS 0x2u

/*
 * Symbolizes addr, a module-relative address (the ELF virtual address, as
 * addr2line takes it; for a frame of a running process: pc - load bias, and
 * for every frame but the faulting one, the return address minus one).
 * Fills *r. Builds the unit holding addr on first use (that step may fail
 * for lack of memory: then r says what the symbol table knows and the unit
 * is retried next time). Never allocates once the unit is built.
 * Returns REPRO_OK (also when nothing is known: see r->status) or
 * REPRO_E_NOMEM. Thread-safe for distinct results.
 */
int repro_sym_module_lookup(struct repro_sym_module *m, uint64_t addr, unsigned flags,
                            struct repro_sym_result *r, struct repro_error *err);

/*
 * Symbolizes addrs[0..n) as repro_sym_module_lookup() would one after the
 * other with r, calling emit(ctx, r) for each in input order (stops at the
 * first error emit returns, and returns it). The history-free part of each
 * lookup (section, unit map, the unit's searches, building units) runs on
 * up to one thread per core, in chunks; naming and the binutils history
 * (REPRO_SYM_BINUTILS) are applied on the calling thread in input order,
 * so the answers equal the sequential ones. Starts the module's workers
 * (repro_sym_module_build_background) for a batch of two chunks or more.
 * Small batches, one core or no memory for the batch: one by one on the
 * calling thread.
 * Returns REPRO_OK, REPRO_E_NOMEM or emit's error.
 */
int repro_sym_module_lookup_each(struct repro_sym_module *m, const uint64_t *addrs, size_t n,
                                 unsigned flags, struct repro_sym_result *r,
                                 int (*emit)(void *ctx, const struct repro_sym_result *r),
                                 void *ctx, struct repro_error *err);

/* ---- binutils addr2line output ------------------------------------------ */

#define REPRO_A2L_ADDRESSES 0x01u  /* -a */
#define REPRO_A2L_FUNCTIONS 0x02u  /* -f */
#define REPRO_A2L_INLINES 0x04u    /* -i */
#define REPRO_A2L_PRETTY 0x08u     /* -p */
#define REPRO_A2L_BASENAMES 0x10u  /* -s */
#define REPRO_A2L_DEMANGLE 0x20u   /* -C */

/*
 * Appends r in the exact text binutils addr2line prints for it with the
 * given REPRO_A2L_* flags (every line ends in '\n'). Returns REPRO_OK or the
 * buffer's error (REPRO_E_NOMEM, REPRO_E_LIMIT). Thread-safe.
 */
int repro_sym_format_addr2line(struct repro_buf *out, const struct repro_sym_result *r,
                               unsigned a2l_flags);

/* ---- demangling --------------------------------------------------------- */

/*
 * Demangles name the way binutils' bfd_demangle() does for ELF on x86-64
 * (libiberty cplus_demangle with DMGL_PARAMS | DMGL_ANSI, leading dots and
 * an "@VERSION" suffix kept aside). Returns a string transferred to the
 * caller (free with repro_free()) or NULL when name does not demangle or
 * memory ran out. Thread-safe.
 */
char *repro_sym_demangle(const char *name);

#endif
