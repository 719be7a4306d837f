/*
 * Symbolization sessions: the modules opened so far (one per build-id, or
 * per path for files without one), the debug directories, and the libdwfl
 * offline session used as the last resort of the debug-file search
 * (dwfl_standard_find_debuginfo: debuginfod). Opening a module reads its
 * ELF headers (libelf), finds and decompresses its DWARF sections, loads its
 * symbol tables and reads the unit headers and unit map; units themselves
 * are indexed on first use (addr_index.c).
 *
 * Left out: modules of a live process or core (crash capture hands us
 * module paths, build-ids and offsets), the dwz alternate file, split DWARF.
 */
#include "sym_internal.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct repro_sym_session {
    pthread_mutex_t lock;
    struct repro__sym_dirs d;
    char *debuginfo_path;
    Dwfl_Callbacks cb;
    Dwfl *dwfl;
    struct repro_sym_module *modules;
};

const struct repro__sym_dirs *repro__session_dirs(struct repro_sym_session *s)
{
    return &s->d;
}

/* Called with the session lock held. */
Dwfl *repro__session_dwfl(struct repro_sym_session *s)
{
    if (s->dwfl == NULL) {
        s->cb.find_elf = dwfl_build_id_find_elf;
        s->cb.find_debuginfo = dwfl_standard_find_debuginfo;
        s->cb.section_address = dwfl_offline_section_address;
        s->cb.debuginfo_path = &s->debuginfo_path;
        s->dwfl = dwfl_begin(&s->cb);
        if (s->dwfl == NULL)
            repro_log(REPRO_LOG_WARN, "symbolize", "cannot start libdwfl: %s", dwfl_errmsg(-1));
    }
    return s->dwfl;
}

int repro_sym_session_new(struct repro_sym_session **out, const struct repro_sym_options *opt,
                          struct repro_error *err)
{
    struct repro_sym_session *s;
    size_t n = 0, i, len = 8;

