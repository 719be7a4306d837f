/*
 * The crash record model (include/repro/crash.h): building, module
 * resolution, invariant checks. Every producer (supervisor, in-process
 * agent via ingest, core import) fills the same structure, and the store
 * writes it whole.
 */
#include "repro/crash.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct repro_crash *repro_crash_new(void)
{
    struct repro_crash *c = repro_calloc(1, sizeof *c);
    if (c)
        c->tid = -1;
    return c;
}

void repro_crash_free(struct repro_crash *c)
{
    size_t i, k;
    if (c == NULL)
        return;
    for (i = 0; i < c->n_modules; i++)
        repro_free(c->modules[i].path);
    for (i = 0; i < c->n_threads; i++) {
        struct repro_crash_thread *t = &c->threads[i];
        for (k = 0; k < t->n_frames; k++) {
            repro_free(t->frames[k].function);
            repro_free(t->frames[k].file);
        }
        repro_free(t->frames);
        repro_free(t->registers);
    }
    repro_free(c->modules);
    repro_free(c->threads);
    repro_free(c->conns);
    repro_free(c->executable);
    repro_free(c->cmdline);
    repro_free(c->service);
    repro_free(c->hostname);
    repro_free(c->signature);
    repro_free(c->record_key);
    repro_free(c);
}

int repro_crash_set_str(char **field, const char *value)
{
    char *d = NULL;
    if (value != NULL && (d = repro_strdup(value)) == NULL)
        return REPRO_E_NOMEM;
    repro_free(*field);
    *field = d;
    return REPRO_OK;
}

/* Grows an array of elem-sized items to hold one more, within max. */
static int grow(void **arr, size_t *cap, size_t n, size_t elem, size_t max)
{
    size_t ncap;
    void *p;
    if (n < *cap)
        return REPRO_OK;
    if (n >= max)
        return REPRO_E_LIMIT;
    ncap = *cap ? *cap * 2 : 8;
    if (ncap > max)
        ncap = max;
    p = repro_realloc(*arr, ncap * elem);
    if (p == NULL)
        return REPRO_E_NOMEM;
    memset((char *)p + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = p;
    *cap = ncap;
    return REPRO_OK;
}

int repro_crash_add_module(struct repro_crash *c, const char *path, uint64_t start, uint64_t end,
                           uint64_t load_bias, const char *build_id_hex)
{
    struct repro_crash_module *m;
    int rc = grow((void **)&c->modules, &c->cap_modules, c->n_modules, sizeof *c->modules,
                  REPRO_CRASH_MAX_MODULES);
    if (rc)
        return rc;
    m = &c->modules[c->n_modules];
    memset(m, 0, sizeof *m);
    if (repro_crash_set_str(&m->path, path ? path : "") != REPRO_OK)
        return REPRO_E_NOMEM;
    m->start = start;
    m->end = end;
    m->load_bias = load_bias;
    snprintf(m->build_id, sizeof m->build_id, "%s", build_id_hex ? build_id_hex : "");
    c->n_modules++;
    return REPRO_OK;
}

struct repro_crash_thread *repro_crash_add_thread(struct repro_crash *c, int tid, const char *name,
                                                  int crashed)
{
    struct repro_crash_thread *t;
    if (grow((void **)&c->threads, &c->cap_threads, c->n_threads, sizeof *c->threads,
             REPRO_CRASH_MAX_THREADS) != REPRO_OK)
        return NULL;
    t = &c->threads[c->n_threads++];
    memset(t, 0, sizeof *t);
    t->tid = tid;
    snprintf(t->name, sizeof t->name, "%s", name ? name : "");
    t->crashed = crashed;
    return t;
}

int repro_crash_add_frame(struct repro_crash_thread *t, uint64_t pc)
{
    int rc = grow((void **)&t->frames, &t->cap_frames, t->n_frames, sizeof *t->frames,
                  REPRO_CRASH_MAX_FRAMES);
    if (rc)
        return rc;
    memset(&t->frames[t->n_frames], 0, sizeof *t->frames);
    t->frames[t->n_frames].pc = pc;
    t->frames[t->n_frames].module = -1;
    t->n_frames++;
    return REPRO_OK;
}

int repro_crash_add_conn(struct repro_crash *c, const struct repro_crash_conn *conn)
{
    int rc = grow((void **)&c->conns, &c->cap_conns, c->n_conns, sizeof *c->conns,
                  REPRO_CRASH_MAX_CONNS);
    if (rc)
        return rc;
    c->conns[c->n_conns++] = *conn;
    return REPRO_OK;
}

void repro_crash_mark_partial(struct repro_crash *c, const char *fmt, ...)
{
    va_list ap;
    if (c->partial)
        return;
    c->partial = 1;
    va_start(ap, fmt);
    vsnprintf(c->partial_reason, sizeof c->partial_reason, fmt, ap);
    va_end(ap);
}

void repro_crash_resolve_modules(struct repro_crash *c)
{
    size_t i, k, m;
    for (i = 0; i < c->n_threads; i++) {
        struct repro_crash_thread *t = &c->threads[i];
        for (k = 0; k < t->n_frames; k++) {
            struct repro_crash_frame *f = &t->frames[k];
            f->module = -1;
            for (m = 0; m < c->n_modules; m++) {
                if (f->pc >= c->modules[m].start && f->pc < c->modules[m].end) {
                    f->module = (int)m;
                    f->offset = f->pc - c->modules[m].load_bias;
                    break;
                }
            }
        }
    }
}

int repro_crash_validate(const struct repro_crash *c, struct repro_error *err)
{
    size_t i, k;
    int crashed = 0;
    for (i = 0; i < c->n_threads; i++) {
        const struct repro_crash_thread *t = &c->threads[i];
        crashed += t->crashed != 0;
        for (k = 0; k < t->n_frames; k++)
            if (t->frames[k].module < -1 || t->frames[k].module >= (int)c->n_modules)
                return repro_error_set(err, REPRO_E_MALFORMED,
                                       "crash record: frame %zu of thread %d names module %d of %zu",
                                       k, t->tid, t->frames[k].module, c->n_modules);
    }
    if (crashed > 1)
        return repro_error_set(err, REPRO_E_MALFORMED,
                               "crash record: %d threads are marked as the crashing one", crashed);
    return REPRO_OK;
}

const char *repro_signal_name(int signo, char *buf, size_t len)
{
    static const struct {
        int no;
        const char *name;
    } names[] = {{SIGSEGV, "SIGSEGV"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
                 {SIGILL, "SIGILL"},   {SIGABRT, "SIGABRT"}, {SIGTRAP, "SIGTRAP"},
                 {SIGSYS, "SIGSYS"},   {SIGKILL, "SIGKILL"}, {SIGTERM, "SIGTERM"},
                 {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGPIPE, "SIGPIPE"},
                 {SIGHUP, "SIGHUP"},   {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"},
                 {SIGALRM, "SIGALRM"}, {SIGCHLD, "SIGCHLD"}, {SIGXCPU, "SIGXCPU"},
                 {SIGXFSZ, "SIGXFSZ"}};
    size_t i;
    if (signo == 0) /* a record taken without a signal: repro_supervisor_record_now */
        return "hang";
    for (i = 0; i < sizeof names / sizeof *names; i++)
        if (names[i].no == signo)
            return names[i].name;
    snprintf(buf, len, "SIG%d", signo);
    return buf;
}
