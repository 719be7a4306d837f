/*
 * Finding a module's separate debug file the way distributions ship them:
 *  1. build-id trees: DIR/.build-id/xx/rest.debug for each --debug-dir, then
 *     /usr/lib/debug (Debian's -dbg and -dbgsym packages);
 *  2. .gnu_debuglink: the named file next to the module, in its .debug/
 *     folder, and under each debug directory followed by the module's
 *     directory (/usr/lib/debug/usr/lib/x86_64-linux-gnu/NAME);
 *  3. libdwfl's dwfl_standard_find_debuginfo(), which repeats those and then
 *     asks debuginfod when DEBUGINFOD_URLS is set (libdebuginfod).
 * A candidate whose GNU build-id differs from the module's is refused with a
 * warning and the search goes on. Without a build-id on the module, a
 * debuglink candidate is taken without its CRC being checked (noted in
 * docs/symbolize.md).
 *
 * Module paths come from crash records, which anyone able to write a spool
 * could have written: every file is opened through repro__open_regular
 * (never a FIFO or a device), and libdwfl, which opens its candidates
 * itself with a blocking open(2), is not asked when one of the files it
 * would try exists and is not a regular file.
 */
#include "sym_internal.h"

#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *file_kind(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "of an unknown kind";
}

int repro__open_regular(const char *path, int *fd_out, struct repro_error *err)
{
    struct stat before, st;
    int fd;

    *fd_out = -1;
    if (stat(path, &before) != 0)
        return errno == ENOENT
                   ? repro_error_sys(err, REPRO_E_NOTFOUND, "cannot open '%s': no such file", path)
                   : repro_error_sys(err, REPRO_E_IO, "cannot open '%s': %s", path,
                                     strerror(errno));
    if (!S_ISREG(before.st_mode))
        return repro_error_set(err, REPRO_E_IO, "cannot open '%s': not a regular file (%s)", path,
                               file_kind(before.st_mode));
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return repro_error_sys(err, REPRO_E_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_dev != before.st_dev ||
        st.st_ino != before.st_ino) {
        close(fd);
        return repro_error_set(err, REPRO_E_IO, "cannot open '%s': replaced while being opened",
                               path);
    }
    *fd_out = fd;
    return REPRO_OK;
}

static int has_debug_info(Elf *elf)
{
    size_t shstrndx;
    Elf_Scn *scn = NULL;
    if (elf_getshdrstrndx(elf, &shstrndx) != 0)
        return 0;
    while ((scn = elf_nextscn(elf, scn)) != NULL) {
        GElf_Shdr sh;
        const char *name;
        if (gelf_getshdr(scn, &sh) == NULL || sh.sh_type == SHT_NOBITS || sh.sh_size == 0)
            continue;
        name = elf_strptr(elf, shstrndx, sh.sh_name);
        if (name && (strcmp(name, ".debug_info") == 0 || strcmp(name, ".zdebug_info") == 0))
            return 1;
    }
    return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n && i < 64; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * (i < n ? i : n)] = '\0';
}

/* Takes fd (closed unless accepted). 1: accepted into m; 0: refused. */
static int try_candidate(struct repro_sym_module *m, int fd, const char *path)
{
    Elf *elf;
    const void *bid = NULL;
    char why[160];
    ssize_t n;
    struct stat st;

    if (fd < 0)
        return 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (elf == NULL || elf_kind(elf) != ELF_K_ELF) {
        repro_log(REPRO_LOG_WARN, "symbolize", "ignoring debug file '%s': not an ELF file", path);
        goto refuse;
    }
    if (repro__elf_check_extent(elf, path, (uint64_t)st.st_size, why, sizeof why) != REPRO_OK) {
        repro_log(REPRO_LOG_WARN, "symbolize",
                  "ignoring debug file '%s': file format not recognized: %s", path, why);
        goto refuse;
    }
    n = dwelf_elf_gnu_build_id(elf, &bid);
    if (m->build_id_len > 0 && n > 0
        && ((size_t)n != m->build_id_len || memcmp(bid, m->build_id, m->build_id_len) != 0)) {
        char want[129], got[129];
        hex(want, m->build_id, m->build_id_len);
        hex(got, bid, (size_t)n);
        repro_log(REPRO_LOG_WARN, "symbolize",
                  "refusing debug file '%s' for '%s': build-id %s does not match %s", path,
                  m->path, got, want);
        goto refuse;
    }
    if (!has_debug_info(elf)) {
        repro_log(REPRO_LOG_DEBUG, "symbolize", "debug file '%s' has no .debug_info", path);
        goto refuse;
    }
    m->debug_path = repro_strdup(path);
    if (m->debug_path == NULL)
        goto refuse;
    m->dbg_fd = fd;
    m->dbg_elf = elf;
    repro_log(REPRO_LOG_DEBUG, "symbolize", "'%s': debug information from '%s'", m->path, path);
    return 1;
refuse:
    if (elf)
        elf_end(elf);
    close(fd);
    return 0;
}