    *out = NULL;
    elf_version(EV_CURRENT);
    s = repro_calloc(1, sizeof *s);
    if (s == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory creating a symbolizer");
    if (opt != NULL)
        n = opt->n_debug_dirs;
    s->d.dirs = repro_calloc(n + 1, sizeof *s->d.dirs);
    if (s->d.dirs == NULL)
        goto nomem;
    for (i = 0; i < n; i++) {
        s->d.dirs[s->d.n_dirs] = repro_strdup(opt->debug_dirs[i]);
        if (s->d.dirs[s->d.n_dirs] == NULL)
            goto nomem;
        len += strlen(opt->debug_dirs[i]) + 1;
        s->d.n_dirs++;
    }
    if (opt == NULL || !opt->no_default_debug_dir) {
        s->d.dirs[s->d.n_dirs] = repro_strdup("/usr/lib/debug");
        if (s->d.dirs[s->d.n_dirs] == NULL)
            goto nomem;
        len += 16;
        s->d.n_dirs++;
    }
    s->d.use_dwfl = opt == NULL || !opt->no_dwfl_fallback;
    /* libdwfl's path: the file's folder, its .debug/, then our directories;
     * '-' skips the CRC check (build-ids are checked instead) */
    s->debuginfo_path = repro_malloc(len + 16);
    if (s->debuginfo_path == NULL)
        goto nomem;
    strcpy(s->debuginfo_path, "-:.debug");
    for (i = 0; i < s->d.n_dirs; i++) {
        strcat(s->debuginfo_path, ":");
        strcat(s->debuginfo_path, s->d.dirs[i]);
    }
    if (pthread_mutex_init(&s->lock, NULL) != 0)
        goto nomem;
    *out = s;
    return REPRO_OK;
nomem:
    for (i = 0; s->d.dirs && i < s->d.n_dirs; i++)
        repro_free(s->d.dirs[i]);
    repro_free(s->d.dirs);
    repro_free(s->debuginfo_path);
    repro_free(s);
    return repro_error_set(err, REPRO_E_NOMEM, "out of memory creating a symbolizer");
}

void repro__unit_release(struct sym_unit *u)
{
    size_t i;
    for (i = 0; i < u->n_funcs; i++) {
        const char *d = atomic_load(&u->funcs[i].demangled);
        if (d != NULL && d != u->funcs[i].name)
            repro_free((void *)d);
    }
    repro_free(u->funcs);
    repro_free(u->segs);
    repro_free(u->rows);
    repro_free(u->files);
    repro__bkt_free(&u->seg_bkt);
    repro__bkt_free(&u->row_bkt);
    u->funcs = NULL;
    u->segs = NULL;
    u->rows = NULL;
    u->files = NULL;
    u->n_funcs = u->n_segs = u->n_rows = u->n_files = 0;
}

static void symtab_free_demangled(struct sym_symtab *t)
{
    size_t i;
    for (i = 0; i < t->n; i++) {
        const char *d = atomic_load(&t->syms[i].demangled);
        if (d != NULL && d != t->syms[i].name)
            repro_free((void *)d);
    }
}

static void module_free(struct repro_sym_module *m)
{
    size_t i;
    if (m == NULL)
        return;
    repro__bg_stop(m);
    for (i = 0; i < m->n_units; i++) {
        repro__unit_release(&m->units[i]);
        repro__abbrevs_free(m->units[i].abbrevs);
    }
    repro_free(m->units);
    repro_free(m->uranges);
    repro__bkt_free(&m->urange_bkt);
    symtab_free_demangled(&m->symtab_main);
    symtab_free_demangled(&m->symtab_dbg);
    repro__symtab_release(&m->symtab_main);
    repro__symtab_release(&m->symtab_dbg);
    repro_free(m->sections);
    for (i = 0; i < m->n_dw_bufs; i++)
        repro_free(m->dw_bufs[i]);
    repro_free(m->dw_bufs);
    if (m->dbg_elf != NULL && m->dbg_elf != m->elf)
        elf_end(m->dbg_elf);
    if (m->dbg_fd >= 0 && m->dbg_fd != m->fd)
        close(m->dbg_fd);
    if (m->elf != NULL)
        elf_end(m->elf);
    if (m->fd >= 0)
        close(m->fd);
    repro_free(m->debug_path);
    repro_free(m->path);
    if (m->ulock_init) {
        pthread_cond_destroy(&m->wcond);
        pthread_cond_destroy(&m->ucond);
        pthread_mutex_destroy(&m->ulock);
    }
    repro_free(m);
}

void repro_sym_session_free(struct repro_sym_session *s)
{
    size_t i;
    if (s == NULL)
        return;
    while (s->modules != NULL) {
        struct repro_sym_module *m = s->modules;
        s->modules = m->next;
        module_free(m);
    }
    if (s->dwfl != NULL)
        dwfl_end(s->dwfl);
    for (i = 0; i < s->d.n_dirs; i++)
        repro_free(s->d.dirs[i]);
    repro_free(s->d.dirs);
    repro_free(s->debuginfo_path);
    pthread_mutex_destroy(&s->lock);
    repro_free(s);
}

/* ---- opening a module ---------------------------------------------------- */

static int load_sections(struct repro_sym_module *m, struct repro_error *err)
{
    size_t shnum, shstrndx, k = 0;
    Elf_Scn *scn = NULL;
    if (elf_getshdrnum(m->elf, &shnum) != 0 || elf_getshdrstrndx(m->elf, &shstrndx) != 0)
        return repro_error_set(err, REPRO_E_MALFORMED, "cannot read section headers of '%s': %s",
                               m->path, elf_errmsg(-1));
    m->sections = repro_calloc(shnum ? shnum : 1, sizeof *m->sections);
    if (m->sections == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory reading sections");
    while ((scn = elf_nextscn(m->elf, scn)) != NULL) {
        GElf_Shdr sh;
        const char *name;
        if (gelf_getshdr(scn, &sh) == NULL || !(sh.sh_flags & SHF_ALLOC) || k >= shnum)
            continue;
        name = elf_strptr(m->elf, shstrndx, sh.sh_name);
        m->sections[k].addr = sh.sh_addr;
        m->sections[k].size = sh.sh_size;
        m->sections[k].shndx = (uint32_t)elf_ndxscn(scn);
        m->sections[k].name = name ? name : "";
        k++;
    }
    m->n_sections = k;
    return REPRO_OK;
}

/* Does the debug file number its sections like the module? binutils maps a
 * module section to the debug file's by position and name. */
static int sections_match(struct repro_sym_module *m)
{
    size_t i, shstrndx;
    if (elf_getshdrstrndx(m->dbg_elf, &shstrndx) != 0)
        return 0;
    for (i = 0; i < m->n_sections; i++) {
        Elf_Scn *scn = elf_getscn(m->dbg_elf, m->sections[i].shndx);
        GElf_Shdr sh;
        const char *name;
        if (scn == NULL || gelf_getshdr(scn, &sh) == NULL)
            return 0;
        name = elf_strptr(m->dbg_elf, shstrndx, sh.sh_name);
        if (name == NULL || strcmp(name, m->sections[i].name) != 0)
            return 0;
    }
    return 1;
}

static struct dw_section *dw_slot(struct dw_sections *dw, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } map[] = {
        {"info", offsetof(struct dw_sections, info)},
        {"abbrev", offsetof(struct dw_sections, abbrev)},
        {"line", offsetof(struct dw_sections, line)},
        {"str", offsetof(struct dw_sections, str)},
        {"line_str", offsetof(struct dw_sections, line_str)},
        {"ranges", offsetof(struct dw_sections, ranges)},
        {"rnglists", offsetof(struct dw_sections, rnglists)},
        {"addr", offsetof(struct dw_sections, addr)},
        {"str_offsets", offsetof(struct dw_sections, str_offsets)},
        {"aranges", offsetof(struct dw_sections, aranges)},
    };
    size_t i;
    if (strncmp(name, ".debug_", 7) == 0)
        name += 7;
    else if (strncmp(name, ".zdebug_", 8) == 0)
        name += 8;
    else
        return NULL;
    for (i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(name, map[i].name) == 0)
            return (struct dw_section *)((char *)dw + map[i].off);
    return NULL;
}

/* The compressed payload of a section: SHF_COMPRESSED with an ELF
 * compression header, or GNU .zdebug ("ZLIB", 8-byte big-endian size).
 * Returns 0 and fills j when it is zlib in the file's mapping. */
static int zjob_of(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, int gnu, struct repro__dw_zjob *j)
{
    Elf_Data *raw;
    GElf_Chdr ch;
    const uint8_t *p;
    size_t len, hdr = 0;
    uint64_t size;
    if (!gnu) {
        /* libelf reads the class-specific compression header */
        if (gelf_getchdr(scn, &ch) == NULL || ch.ch_type != ELFCOMPRESS_ZLIB)
            return -1;
        hdr = gelf_fsize(elf, ELF_T_CHDR, 1, EV_CURRENT);
    }
    raw = elf_rawdata(scn, NULL);
    if (raw == NULL || raw->d_buf == NULL)
        return -1;
    p = raw->d_buf;
    len = raw->d_size;
    if (gnu) {
        size_t i;
        if (len < 12 || memcmp(p, "ZLIB", 4) != 0)
            return -1;
        for (size = 0, i = 4; i < 12; i++)
            size = size << 8 | p[i];
        hdr = 12;
    } else {
        if (hdr == 0 || len < hdr)
            return -1;
        size = ch.ch_size;
    }
    p += hdr;
    len -= hdr;
    /* deflate expands at most ~1032x: refuse absurd sizes before allocating */
    if (size == 0 || size > (uint64_t)len * 1032 + 64 || size > ((uint64_t)1 << 34))
        return -1;
    (void)sh;
    j->src = p;
    j->src_len = len;
    j->dst_len = (size_t)size;
    return 0;
}

/* The symbol tables, as addr2line's slurp_symtab and bfd's dwarf2 stash. */
static int load_symtabs(struct repro_sym_module *m, struct repro_error *err)
{
    int rc = repro__symtab_load(&m->symtab_main, m->elf, 0, err);
    if (rc == REPRO_E_NOTFOUND)
        rc = repro__symtab_load(&m->symtab_main, m->elf, 1, err);
    if (rc != REPRO_OK && rc != REPRO_E_NOTFOUND)
        return rc;
    if (m->dbg_elf != NULL && m->dbg_elf != m->elf) {
        rc = repro__symtab_load(&m->symtab_dbg, m->dbg_elf, 0, err);
        if (rc != REPRO_OK && rc != REPRO_E_NOTFOUND)
            return rc;
        m->dbg_sections_match = sections_match(m);
    }
    return REPRO_OK;
}

/* load_symtabs as the inflate pool's after task: it runs on a helper while
 * the opening thread inflates .debug_info (libelf is then used by that
 * helper alone; the jobs only read the mapping and write their buffers). */
static void symtabs_task(void *ctx)
{
    struct repro_sym_module *m = ctx;
    m->symtab_rc = load_symtabs(m, &m->symtab_err);
}

/* Starts inflating the compressed sections (load_dwarf_finish ends it). */
static int load_dwarf(struct repro_sym_module *m, struct repro_error *err)
{
    size_t shstrndx, n_jobs = 0, i;
    struct repro__dw_zjob *jobs = m->zjobs;
    Elf_Scn *scn = NULL;
    if (elf_getshdrstrndx(m->dbg_elf, &shstrndx) != 0)
        return REPRO_OK;
    while ((scn = elf_nextscn(m->dbg_elf, scn)) != NULL) {
        GElf_Shdr sh;
        const char *name;
        struct dw_section *slot;
        Elf_Data *d;
        int gnu;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type == SHT_NOBITS)
            continue;
        name = elf_strptr(m->dbg_elf, shstrndx, sh.sh_name);
        if (name == NULL || (slot = dw_slot(&m->dw, name)) == NULL)
            continue;
        gnu = !(sh.sh_flags & SHF_COMPRESSED) && strncmp(name, ".zdebug_", 8) == 0;
        if ((sh.sh_flags & SHF_COMPRESSED) || gnu) {
            if (n_jobs < sizeof m->zjobs / sizeof *m->zjobs) {
                struct repro__dw_zjob *j = &jobs[n_jobs];
                memset(j, 0, sizeof *j);
                j->slot = slot;
                j->scn = scn;
                j->name = name;
                j->gnu = gnu;
                if (zjob_of(m->dbg_elf, scn, &sh, gnu, j) == 0) {
                    n_jobs++;
                    continue;
                }
            }
            /* not zlib, not in the mapping, or more sections than jobs:
             * libelf inflates it */
            if (!gnu ? elf_compress(scn, 0, 0) < 0 : elf_compress_gnu(scn, 0, 0) < 0) {
                repro_log(REPRO_LOG_WARN, "symbolize", "cannot decompress %s of '%s': %s", name,
                          m->debug_path, elf_errmsg(-1));
                continue;
            }
        }
        d = elf_getdata(scn, NULL);
        if (d == NULL || d->d_buf == NULL)
            continue;
        slot->data = d->d_buf;
        slot->len = d->d_size;
    }
    if (n_jobs > 0) {
        m->dw_bufs = repro_calloc(n_jobs, sizeof *m->dw_bufs);
        if (m->dw_bufs == NULL)
            return repro_error_set(err, REPRO_E_NOMEM, "out of memory decompressing DWARF");
        for (i = 0; i < n_jobs; i++) {
            jobs[i].dst = repro_malloc(jobs[i].dst_len);
            if (jobs[i].dst == NULL) {
                size_t k;
                for (k = 0; k < i; k++)
                    repro_free(jobs[k].dst);
                repro_free(m->dw_bufs);
                m->dw_bufs = NULL;
                return repro_error_set(err, REPRO_E_NOMEM, "out of memory decompressing DWARF");
            }
        }
        repro__dw_inflate_start(&m->zpool, jobs, n_jobs, symtabs_task, m);
        m->n_zjobs = n_jobs;
    }
    m->has_dwarf = m->dw.info.len > 0 && m->dw.abbrev.len > 0;
    return REPRO_OK;
}

