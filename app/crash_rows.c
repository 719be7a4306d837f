/*
 * app/crash_rows: struct repro_crash <-> struct repro_store_crash. The
 * store keeps crashes in its own row types (it depends on no producer);
 * this is the one place that knows both.
 */
#include "app/crash_rows.h"

#include <stdio.h>
#include <string.h>

static void module_row(const struct repro_crash_module *m, struct repro_store_crash_module *out)
{
    out->path = m->path;
    out->start = m->start;
    out->end = m->end;
    out->load_bias = m->load_bias;
    out->build_id = m->build_id[0] ? m->build_id : NULL;
}

static void frame_row(const struct repro_crash_frame *f, struct repro_store_crash_frame *out)
{
    out->pc = f->pc;
    out->module = f->module;
    out->offset = f->offset;
    out->function = f->function;
    out->file = f->file;
    out->line = f->line;
    out->column = f->column;
    out->inlined = f->inlined;
}

static void conn_row(const struct repro_crash_conn *k, struct repro_store_crash_conn *out)
{
    out->fd = k->fd;
    out->family = k->family;
    memcpy(out->local_ip, k->local_ip, sizeof out->local_ip);
    memcpy(out->remote_ip, k->remote_ip, sizeof out->remote_ip);
    out->local_port = k->local_port;
    out->remote_port = k->remote_port;
    out->state = k->state;
}

/* Allocates the arrays of r for c; REPRO_E_NOMEM. */
static int alloc_arrays(struct repro_app_crash_row *r, const struct repro_crash *c)
{
    size_t i, n_frames = 0;

    for (i = 0; i < c->n_threads; i++)
        n_frames += c->threads[i].n_frames;
    r->modules = repro_calloc(c->n_modules ? c->n_modules : 1, sizeof *r->modules);
    r->threads = repro_calloc(c->n_threads ? c->n_threads : 1, sizeof *r->threads);
    r->frames = repro_calloc(n_frames ? n_frames : 1, sizeof *r->frames);
    r->conns = repro_calloc(c->n_conns ? c->n_conns : 1, sizeof *r->conns);
    return r->modules && r->threads && r->frames && r->conns ? REPRO_OK : REPRO_E_NOMEM;
}

int repro_app_crash_row_init(struct repro_app_crash_row *r, const struct repro_crash *c,
                             struct repro_error *err)
{
    struct repro_store_crash *row = &r->row;
    size_t i, k, nf = 0;

    memset(r, 0, sizeof *r);
    if (alloc_arrays(r, c) != REPRO_OK)
        return repro_error_set(err, REPRO_E_NOMEM, "cannot store a crash: out of memory");
    row->time_us = c->time_us;
    row->pid = c->pid;
    row->tid = c->tid;
    row->executable = c->executable;
    row->cmdline = c->cmdline;
    row->service = c->service;
    row->hostname = c->hostname;
    row->signo = c->signo;
    row->si_code = c->si_code;
    row->signal = repro_signal_name(c->signo, r->signal, sizeof r->signal);
    row->fault_address = c->fault_address;
    row->source = c->source;
    row->partial = c->partial;
    row->partial_reason = c->partial_reason;
    row->signature = c->signature;
    row->record_key = c->record_key;
    for (i = 0; i < c->n_modules; i++)
        module_row(&c->modules[i], &r->modules[i]);
    for (i = 0; i < c->n_threads; i++) {
        const struct repro_crash_thread *t = &c->threads[i];
        struct repro_store_crash_thread *out = &r->threads[i];
        out->tid = t->tid;
        out->name = t->name;
        out->registers = t->registers;
        out->crashed = t->crashed;
        out->partial = t->partial;
        out->frames = &r->frames[nf];
        out->n_frames = t->n_frames;
        for (k = 0; k < t->n_frames; k++)
            frame_row(&t->frames[k], &r->frames[nf++]);
    }
    for (i = 0; i < c->n_conns; i++)
        conn_row(&c->conns[i], &r->conns[i]);
    row->modules = r->modules;
    row->n_modules = c->n_modules;
    row->threads = r->threads;
    row->n_threads = c->n_threads;
    row->conns = r->conns;
    row->n_conns = c->n_conns;
    return REPRO_OK;
}

void repro_app_crash_row_release(struct repro_app_crash_row *r)
{
    repro_free(r->modules);
    repro_free(r->threads);
    repro_free(r->frames);
    repro_free(r->conns);
    memset(r, 0, sizeof *r);
}

int repro_app_store_crash(struct repro_store *s, const struct repro_crash *c, int64_t *id,
                          struct repro_error *err)
{
    struct repro_app_crash_row r;
    int rc = repro_crash_validate(c, err);

