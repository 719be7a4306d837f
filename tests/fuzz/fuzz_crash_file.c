/*
 * Fuzz target for the crash record reader (crash/crash_file.c,
 * docs/crash-record.md).
 *
 * The input is a record file. The reader must return one of its documented
 * outcomes, set a message on failure, hand back a crash only when it
 * documents one (complete, or partial with a reason) and keep the model's
 * invariants (repro_crash_validate). Every complete crash it returns is then
 * written back in the record format by the small writer below and read
 * again: the second reading must be complete and equal to the first (a differential
 * check of the reader against its own documentation). The input is copied
 * to its own heap block so that ASan catches reads past its end.
 * Violations abort().
 */
#include "repro/crash.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_crash_file.c:%d: check failed: %s\n", __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_text(struct repro_buf *b, const char *s)
{
    for (; *s; s++) {
        uint8_t c = (uint8_t)*s;
        if (c == '\\')
            CHECK(repro_buf_append(b, "\\\\", 2) == REPRO_OK);
        else if (c < 0x20 || c == 0x7f)
            CHECK(repro_buf_printf(b, "\\x%02x", c) == REPRO_OK);
        else
            CHECK(repro_buf_append(b, s, 1) == REPRO_OK);
    }
}

static void put_hex(struct repro_buf *b, const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        CHECK(repro_buf_printf(b, "%02x", p[i]) == REPRO_OK);
}

/* Writes c as a version-1 record. */
static void write_record(struct repro_buf *b, const struct repro_crash *c)
{
    size_t i, k;
    CHECK(repro_buf_printf(b,
                           "REPRO-CRASH 1\nsource %s\npid %d\ntime_us %lld\nsigno %d\n"
                           "si_code %d\nfault_address 0x%llx\n",
                           c->source, c->pid, (long long)c->time_us, c->signo, c->si_code,
                           (unsigned long long)c->fault_address) == REPRO_OK);
    if (c->tid > 0)
        CHECK(repro_buf_printf(b, "tid %d\n", c->tid) == REPRO_OK);
    if (c->executable) {
        CHECK(repro_buf_printf(b, "executable ") == REPRO_OK);
        put_text(b, c->executable);
        CHECK(repro_buf_append(b, "\n", 1) == REPRO_OK);
    }
    for (i = 0; i < c->n_modules; i++) {
        const struct repro_crash_module *m = &c->modules[i];
        CHECK(repro_buf_printf(b, "module 0x%llx 0x%llx 0x%llx %s ", (unsigned long long)m->start,
                               (unsigned long long)m->end, (unsigned long long)m->load_bias,
                               m->build_id[0] ? m->build_id : "-") == REPRO_OK);
        put_text(b, m->path);
        CHECK(repro_buf_append(b, "\n", 1) == REPRO_OK);
    }
    for (i = 0; i < c->n_threads; i++) {
        const struct repro_crash_thread *t = &c->threads[i];
        CHECK(repro_buf_printf(b, "thread %d %d ", t->tid, t->crashed) == REPRO_OK);
        put_text(b, t->name);
        CHECK(repro_buf_append(b, "\n", 1) == REPRO_OK);
        for (k = 0; k < t->n_frames; k++)
            CHECK(repro_buf_printf(b, "frame %zu 0x%llx\n", k,
                                   (unsigned long long)t->frames[k].pc) == REPRO_OK);
    }
    for (i = 0; i < c->n_conns; i++) {
        const struct repro_crash_conn *k2 = &c->conns[i];
        size_t ip_len = k2->family == 6 ? 16 : 4;
        CHECK(repro_buf_printf(b, "conn %d %d ", k2->fd, k2->family) == REPRO_OK);
        put_hex(b, k2->local_ip, ip_len);
        CHECK(repro_buf_printf(b, " %u ", k2->local_port) == REPRO_OK);
        put_hex(b, k2->remote_ip, ip_len);
        CHECK(repro_buf_printf(b, " %u %d\n", k2->remote_port, k2->state) == REPRO_OK);
    }
    CHECK(repro_buf_printf(b, "end\n") == REPRO_OK);
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void check_equal(const struct repro_crash *a, const struct repro_crash *b)
{
    size_t i, k;
    CHECK(a->pid == b->pid && a->tid == b->tid && a->time_us == b->time_us);
    CHECK(a->signo == b->signo && a->si_code == b->si_code);
    CHECK(a->fault_address == b->fault_address && strcmp(a->source, b->source) == 0);
    CHECK(same_str(a->executable, b->executable));
    CHECK(a->n_modules == b->n_modules && a->n_threads == b->n_threads && a->n_conns == b->n_conns);
    for (i = 0; i < a->n_modules; i++) {
        CHECK(strcmp(a->modules[i].path, b->modules[i].path) == 0);
        CHECK(strcmp(a->modules[i].build_id, b->modules[i].build_id) == 0);
        CHECK(a->modules[i].start == b->modules[i].start && a->modules[i].end == b->modules[i].end);
        CHECK(a->modules[i].load_bias == b->modules[i].load_bias);
    }
    for (i = 0; i < a->n_threads; i++) {
        const struct repro_crash_thread *x = &a->threads[i], *y = &b->threads[i];
        CHECK(x->tid == y->tid && x->crashed == y->crashed && strcmp(x->name, y->name) == 0);
        CHECK(x->n_frames == y->n_frames);
        for (k = 0; k < x->n_frames; k++) {
            CHECK(x->frames[k].pc == y->frames[k].pc);
            CHECK(x->frames[k].module == y->frames[k].module);
            CHECK(x->frames[k].module < 0 || x->frames[k].offset == y->frames[k].offset);
        }
    }
    CHECK(a->n_conns == 0 || memcmp(a->conns, b->conns, a->n_conns * sizeof *a->conns) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    struct repro_crash *c = NULL, *again = NULL;
    struct repro_error err = {0}, err2 = {0};
    struct repro_buf b;
    int rc;

    CHECK(copy != NULL);
    if (size)
        memcpy(copy, data, size);
    rc = repro_crash_file_parse(copy, size, &c, &err);
    free(copy);
    CHECK(rc == REPRO_OK || rc == REPRO_E_MALFORMED || rc == REPRO_E_UNSUPPORTED ||
          rc == REPRO_E_NOMEM);
    CHECK(rc == REPRO_OK ? err.code == 0 : (err.code == rc && err.msg[0] != '\0'));
    CHECK(rc != REPRO_OK || c != NULL);
    CHECK(rc != REPRO_E_UNSUPPORTED || c == NULL);
    if (c == NULL)
        return 0;
    CHECK(rc == REPRO_OK || (c->partial && c->partial_reason[0] != '\0'));
    CHECK(repro_crash_validate(c, NULL) == REPRO_OK);
    if (rc != REPRO_OK) {
        repro_crash_free(c);
        return 0;
    }

    repro_buf_init(&b, (size_t)64 << 20);
    write_record(&b, c);
    rc = repro_crash_file_parse(b.data, b.len, &again, &err2);
    if (rc != REPRO_OK)
        fprintf(stderr, "re-read failed: %s\n", err2.msg);
    CHECK(rc == REPRO_OK);
    check_equal(c, again);
    repro_buf_release(&b);
    repro_crash_free(again);
    repro_crash_free(c);
    return 0;
}