static void load_dwarf_finish(struct repro_sym_module *m)
{
    size_t i;
    struct repro__dw_zjob *jobs = m->zjobs;
    if (m->n_zjobs > 0) {
        repro__dw_inflate_finish(&m->zpool);
        for (i = 0; i < m->n_zjobs; i++) {
            struct repro__dw_zjob *j = &jobs[i];
            Elf_Data *d;
            if (!j->failed) {
                m->dw_bufs[m->n_dw_bufs++] = j->dst;
                j->slot->data = j->dst;
                j->slot->len = j->dst_len;
                continue;
            }
            repro_free(j->dst);
            if (!j->gnu ? elf_compress(j->scn, 0, 0) < 0 : elf_compress_gnu(j->scn, 0, 0) < 0) {
                repro_log(REPRO_LOG_WARN, "symbolize", "cannot decompress %s of '%s': %s",
                          j->name, m->debug_path, elf_errmsg(-1));
                continue;
            }
            d = elf_getdata(j->scn, NULL);
            if (d == NULL || d->d_buf == NULL)
                continue;
            j->slot->data = d->d_buf;
            j->slot->len = d->d_size;
        }
        m->n_zjobs = 0;
    }
    m->has_dwarf = m->dw.info.len > 0 && m->dw.abbrev.len > 0;
}