    if (rc)
        return rc;
    rc = repro_app_crash_row_init(&r, c, err);
    if (rc == REPRO_OK)
        rc = repro_store_crash_add(s, &r.row, id, err);
    repro_app_crash_row_release(&r);
    return rc;
}

int repro_app_update_crash_symbols(struct repro_store *s, int64_t id, const struct repro_crash *c,
                                   struct repro_error *err)
{
    struct repro_app_crash_row r;
    int rc = repro_app_crash_row_init(&r, c, err);

    if (rc == REPRO_OK)
        rc = repro_store_crash_set_symbols(s, id, &r.row, err);
    repro_app_crash_row_release(&r);
    return rc;
}

/* ---- row -> record ----------------------------------------------------- */

static int thread_from_row(struct repro_crash *c, const struct repro_store_crash_thread *t)
{
    struct repro_crash_thread *ct = repro_crash_add_thread(c, t->tid, t->name, t->crashed);
    size_t k;
    int rc;

    if (ct == NULL)
        return REPRO_E_NOMEM;
    ct->partial = t->partial;
    rc = repro_crash_set_str(&ct->registers, t->registers);
    for (k = 0; k < t->n_frames && rc == REPRO_OK; k++) {
        const struct repro_store_crash_frame *f = &t->frames[k];
        struct repro_crash_frame *cf;
        if ((rc = repro_crash_add_frame(ct, f->pc)) != REPRO_OK)
            break;
        cf = &ct->frames[ct->n_frames - 1];
        cf->module = f->module;
        cf->offset = f->offset;
        cf->line = f->line;
        cf->column = f->column;
        cf->inlined = f->inlined;
        if ((rc = repro_crash_set_str(&cf->function, f->function)) == REPRO_OK)
            rc = repro_crash_set_str(&cf->file, f->file);
    }
    return rc;
}

static int parts_from_row(struct repro_crash *c, const struct repro_store_crash *row)
{
    size_t i;
    int rc = REPRO_OK;

    for (i = 0; i < row->n_modules && rc == REPRO_OK; i++) {
        const struct repro_store_crash_module *m = &row->modules[i];
        rc = repro_crash_add_module(c, m->path, m->start, m->end, m->load_bias, m->build_id);
    }
    for (i = 0; i < row->n_threads && rc == REPRO_OK; i++)
        rc = thread_from_row(c, &row->threads[i]);
    for (i = 0; i < row->n_conns && rc == REPRO_OK; i++) {
        const struct repro_store_crash_conn *k = &row->conns[i];
        struct repro_crash_conn cc;
        memset(&cc, 0, sizeof cc);
        cc.fd = k->fd;
        cc.family = k->family;
        memcpy(cc.local_ip, k->local_ip, sizeof cc.local_ip);
        memcpy(cc.remote_ip, k->remote_ip, sizeof cc.remote_ip);
        cc.local_port = k->local_port;
        cc.remote_port = k->remote_port;
        cc.state = k->state;
        rc = repro_crash_add_conn(c, &cc);
    }
    return rc;
}

static int crash_from_row(struct repro_crash *c, const struct repro_store_crash *row)
{
    int rc;

    c->time_us = row->time_us;
    c->pid = row->pid;
    c->tid = row->tid;
    c->signo = row->signo;
    c->si_code = row->si_code;
    c->fault_address = row->fault_address;
    c->partial = row->partial;
    snprintf(c->source, sizeof c->source, "%s", row->source ? row->source : "");
    snprintf(c->partial_reason, sizeof c->partial_reason, "%s",
             row->partial_reason ? row->partial_reason : "");
    if ((rc = repro_crash_set_str(&c->executable, row->executable)) ||
        (rc = repro_crash_set_str(&c->cmdline, row->cmdline)) ||
        (rc = repro_crash_set_str(&c->service, row->service)) ||
        (rc = repro_crash_set_str(&c->hostname, row->hostname)) ||
        (rc = repro_crash_set_str(&c->signature, row->signature)))
        return rc;
    return parts_from_row(c, row);
}

int repro_app_load_crash(struct repro_store *s, int64_t id, struct repro_crash **out,
                         struct repro_error *err)
{
    struct repro_store_crash *row = NULL;
    struct repro_crash *c;
    int rc;

    *out = NULL;
    rc = repro_store_crash_get(s, id, &row, err);
    if (rc)
        return rc;
    c = repro_crash_new();
    rc = c ? crash_from_row(c, row) : REPRO_E_NOMEM;
    repro_store_crash_free(row);
    if (rc != REPRO_OK) {
        repro_error_set(err, rc, "cannot load crash %lld: %s", (long long)id, repro_strerror(rc));
        repro_crash_free(c);
        return rc;
    }
    *out = c;
    return REPRO_OK;
}
