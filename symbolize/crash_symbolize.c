/*
 * Symbolizing crash records: every frame of every thread becomes function,
 * file, line and column, with the chain of inlined frames expanded in front
 * of the physical frame that holds them (marked inlined), and the crash gets
 * its signature.
 *
 * Modules are found by the path the crash recorded, and only used when their
 * build-id equals the recorded one; otherwise (the binary was replaced, or
 * the crash came from another machine) the build-id trees of the debug
 * directories are tried. What could not be found is reported, and those
 * frames keep module and offset.
 *
 * The lookup address is the return address minus one for every frame but
 * the faulting one (frame 0 of the crashing thread), so a call at the end of
 * a function is not attributed to the next one.
 *
 * Signature: the signal plus the first three in-app functions of the
 * crashing thread, skipping runtime frames (is_runtime_frame: the C
 * runtime's modules, signal raising, abort/assert, allocator internals,
 * thread start) — so the same bug crashing through different paths of the
 * C library groups together.
 */
#include "repro/crash.h"
#include "repro/symbolize.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void hex_of(char *out, size_t n, const uint8_t *id, size_t len)
{
    static const char hx[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < len && 2 * i + 2 < n; i++) {
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[2 * i] = '\0';
}

/* Opens the module of m whose build-id matches, or returns NULL. */
static struct repro_sym_module *open_matching(struct repro_sym_session *s,
                                              const struct repro_crash_module *m,
                                              const char *const *dirs, size_t n_dirs,
                                              char *why, size_t why_len)
{
    struct repro_sym_module *mod = NULL;
    struct repro_error err = {0};
    uint8_t id[64];
    char hex[129], path[4096];
    size_t n, i;

    if (m->path && m->path[0] == '/' &&
        repro_sym_session_open(s, m->path, &mod, &err) == REPRO_OK) {
        n = repro_sym_module_build_id(mod, id, sizeof id);
        hex_of(hex, sizeof hex, id, n);
        if (m->build_id[0] == '\0' || strcmp(hex, m->build_id) == 0)
            return mod;
        snprintf(why, why_len, "'%s' has build-id %s, the crash %s", m->path, hex, m->build_id);
    } else {
        snprintf(why, why_len, "%s", err.msg[0] ? err.msg : "no path recorded");
    }
    if (m->build_id[0] == '\0' || strlen(m->build_id) < 3)
        return NULL;
    /* build-id trees: DIR/.build-id/xx/rest.debug (then the stripped twin) */
    for (i = 0; i <= n_dirs; i++) {
        const char *dir = i < n_dirs ? dirs[i] : "/usr/lib/debug";
        snprintf(path, sizeof path, "%s/.build-id/%.2s/%s.debug", dir, m->build_id, m->build_id + 2);
        if (access(path, R_OK) != 0)
            continue;
        repro_error_clear(&err);
        if (repro_sym_session_open(s, path, &mod, &err) == REPRO_OK) {
            n = repro_sym_module_build_id(mod, id, sizeof id);
            hex_of(hex, sizeof hex, id, n);
            if (strcmp(hex, m->build_id) == 0)
                return mod;
            repro_log(REPRO_LOG_WARN, "symbolize", "refusing '%s': build-id %s, wanted %s", path,
                      hex, m->build_id);
        }
    }
    return NULL;
}

static int set_frame(struct repro_crash_frame *f, const struct repro_sym_frame *sf, int inlined)
{
    const char *name = sf->demangled ? sf->demangled : sf->function;
    if (repro_crash_set_str(&f->function, name) != REPRO_OK ||
        repro_crash_set_str(&f->file, sf->file) != REPRO_OK)
        return REPRO_E_NOMEM;
    f->line = (int)sf->line;
    f->column = (int)sf->column;
    f->inlined = inlined;
    return REPRO_OK;
}

/* Rebuilds one thread's frames: physical frames only in, each expanded to
 * its inline chain out. */
static int symbolize_thread(struct repro_crash *c, struct repro_crash_thread *t,
                            struct repro_sym_module **mods, struct repro_crash_sym_report *rep,
                            struct repro_error *err)
{
    struct repro_crash_frame *out = NULL;
    size_t n_out = 0, cap = 0, i, k;
    struct repro_sym_result *r = repro_malloc(sizeof *r);
    int rc = REPRO_OK;

    if (r == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot symbolize: out of memory");
    repro_sym_result_init(r);
    size_t physical = 0;
    for (i = 0; i < t->n_frames && rc == REPRO_OK; i++) {
        struct repro_crash_frame *f = &t->frames[i];
        size_t need = 1;
        /* the first physical frame, not frame 0: after an earlier run the
         * inlined frames in front of it are in the array too */
        int faulting;

        if (f->inlined) /* from an earlier run: rebuilt below */
            continue;
        faulting = t->crashed && physical++ == 0;
        r->status = REPRO_SYM_NOT_FOUND;
        r->n_frames = 0;
        if (f->module >= 0 && mods[f->module] != NULL) {
            uint64_t addr = f->offset - (faulting || f->offset == 0 ? 0 : 1);
            rc = repro_sym_module_lookup(mods[f->module], addr, REPRO_SYM_DEMANGLE, r, err);
            if (rc)
                break;
        }
        rep->n_frames++;
        if (r->status == REPRO_SYM_FOUND && r->n_frames > 0) {
            need = r->n_frames;
            if (r->frames[0].function || r->frames[0].file)
                rep->n_symbolized++;
        }
        if (n_out + need > cap) {
            size_t ncap = (n_out + need) * 2;
            struct repro_crash_frame *p;
            if (ncap > REPRO_CRASH_MAX_FRAMES * REPRO_SYM_MAX_FRAMES)
                ncap = REPRO_CRASH_MAX_FRAMES * REPRO_SYM_MAX_FRAMES;
            if (n_out + need > ncap || (p = repro_realloc(out, ncap * sizeof *p)) == NULL) {
                rc = repro_error_set(err, REPRO_E_NOMEM, "cannot symbolize: out of memory");
                break;
            }
            out = p;
            cap = ncap;
        }
        for (k = 0; k < need; k++) {
            struct repro_crash_frame *o = &out[n_out++];
            memset(o, 0, sizeof *o);
            o->pc = f->pc;
            o->module = f->module;
            o->offset = f->offset;
            if (r->status == REPRO_SYM_FOUND && r->n_frames > 0 &&
                set_frame(o, &r->frames[k], k + 1 < need) != REPRO_OK) {
                rc = repro_error_set(err, REPRO_E_NOMEM, "cannot symbolize: out of memory");
                break;
            }
        }
    }
    repro_free(r);
    if (rc != REPRO_OK) {
        for (k = 0; k < n_out; k++) {
            repro_free(out[k].function);
            repro_free(out[k].file);
        }
        repro_free(out);
        return rc;
    }
    for (k = 0; k < t->n_frames; k++) {
        repro_free(t->frames[k].function);
        repro_free(t->frames[k].file);
    }
    repro_free(t->frames);
    t->frames = out;
    t->n_frames = t->cap_frames = n_out;
    (void)c;
    return REPRO_OK;
}

int repro_crash_symbolize(struct repro_sym_session *s, struct repro_crash *c,
                          const char *const *debug_dirs, size_t n_debug_dirs,
                          struct repro_crash_sym_report *rep, struct repro_error *err)
{
    struct repro_sym_module **mods = NULL;
    unsigned char *on_stack = NULL;
    size_t i;
    int rc = REPRO_OK;

    memset(rep, 0, sizeof *rep);
    if (c->n_modules > 0 && (mods = repro_calloc(c->n_modules, sizeof *mods)) == NULL)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot symbolize: out of memory");
    /* Only the modules some frame points into are opened (and named when
     * their debug information is missing). */
    if (c->n_modules > 0 && (on_stack = repro_calloc(c->n_modules, 1)) == NULL) {
        repro_free(mods);
        return repro_error_set(err, REPRO_E_NOMEM, "cannot symbolize: out of memory");
    }
    for (i = 0; i < c->n_threads; i++)
        for (size_t k = 0; k < c->threads[i].n_frames; k++) {
            int m = c->threads[i].frames[k].module;
            if (m >= 0 && (size_t)m < c->n_modules)
                on_stack[m] = 1;
        }
    for (i = 0; i < c->n_modules; i++) {
        char why[600];
        why[0] = '\0';
        if (!on_stack[i])
            continue; /* nothing to symbolize in it */
        if (c->modules[i].path && c->modules[i].path[0] == '[')
            continue; /* [vdso], [vsyscall]: no file to read */
        mods[i] = open_matching(s, &c->modules[i], debug_dirs, n_debug_dirs, why, sizeof why);
        if (mods[i] == NULL) {
            size_t n = strlen(rep->missing);
            rep->n_missing++;
            snprintf(rep->missing + n, sizeof rep->missing - n, "%s%s (build-id %s): %s",
                     n ? "; " : "", c->modules[i].path, c->modules[i].build_id[0] ?
                     c->modules[i].build_id : "unknown", why);
        } else if (!repro_sym_module_has_dwarf(mods[i])) {
            size_t n = strlen(rep->missing);
            rep->n_no_dwarf++;
            snprintf(rep->missing + n, sizeof rep->missing - n, "%s%s: no debug information",
                     n ? "; " : "", c->modules[i].path);
        }
    }
    for (i = 0; i < c->n_threads && rc == REPRO_OK; i++)
        rc = symbolize_thread(c, &c->threads[i], mods, rep, err);
    repro_free(on_stack);
    repro_free(mods);
    if (rc == REPRO_OK)
        rc = repro_crash_compute_signature(c);
    return rc;
}

/* Frames that say where a crash surfaced, not where the bug is: anything in
 * the C runtime's modules (libc, the loader, libstdc++, libgcc, the crash
 * agent), and by name the runtime entry points that programs link
 * statically or call through. Names match exactly, or by the prefixes only
 * runtime internals use, so an application function such as free_list_push
 * or clone_widget is never skipped. */
static int is_runtime_frame(const struct repro_crash *c, const struct repro_crash_frame *f)
{
    static const char *const names[] = {"raise", "abort", "free", "malloc", "realloc", "calloc",
                                        "clone", "clone3", "start_thread", "_start",
                                        "pthread_kill", "__restore_rt", "std::terminate()"};
    static const char *const prefixes[] = {"__assert", "__GI_", "__libc_", "__pthread_kill",
                                           "__stack_chk_fail", "__fortify_fail", "__chk_fail",
                                           "_int_", "__malloc", "__cxa_", "__gnu_cxx::",
                                           "__sanitizer", "__asan", "__ubsan", "__interceptor"};
    const char *path = f->module >= 0 ? c->modules[f->module].path : NULL;
    size_t i;

    if (path != NULL && (strstr(path, "/libc.so") || strstr(path, "/ld-linux") ||
                         strstr(path, "librepro_crash") || strstr(path, "/libstdc++") ||
                         strstr(path, "/libgcc_s")))
        return 1;
    if (f->function == NULL)
        return 0;
    for (i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(f->function, names[i]) == 0)
            return 1;
    for (i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(f->function, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

int repro_crash_compute_signature(struct repro_crash *c)
{
    const struct repro_crash_thread *t = NULL;
    char sig[512], sb[16];
    size_t i, n;
    int taken = 0;

    for (i = 0; i < c->n_threads; i++)
        if (c->threads[i].crashed)
            t = &c->threads[i];
    if (t == NULL && c->n_threads > 0)
        t = &c->threads[0];
    snprintf(sig, sizeof sig, "%s", repro_signal_name(c->signo, sb, sizeof sb));
    for (i = 0; t != NULL && i < t->n_frames && taken < 3; i++) {
        const struct repro_crash_frame *f = &t->frames[i];
        n = strlen(sig);
        if (is_runtime_frame(c, f))
            continue;
        if (f->function)
            snprintf(sig + n, sizeof sig - n, "|%s", f->function);
        else if (f->module >= 0)
            snprintf(sig + n, sizeof sig - n, "|%s+0x%llx",
                     strrchr(c->modules[f->module].path, '/')
                         ? strrchr(c->modules[f->module].path, '/') + 1
                         : c->modules[f->module].path,
                     (unsigned long long)f->offset);
        else
            continue;
        taken++;
    }
    return repro_crash_set_str(&c->signature, sig);
}