static int try_path(struct repro_sym_module *m, const char *path)
{
    char real_a[PATH_MAX], real_b[PATH_MAX];
    struct repro_error err = {0};
    int fd;
    if (realpath(path, real_a) == NULL)
        return 0;
    if (realpath(m->path, real_b) != NULL && strcmp(real_a, real_b) == 0)
        return 0; /* the module itself */
    if (repro__open_regular(path, &fd, &err) != REPRO_OK) {
        repro_log(REPRO_LOG_WARN, "symbolize", "ignoring debug file candidate: %s", err.msg);
        return 0;
    }
    return try_candidate(m, fd, path);
}

/* 1 when path exists and is not a regular file (said in a warning). */
static int not_regular(const struct repro_sym_module *m, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return 0;
    repro_log(REPRO_LOG_WARN, "symbolize",
              "not asking libdwfl for the debug file of '%s': '%s' is %s", m->path, path,
              file_kind(st.st_mode));
    return 1;
}

/* 1 when every file libdwfl's standard search would open for m (with the
 * session's path "-:.debug:DIRS") is absent or regular: that search opens
 * them with a blocking open(2), which waits forever on a FIFO. */
static int dwfl_candidates_safe(const struct repro__sym_dirs *d, const struct repro_sym_module *m,
                                const char *link)
{
    char path[PATH_MAX * 3], dir[PATH_MAX], name[PATH_MAX];
    const char *slash = strrchr(m->path, '/');
    size_t i;

    if (slash == NULL || (size_t)(slash - m->path) >= sizeof dir)
        return 1; /* crash modules are absolute paths */
    memcpy(dir, m->path, (size_t)(slash - m->path));
    dir[slash - m->path] = '\0';
    if (link != NULL && *link != '\0')
        snprintf(name, sizeof name, "%s", link);
    else
        snprintf(name, sizeof name, "%s.debug", slash + 1);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (not_regular(m, path))
        return 0;
    snprintf(path, sizeof path, "%s/.debug/%s", dir, name);
    if (not_regular(m, path))
        return 0;
    for (i = 0; i < d->n_dirs; i++) {
        snprintf(path, sizeof path, "%s%s/%s", d->dirs[i], dir, name);
        if (not_regular(m, path))
            return 0;
        if (m->build_id_len >= 2) {
            char h[129];
            hex(h, m->build_id, m->build_id_len);
            snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", d->dirs[i], h, h + 2);
            if (not_regular(m, path))
                return 0;
        }
    }
    return 1;
}

static int search_dwfl(struct repro_sym_session *s, struct repro_sym_module *m)
{
    Dwfl *dwfl = repro__session_dwfl(s);
    Dwfl_Module *mod;
    void **userdata = NULL;
    const char *debuglink;
    GElf_Word crc = 0;
    char *found = NULL;
    int fd, ok;
    Dwarf_Addr start = 0;

    if (dwfl == NULL)
        return 0;
    debuglink = dwelf_elf_gnu_debuglink(m->elf, &crc);
    if (!dwfl_candidates_safe(repro__session_dirs(s), m, debuglink))
        return 0;
    dwfl_report_begin_add(dwfl);
    mod = dwfl_report_offline(dwfl, m->path, m->path, -1);
    dwfl_report_end(dwfl, NULL, NULL);
    if (mod == NULL)
        return 0;
    dwfl_module_info(mod, &userdata, &start, NULL, NULL, NULL, NULL, NULL);
    fd = dwfl_standard_find_debuginfo(mod, userdata, m->path, start, m->path, debuglink, crc,
                                      &found);
    if (fd < 0) {
        free(found);
        return 0;
    }
    ok = try_candidate(m, fd, found ? found : "(debuginfod)");
    free(found); /* libdwfl allocates with malloc */
    return ok;
}

int repro__debug_find(struct repro_sym_session *s, struct repro_sym_module *m,
                      struct repro_error *err)
{
    const struct repro__sym_dirs *d = repro__session_dirs(s);
    char path[PATH_MAX * 2], dir[PATH_MAX];
    const char *link;
    GElf_Word crc;
    size_t i;

    (void)err;
    if (m->build_id_len >= 2) {
        char h[129];
        hex(h, m->build_id, m->build_id_len);
        for (i = 0; i < d->n_dirs; i++) {
            snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", d->dirs[i], h, h + 2);
            if (try_path(m, path))
                return REPRO_OK;
        }
    }
    link = dwelf_elf_gnu_debuglink(m->elf, &crc);
    if (link != NULL && *link != '\0' && realpath(m->path, dir) != NULL) {
        char *slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(path, sizeof path, "%s/%s", dir, link);
        if (try_path(m, path))
            return REPRO_OK;
        snprintf(path, sizeof path, "%s/.debug/%s", dir, link);
        if (try_path(m, path))
            return REPRO_OK;
        for (i = 0; i < d->n_dirs; i++) {
            snprintf(path, sizeof path, "%s%s/%s", d->dirs[i], dir, link);
            if (try_path(m, path))
                return REPRO_OK;
        }
    }
    if (d->use_dwfl && search_dwfl(s, m))
        return REPRO_OK;
    return REPRO_E_NOTFOUND;
}