static int open_module(struct repro_sym_session *s, const char *path, int fd, Elf *elf,
                       struct repro_sym_module **out, struct repro_error *err)
{
    struct repro_sym_module *m;
    const void *bid = NULL;
    ssize_t n;
    int rc, symtabs_async;
    uint64_t t0 = repro_mono_ns();

    m = repro_calloc(1, sizeof *m);
    if (m == NULL) {
        elf_end(elf);
        close(fd);
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
    }
    m->session = s;
    m->lock = &s->lock;
    m->open_t0 = t0;
    m->fd = fd;
    if (pthread_mutex_init(&m->ulock, NULL) != 0) {
        repro_free(m);
        elf_end(elf);
        close(fd);
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
    }
    if (pthread_cond_init(&m->ucond, NULL) != 0) {
        pthread_mutex_destroy(&m->ulock);
        repro_free(m);
        elf_end(elf);
        close(fd);
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
    }
    if (pthread_cond_init(&m->wcond, NULL) != 0) {
        pthread_cond_destroy(&m->ucond);
        pthread_mutex_destroy(&m->ulock);
        repro_free(m);
        elf_end(elf);
        close(fd);
        return repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
    }
    m->ulock_init = 1;
    m->dbg_fd = -1;
    m->elf = elf;
    m->path = repro_strdup(path);
    if (m->path == NULL) {
        rc = repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
        goto fail;
    }
    n = dwelf_elf_gnu_build_id(elf, &bid);
    if (n > 0 && (size_t)n <= sizeof m->build_id) {
        memcpy(m->build_id, bid, (size_t)n);
        m->build_id_len = (size_t)n;
    }
    rc = load_sections(m, err);
    if (rc != REPRO_OK)
        goto fail;
    {
        size_t shstrndx;
        Elf_Scn *scn = NULL;
        int inside = 0;
        if (elf_getshdrstrndx(elf, &shstrndx) == 0)
            while ((scn = elf_nextscn(elf, scn)) != NULL) {
                GElf_Shdr sh;
                const char *name;
                if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type == SHT_NOBITS || !sh.sh_size)
                    continue;
                name = elf_strptr(elf, shstrndx, sh.sh_name);
                if (name && (!strcmp(name, ".debug_info") || !strcmp(name, ".zdebug_info")))
                    inside = 1;
            }
        if (inside) {
            m->dbg_elf = elf;
            m->dbg_fd = fd;
            m->debug_path = repro_strdup(path);
            if (m->debug_path == NULL) {
                rc = repro_error_set(err, REPRO_E_NOMEM, "out of memory opening '%s'", path);
                goto fail;
            }
        } else {
            rc = repro__debug_find(s, m, err);
            if (rc != REPRO_OK && rc != REPRO_E_NOTFOUND)
                goto fail;
        }
    }
    if (m->dbg_elf != NULL) {
        rc = load_dwarf(m, err);
        if (rc != REPRO_OK)
            goto fail;
    }
    /* with sections to inflate, a helper loads the symbol tables */
    symtabs_async = m->n_zjobs > 0;
    if (!symtabs_async) {
        rc = load_symtabs(m, err);
        if (rc != REPRO_OK)
            goto fail;
    }
    load_dwarf_finish(m);
    if (symtabs_async && m->symtab_rc != REPRO_OK) {
        rc = repro_error_set(err, m->symtab_rc, "%s", m->symtab_err.msg);
        goto fail;
    }
    if (m->has_dwarf) {
        rc = repro__units_load(m, err);
        if (rc != REPRO_OK)
            goto fail;
    }
    m->open_ns = repro_mono_ns() - t0;
    *out = m;
    return REPRO_OK;
fail:
    load_dwarf_finish(m);
    module_free(m);
    return rc;
}

/* Whether a table of n entries of entsize bytes at off lies inside a file
 * of file_size bytes; if not, says where it ends in why. */
static int table_fits(const char *what, uint64_t off, uint64_t n, uint64_t entsize,
                      uint64_t file_size, char *why, size_t why_len)
{
    uint64_t end = UINT64_MAX;

    if (entsize == 0 || n <= (UINT64_MAX - off) / entsize)
        end = off + n * entsize;
    if (end <= file_size)
        return 1;
    snprintf(why, why_len, "the %s ends at byte %llu, past the end of the file (%llu bytes)",
             what, (unsigned long long)end, (unsigned long long)file_size);
    return 0;
}

int repro__elf_check_extent(Elf *elf, const char *path, uint64_t file_size, char *why,
                            size_t why_len)
{
    GElf_Ehdr eh;
    GElf_Shdr sh;
    Elf_Scn *scn = NULL;
    size_t shnum, phnum, shstrndx = 0;
    char past[160];

    if (gelf_getehdr(elf, &eh) == NULL) {
        snprintf(why, why_len, "the ELF header cannot be read: %s", elf_errmsg(-1));
        return REPRO_E_MALFORMED;
    }
    /* The counts come from the ELF header: libelf quietly reports no
     * sections or segments when their table is cut. Extended numbering
     * keeps the real counts in section header 0, which must be inside the
     * file before libelf reads them from it. */
    shnum = eh.e_shoff != 0 ? eh.e_shnum : 0;
    phnum = eh.e_phnum;
    if (eh.e_shoff != 0 && (shnum == 0 || phnum == PN_XNUM)) {
        if (!table_fits("section header table", eh.e_shoff, 1, eh.e_shentsize, file_size, why,
                        why_len))
            return REPRO_E_MALFORMED;
        if ((shnum == 0 && elf_getshdrnum(elf, &shnum) != 0) ||
            (phnum == PN_XNUM && elf_getphdrnum(elf, &phnum) != 0)) {
            snprintf(why, why_len, "section header 0 cannot be read: %s", elf_errmsg(-1));
            return REPRO_E_MALFORMED;
        }
    }
    if ((phnum > 0 && !table_fits("program header table", eh.e_phoff, phnum, eh.e_phentsize,
                                  file_size, why, why_len)) ||
        (shnum > 0 && !table_fits("section header table", eh.e_shoff, shnum, eh.e_shentsize,
                                  file_size, why, why_len)))
        return REPRO_E_MALFORMED;
    (void)elf_getshdrstrndx(elf, &shstrndx);
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        const char *name;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type == SHT_NOBITS)
            continue;
        name = elf_strptr(elf, shstrndx, sh.sh_name);
        snprintf(past, sizeof past, "section %s", name ? name : "?");
        if (table_fits(past, sh.sh_offset, sh.sh_size, 1, file_size, why, why_len))
            continue;
        repro_log(REPRO_LOG_WARN, "symbolize", "'%s': %s", path, why);
        break;
    }
    return REPRO_OK;
}

int repro_sym_session_open(struct repro_sym_session *s, const char *path,
                           struct repro_sym_module **out, struct repro_error *err)
{
    struct repro_sym_module *m;
    const void *bid = NULL;
    char why[160] = "cannot stat it";
    struct stat st;
    ssize_t n;
    int fd, rc;
    Elf *elf;

    *out = NULL;
    pthread_mutex_lock(&s->lock);
    for (m = s->modules; m != NULL; m = m->next)
        if (strcmp(m->path, path) == 0) {
            *out = m;
            pthread_mutex_unlock(&s->lock);
            return REPRO_OK;
        }
    /* Paths come from crash records: never a FIFO or a device. */
    rc = repro__open_regular(path, &fd, err);
    if (rc != REPRO_OK)
        goto out;
    elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf == NULL || elf_kind(elf) != ELF_K_ELF) {
        if (elf)
            elf_end(elf);
        close(fd);
        rc = repro_error_set(err, REPRO_E_MALFORMED, "cannot read '%s': not an ELF file", path);
        goto out;
    }
    if (fstat(fd, &st) != 0 ||
        repro__elf_check_extent(elf, path, (uint64_t)st.st_size, why, sizeof why) != REPRO_OK) {
        elf_end(elf);
        close(fd);
        rc = repro_error_set(err, REPRO_E_MALFORMED,
                             "cannot read '%s': file format not recognized: %s", path, why);
        goto out;
    }
    n = dwelf_elf_gnu_build_id(elf, &bid);
    if (n > 0) {
        for (m = s->modules; m != NULL; m = m->next)
            if (m->build_id_len == (size_t)n && memcmp(m->build_id, bid, (size_t)n) == 0) {
                elf_end(elf);
                close(fd);
                *out = m;
                rc = REPRO_OK;
                goto out;
            }
    }
    rc = open_module(s, path, fd, elf, &m, err);
    if (rc == REPRO_OK) {
        m->next = s->modules;
        s->modules = m;
        *out = m;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int repro_sym_module_has_dwarf(const struct repro_sym_module *m)
{
    return m->has_dwarf;
}

const char *repro_sym_module_debug_path(const struct repro_sym_module *m)
{
    return m->has_dwarf ? m->debug_path : NULL;
}

size_t repro_sym_module_build_id(const struct repro_sym_module *m, uint8_t *buf, size_t buf_len)
{
    if (buf != NULL)
        memcpy(buf, m->build_id, m->build_id_len < buf_len ? m->build_id_len : buf_len);
    return m->build_id_len;
}
