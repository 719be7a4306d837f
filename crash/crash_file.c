/*
 * Reader of crash record files, the text records that librepro_crash.so
 * writes (docs/crash-record.md, version 1), into struct repro_crash.
 *
 * The input is any sequence of bytes: a record cut short by a dying
 * process, a damaged disk block, or garbage. Lines are found with memchr
 * within a 32768-byte cap, every byte is checked before use, numbers are
 * parsed by hand with overflow checks and text values are unescaped into a
 * bounded scratch buffer; nothing here treats input as a C string. Reading
 * stops at the first bad line; what the lines before it held is returned
 * as a partial crash, because a crash that is half known is still worth
 * keeping.
 *
 * Left out: writing records (only the agent does, from a signal handler)
 * and symbolization.
 */
#include "repro/crash.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LINE_MAX_BYTES 32768 /* including the LF */
#define KEY_MAX_BYTES 32
#define NAME_MAX_BYTES 31 /* struct repro_crash_thread.name */

/* The single-valued keys, one bit each. */
enum {
    K_SOURCE = 1u << 0,
    K_PID = 1u << 1,
    K_TID = 1u << 2,
    K_TIME = 1u << 3,
    K_SIGNO = 1u << 4,
    K_SICODE = 1u << 5,
    K_FAULT = 1u << 6,
    K_EXE = 1u << 7,
    K_CMDLINE = 1u << 8,
    K_HOST = 1u << 9,
    K_SERVICE = 1u << 10,
    K_ELAPSED = 1u << 11,
};

/* A borrowed view into the input. */
struct span {
    const uint8_t *p;
    size_t n;
};

struct reader {
    struct repro_crash *c;
    struct repro_error *err; /* never NULL inside the reader */
    unsigned line;           /* 1-based number of the line being read */
    unsigned seen;           /* K_* bits */
    long thread;             /* index of the thread regs/frame/unwind lines describe, or -1 */
    int thread_regs, thread_unwind;
    int ended;
    int cut;          /* the input stops before 'end' */
    char *text;       /* scratch for unescaped text, LINE_MAX_BYTES */
    char detail[200]; /* "line N: what" of the first problem */
};

/* Records a problem with the current line: REPRO_E_MALFORMED. */
__attribute__((format(printf, 2, 3))) static int bad(struct reader *r, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r->err->code == 0)
        snprintf(r->detail, sizeof r->detail, "line %u: %s", r->line, what);
    return repro_error_set(r->err, REPRO_E_MALFORMED, "crash record line %u: %s", r->line, what);
}

static int nomem(struct reader *r)
{
    return repro_error_set(r->err, REPRO_E_NOMEM, "cannot read crash record: out of memory");
}

/* Quotes a field for a message (printable, cut to 40 bytes). */
static const char *quote(char *buf, size_t cap, struct span f)
{
    return repro_excerpt(buf, cap, f.p, f.n);
}

/* ---- fields and numbers ----------------------------------------------- */

/* Takes the next space-separated field off v. Fields are separated by
 * exactly one space, so an empty field is an error (-1). */
static int next_field(struct span *v, struct span *f)
{
    const uint8_t *sp;
    if (v->n == 0)
        return -1;
    sp = memchr(v->p, ' ', v->n);
    f->p = v->p;
    f->n = sp ? (size_t)(sp - v->p) : v->n;
    if (f->n == 0)
        return -1;
    v->p += f->n + (sp != NULL);
    v->n -= f->n + (sp != NULL);
    return 0;
}

static int dec_u64(struct span f, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (f.n == 0 || f.n > 20)
        return -1;
    for (i = 0; i < f.n; i++) {
        unsigned d = (unsigned)f.p[i] - '0';
        if (d > 9 || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* min <= 0 <= max. */
static int dec_i64(struct span f, int64_t min, int64_t max, int64_t *out)
{
    uint64_t v;
    if (f.n > 0 && f.p[0] == '-') {
        struct span rest = {f.p + 1, f.n - 1};
        if (dec_u64(rest, (uint64_t)0 - (uint64_t)min, &v) != 0)
            return -1;
        *out = v == 0 ? 0 : -(int64_t)(v - 1) - 1;
        return 0;
    }
    if (dec_u64(f, (uint64_t)max, &v) != 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* "0x" and 1 to 16 hex digits. */
static int hex_u64(struct span f, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (f.n < 3 || f.n > 18 || f.p[0] != '0' || f.p[1] != 'x')
        return -1;
    for (i = 2; i < f.n; i++) {
        int d = repro_hex_digit(f.p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* Exactly 2*n hex digits into n bytes. */
static int hex_bytes(struct span f, uint8_t *out, size_t n)
{
    size_t i;
    if (f.n != 2 * n)
        return -1;
    for (i = 0; i < n; i++) {
        int hi = repro_hex_digit(f.p[2 * i]), lo = repro_hex_digit(f.p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

/* Unescapes a text value into r->text (NUL-terminated, at most cap-1
 * bytes). Returns its length or -1 with the problem reported. */
static long text(struct reader *r, struct span v, size_t cap, const char *what)
{
    size_t i = 0, o = 0;
    while (i < v.n) {
        uint8_t c = v.p[i];
        if (c == '\\') {
            if (i + 1 < v.n && v.p[i + 1] == '\\') {
                c = '\\';
                i += 2;
            } else if (i + 3 < v.n && v.p[i + 1] == 'x' && repro_hex_digit(v.p[i + 2]) >= 0 &&
                       repro_hex_digit(v.p[i + 3]) >= 0) {
                c = (uint8_t)(repro_hex_digit(v.p[i + 2]) << 4 | repro_hex_digit(v.p[i + 3]));
                i += 4;
                if (c == 0)
                    return bad(r, "%s holds an escaped NUL byte", what), -1;
            } else {
                return bad(r, "bad escape at byte %zu of the %s", i + 1, what), -1;
            }
        } else {
            i++;
        }
        if (o + 1 >= cap)
            return bad(r, "%s is longer than %zu bytes", what, cap - 1), -1;
        r->text[o++] = (char)c;
    }
    r->text[o] = '\0';
    return (long)o;
}

/* ---- one handler per key ---------------------------------------------- */

static int k_source(struct reader *r, struct span v)
{
    char q[48];
    size_t i;
    if (v.n == 0 || v.n >= sizeof r->c->source)
        return bad(r, "bad source '%s'", quote(q, sizeof q, v));
    for (i = 0; i < v.n; i++)
        if (v.p[i] < 'a' || v.p[i] > 'z')
            return bad(r, "bad source '%s'", quote(q, sizeof q, v));
    memcpy(r->c->source, v.p, v.n);
    r->c->source[v.n] = '\0';
    return REPRO_OK;
}

static int k_int(struct reader *r, struct span v, const char *key, int64_t min, int64_t max,
                 int64_t *out)
{
    char q[48];
    if (dec_i64(v, min, max, out) != 0)
        return bad(r, "bad %s '%s'", key, quote(q, sizeof q, v));
    return REPRO_OK;
}

static int k_id(struct reader *r, struct span v, const char *key, int *out)
{
    uint64_t x;
    char q[48];
    if (dec_u64(v, INT_MAX, &x) != 0 || x == 0)
        return bad(r, "bad %s '%s'", key, quote(q, sizeof q, v));
    *out = (int)x;
    return REPRO_OK;
}

static int k_pid(struct reader *r, struct span v)
{
    return k_id(r, v, "pid", &r->c->pid);
}

static int k_tid(struct reader *r, struct span v)
{
    return k_id(r, v, "tid", &r->c->tid);
}

static int k_time(struct reader *r, struct span v)
{
    uint64_t x;
    char q[48];
    if (dec_u64(v, INT64_MAX, &x) != 0)
        return bad(r, "bad time_us '%s'", quote(q, sizeof q, v));
    r->c->time_us = (int64_t)x;
    return REPRO_OK;
}

static int k_signo(struct reader *r, struct span v)
{
    uint64_t x;
    char q[48];
    if (dec_u64(v, 64, &x) != 0 || x == 0)
        return bad(r, "bad signo '%s'", quote(q, sizeof q, v));
    r->c->signo = (int)x;
    return REPRO_OK;
}

static int k_sicode(struct reader *r, struct span v)
{
    int64_t x = 0;
    int rc = k_int(r, v, "si_code", INT32_MIN, INT32_MAX, &x);
    if (rc == REPRO_OK)
        r->c->si_code = (int)x;
    return rc;
}

static int k_fault(struct reader *r, struct span v)
{
    char q[48];
    if (hex_u64(v, &r->c->fault_address) != 0)
        return bad(r, "bad fault_address '%s'", quote(q, sizeof q, v));
    return REPRO_OK;
}

static int k_elapsed(struct reader *r, struct span v)
{
    char q[48];
    uint64_t x;
    if (dec_u64(v, UINT64_MAX, &x) != 0)
        return bad(r, "bad elapsed_ns '%s'", quote(q, sizeof q, v));
    return REPRO_OK; /* a measurement, not part of the crash model */
}

static int set_text(struct reader *r, struct span v, char **field, const char *what)
{
    if (text(r, v, LINE_MAX_BYTES, what) < 0)
        return REPRO_E_MALFORMED;
    return repro_crash_set_str(field, r->text) == REPRO_OK ? REPRO_OK : nomem(r);
}

static int k_exe(struct reader *r, struct span v)
{
    return set_text(r, v, &r->c->executable, "executable");
}

static int k_cmdline(struct reader *r, struct span v)
{
    return set_text(r, v, &r->c->cmdline, "cmdline");
}

static int k_host(struct reader *r, struct span v)
{
    return set_text(r, v, &r->c->hostname, "hostname");
}

static int k_service(struct reader *r, struct span v)
{
    return set_text(r, v, &r->c->service, "service");
}

/* module START END BIAS BUILD_ID PATH */
static int k_module(struct reader *r, struct span v)
{
    struct span f[4];
    uint64_t start, end, bias;
    char q[48], id[129];
    size_t i;
    int rc;

    for (i = 0; i < 4; i++)
        if (next_field(&v, &f[i]) != 0)
            return bad(r, "module line has %zu of its 5 fields", i);
    if (hex_u64(f[0], &start) != 0)
        return bad(r, "bad module start '%s'", quote(q, sizeof q, f[0]));
    if (hex_u64(f[1], &end) != 0)
        return bad(r, "bad module end '%s'", quote(q, sizeof q, f[1]));
    if (hex_u64(f[2], &bias) != 0)
        return bad(r, "bad module load bias '%s'", quote(q, sizeof q, f[2]));
    if (end < start)
        return bad(r, "module ends (0x%llx) before it starts (0x%llx)", (unsigned long long)end,
                   (unsigned long long)start);
    if (f[3].n == 1 && f[3].p[0] == '-') {
        id[0] = '\0';
    } else {
        if (f[3].n % 2 != 0 || f[3].n >= sizeof id)
            return bad(r, "bad build-id '%s'", quote(q, sizeof q, f[3]));
        for (i = 0; i < f[3].n; i++) {
            if (repro_hex_digit(f[3].p[i]) < 0)
                return bad(r, "bad build-id '%s'", quote(q, sizeof q, f[3]));
            id[i] = (char)(f[3].p[i] | 0x20); /* lower case */
        }
        id[f[3].n] = '\0';
    }
    if (text(r, v, LINE_MAX_BYTES, "module path") < 0)
        return REPRO_E_MALFORMED;
    rc = repro_crash_add_module(r->c, r->text, start, end, bias, id);
    if (rc == REPRO_E_LIMIT)
        return bad(r, "more than %d modules", REPRO_CRASH_MAX_MODULES);
    return rc == REPRO_OK ? REPRO_OK : nomem(r);
}

/* thread TID CRASHED NAME */
static int k_thread(struct reader *r, struct span v)
{
    struct span f_tid, f_crashed;
    uint64_t tid;
    size_t i;
    int crashed;
    char q[48];

    if (next_field(&v, &f_tid) != 0 || next_field(&v, &f_crashed) != 0)
        return bad(r, "thread line needs TID CRASHED NAME");
    if (dec_u64(f_tid, INT_MAX, &tid) != 0 || tid == 0)
        return bad(r, "bad thread id '%s'", quote(q, sizeof q, f_tid));
    if (f_crashed.n != 1 || (f_crashed.p[0] != '0' && f_crashed.p[0] != '1'))
        return bad(r, "thread crashed flag '%s' is not 0 or 1", quote(q, sizeof q, f_crashed));
    crashed = f_crashed.p[0] == '1';
    for (i = 0; crashed && i < r->c->n_threads; i++)
        if (r->c->threads[i].crashed)
            return bad(r, "a second thread (%d) is marked as the crashing one", (int)tid);
    if (text(r, v, NAME_MAX_BYTES + 1, "thread name") < 0)
        return REPRO_E_MALFORMED;
    if (r->c->n_threads >= REPRO_CRASH_MAX_THREADS)
        return bad(r, "more than %d threads", REPRO_CRASH_MAX_THREADS);
    if (repro_crash_add_thread(r->c, (int)tid, r->text, crashed) == NULL)
        return nomem(r);
    r->thread = (long)r->c->n_threads - 1;
    r->thread_regs = r->thread_unwind = 0;
    return REPRO_OK;
}

static struct repro_crash_thread *current_thread(struct reader *r, const char *key)
{
    if (r->thread < 0) {
        bad(r, "'%s' before any 'thread' line", key);
        return NULL;
    }
    return &r->c->threads[r->thread];
}

static int k_regs(struct reader *r, struct span v)
{
    struct repro_crash_thread *t = current_thread(r, "regs");
    if (t == NULL)
        return REPRO_E_MALFORMED;
    if (r->thread_regs++)
        return bad(r, "second 'regs' line for thread %d", t->tid);
    return set_text(r, v, &t->registers, "registers");
}

/* frame IDX PC */
static int k_frame(struct reader *r, struct span v)
{
    struct repro_crash_thread *t = current_thread(r, "frame");
    struct span f_idx, f_pc;
    uint64_t idx, pc;
    char q[48];
    int rc;

    if (t == NULL)
        return REPRO_E_MALFORMED;
    if (r->thread_unwind)
        return bad(r, "frame after the 'unwind' line of thread %d", t->tid);
    if (next_field(&v, &f_idx) != 0 || next_field(&v, &f_pc) != 0 || v.n != 0)
        return bad(r, "frame line needs exactly IDX PC");
    if (dec_u64(f_idx, UINT32_MAX, &idx) != 0)
        return bad(r, "bad frame index '%s'", quote(q, sizeof q, f_idx));
    if (idx != t->n_frames)
        return bad(r, "frame %llu of thread %d, expected frame %zu", (unsigned long long)idx,
                   t->tid, t->n_frames);
    if (hex_u64(f_pc, &pc) != 0)
        return bad(r, "bad frame pc '%s'", quote(q, sizeof q, f_pc));
    rc = repro_crash_add_frame(t, pc);
    if (rc == REPRO_E_LIMIT)
        return bad(r, "more than %d frames in thread %d", REPRO_CRASH_MAX_FRAMES, t->tid);
    return rc == REPRO_OK ? REPRO_OK : nomem(r);
}

/* unwind end | unwind limit | unwind error CODE */
static int k_unwind(struct reader *r, struct span v)
{
    struct repro_crash_thread *t = current_thread(r, "unwind");
    struct span f;
    int64_t code;
    char q[48];

    if (t == NULL)
        return REPRO_E_MALFORMED;
    if (r->thread_unwind++)
        return bad(r, "second 'unwind' line for thread %d", t->tid);
    if (next_field(&v, &f) != 0)
        return bad(r, "unwind line without a status");
    if (f.n == 3 && memcmp(f.p, "end", 3) == 0 && v.n == 0)
        return REPRO_OK;
    if (f.n == 5 && memcmp(f.p, "limit", 5) == 0 && v.n == 0) {
        t->partial = 1;
        repro_crash_mark_partial(r->c, "thread %d: stack cut at %zu frames", t->tid, t->n_frames);
        return REPRO_OK;
    }
    if (f.n == 5 && memcmp(f.p, "error", 5) == 0 && next_field(&v, &f) == 0 && v.n == 0 &&
        dec_i64(f, INT32_MIN, INT32_MAX, &code) == 0) {
        t->partial = 1;
        repro_crash_mark_partial(r->c,
                                 "thread %d: unwinding stopped after %zu frames (libunwind %lld)",
                                 t->tid, t->n_frames, (long long)code);
        return REPRO_OK;
    }
    return bad(r, "bad unwind status '%s'", quote(q, sizeof q, f));
}

/* conn FD FAMILY LOCAL_IP LOCAL_PORT REMOTE_IP REMOTE_PORT STATE */
static int k_conn(struct reader *r, struct span v)
{
    struct span f[7];
    struct repro_crash_conn k;
    uint64_t fd, lport, rport, state;
    size_t i, ip_len;
    char q[48];
    int rc;

    for (i = 0; i < 7; i++)
        if (next_field(&v, &f[i]) != 0)
            return bad(r, "conn line has %zu of its 7 fields", i);
    if (v.n != 0)
        return bad(r, "conn line has more than 7 fields");
    memset(&k, 0, sizeof k);
    if (dec_u64(f[0], INT_MAX, &fd) != 0)
        return bad(r, "bad conn descriptor '%s'", quote(q, sizeof q, f[0]));
    if (f[1].n != 1 || (f[1].p[0] != '4' && f[1].p[0] != '6'))
        return bad(r, "conn family '%s' is not 4 or 6", quote(q, sizeof q, f[1]));
    k.family = f[1].p[0] - '0';
    ip_len = k.family == 6 ? 16 : 4;
    if (hex_bytes(f[2], k.local_ip, ip_len) != 0)
        return bad(r, "bad conn local address '%s'", quote(q, sizeof q, f[2]));
    if (hex_bytes(f[4], k.remote_ip, ip_len) != 0)
        return bad(r, "bad conn remote address '%s'", quote(q, sizeof q, f[4]));
    if (dec_u64(f[3], 65535, &lport) != 0)
        return bad(r, "bad conn local port '%s'", quote(q, sizeof q, f[3]));
    if (dec_u64(f[5], 65535, &rport) != 0)
        return bad(r, "bad conn remote port '%s'", quote(q, sizeof q, f[5]));
    if (dec_u64(f[6], 255, &state) != 0)
        return bad(r, "bad conn state '%s'", quote(q, sizeof q, f[6]));
    k.fd = (int)fd;
    k.local_port = (uint16_t)lport;
    k.remote_port = (uint16_t)rport;
    k.state = (int)state;
    rc = repro_crash_add_conn(r->c, &k);
    if (rc == REPRO_E_LIMIT)
        return bad(r, "more than %d connections", REPRO_CRASH_MAX_CONNS);
    return rc == REPRO_OK ? REPRO_OK : nomem(r);
}

static int k_partial(struct reader *r, struct span v)
{
    if (text(r, v, LINE_MAX_BYTES, "partial reason") < 0)
        return REPRO_E_MALFORMED;
    repro_crash_mark_partial(r->c, "%s", r->text[0] ? r->text : "incomplete record");
    return REPRO_OK;
}

static int k_end(struct reader *r, struct span v)
{
    if (v.n != 0)
        return bad(r, "'end' takes no value");
    r->ended = 1;
    return REPRO_OK;
}

static const struct key_def {
    const char *name;
    unsigned once; /* K_* bit of a single-valued key, 0 for a repeated one */
    int (*fn)(struct reader *r, struct span v);
} keys[] = {
    {"source", K_SOURCE, k_source},
    {"pid", K_PID, k_pid},
    {"tid", K_TID, k_tid},
    {"time_us", K_TIME, k_time},
    {"signo", K_SIGNO, k_signo},
    {"si_code", K_SICODE, k_sicode},
    {"fault_address", K_FAULT, k_fault},
    {"executable", K_EXE, k_exe},
    {"cmdline", K_CMDLINE, k_cmdline},
    {"hostname", K_HOST, k_host},
    {"service", K_SERVICE, k_service},
    {"elapsed_ns", K_ELAPSED, k_elapsed},
    {"module", 0, k_module},
    {"thread", 0, k_thread},
    {"regs", 0, k_regs},
    {"frame", 0, k_frame},
    {"unwind", 0, k_unwind},
    {"conn", 0, k_conn},
    {"partial", 0, k_partial},
    {"end", 0, k_end},
};

/* ---- lines ------------------------------------------------------------ */

enum line_outcome { LINE_OK, LINE_EOF, LINE_CUT, LINE_TOO_LONG };

/* Takes the next LF-terminated line (without its LF) off the input. */
static enum line_outcome next_line(const uint8_t *p, size_t len, size_t *pos, struct span *line)
{
    size_t left = len - *pos, scan = left < LINE_MAX_BYTES ? left : LINE_MAX_BYTES;
    const uint8_t *lf;

    if (left == 0)
        return LINE_EOF;
    lf = memchr(p + *pos, '\n', scan);
    if (lf == NULL)
        return left < LINE_MAX_BYTES ? LINE_CUT : LINE_TOO_LONG;
    line->p = p + *pos;
    line->n = (size_t)(lf - line->p);
    *pos += line->n + 1;
    return LINE_OK;
}

static int parse_line(struct reader *r, struct span line)
{
    struct span key = line, v = {NULL, 0};
    const uint8_t *sp;
    size_t i;
    char q[48];

    for (i = 0; i < line.n; i++)
        if (line.p[i] < 0x20 || line.p[i] == 0x7f)
            return bad(r, "control byte 0x%02x at column %zu", line.p[i], i + 1);
    sp = memchr(line.p, ' ', line.n);
    if (sp) {
        key.n = (size_t)(sp - line.p);
        v.p = sp + 1;
        v.n = line.n - key.n - 1;
    }
    if (key.n == 0 || key.n > KEY_MAX_BYTES || key.p[0] < 'a' || key.p[0] > 'z')
        return bad(r, "not a 'key value' line: '%s'", quote(q, sizeof q, line));
    for (i = 1; i < key.n; i++)
        if (!((key.p[i] >= 'a' && key.p[i] <= 'z') || (key.p[i] >= '0' && key.p[i] <= '9') ||
              key.p[i] == '_'))
            return bad(r, "not a 'key value' line: '%s'", quote(q, sizeof q, line));
    for (i = 0; i < sizeof keys / sizeof *keys; i++) {
        if (strlen(keys[i].name) != key.n || memcmp(keys[i].name, key.p, key.n) != 0)
            continue;
        if (keys[i].once && (r->seen & keys[i].once))
            return bad(r, "second '%s' line", keys[i].name);
        r->seen |= keys[i].once;
        return keys[i].fn(r, v);
    }
    return REPRO_OK; /* an optional line from a newer writer */
}

/* Reads the header: REPRO_OK for version 1; an error otherwise. */
static int parse_header(struct reader *r, const uint8_t *p, size_t len, size_t *pos)
{
    static const char magic[] = "REPRO-CRASH ";
    struct span line, ver;
    uint64_t version;
    char q[48];

    r->line = 1;
    switch (next_line(p, len, pos, &line)) {
    case LINE_EOF: return bad(r, "empty file, not a crash record");
    case LINE_CUT: return bad(r, "truncated inside the header");
    case LINE_TOO_LONG: return bad(r, "not a crash record (no 'REPRO-CRASH 1' header)");
    case LINE_OK: break;
    }
    if (line.n < sizeof magic - 1 || memcmp(line.p, magic, sizeof magic - 1) != 0)
        return bad(r, "not a crash record (no 'REPRO-CRASH 1' header): '%s'",
                   quote(q, sizeof q, line));
    ver.p = line.p + sizeof magic - 1;
    ver.n = line.n - (sizeof magic - 1);
    if (dec_u64(ver, UINT32_MAX, &version) != 0)
        return bad(r, "bad record version '%s'", quote(q, sizeof q, ver));
    if (version != 1)
        return repro_error_set(r->err, REPRO_E_UNSUPPORTED,
                               "crash record version %llu is not supported (this build reads "
                               "version 1)",
                               (unsigned long long)version);
    return REPRO_OK;
}

/* Reads every line after the header; REPRO_OK once 'end' was the last. */
static int parse_body(struct reader *r, const uint8_t *p, size_t len, size_t *pos)
{
    for (;;) {
        struct span line;
        enum line_outcome o;
        int rc;

        r->line++;
        o = next_line(p, len, pos, &line);
        if (o == LINE_EOF && r->ended)
            return REPRO_OK;
        r->cut = o == LINE_EOF || o == LINE_CUT;
        if (o == LINE_EOF)
            return bad(r, "truncated: the record has no 'end' line");
        if (o == LINE_CUT)
            return bad(r, "truncated: the last line has no end of line");
        if (o == LINE_TOO_LONG)
            return bad(r, "longer than %d bytes", LINE_MAX_BYTES);
        if (r->ended)
            return bad(r, "data after the 'end' line");
        if ((rc = parse_line(r, line)) != REPRO_OK)
            return rc;
    }
}

/* Checks what only the whole record can tell. */
static int check_whole(struct reader *r)
{
    size_t i;
    r->line--; /* the 'end' line */
    if (!(r->seen & K_PID))
        return bad(r, "the record has no 'pid' line");
    if (!(r->seen & K_SIGNO))
        return bad(r, "the record has no 'signo' line");
    for (i = 0; i < r->c->n_threads; i++) {
        const struct repro_crash_thread *t = &r->c->threads[i];
        if (t->crashed && (r->seen & K_TID) && t->tid != r->c->tid)
            return bad(r, "the crashing thread %d is not tid %d", t->tid, r->c->tid);
        if (t->crashed && !(r->seen & K_TID))
            r->c->tid = t->tid;
    }
    return REPRO_OK;
}

int repro_crash_file_parse(const uint8_t *p, size_t len, struct repro_crash **out,
                           struct repro_error *err)
{
    struct repro_error local = {0};
    struct reader r;
    size_t pos = 0;
    int rc;

    *out = NULL;
    memset(&r, 0, sizeof r);
    r.err = &local;
    r.thread = -1;
    rc = parse_header(&r, p, len, &pos);
    if (rc != REPRO_OK)
        goto fail;
    r.c = repro_crash_new();
    r.text = repro_malloc(LINE_MAX_BYTES);
    if (r.c == NULL || r.text == NULL) {
        rc = nomem(&r);
        goto fail;
    }
    snprintf(r.c->source, sizeof r.c->source, "inproc");
    rc = parse_body(&r, p, len, &pos);
    if (rc == REPRO_OK)
        rc = check_whole(&r);
    if (rc == REPRO_E_NOMEM)
        goto fail;
    if (rc != REPRO_OK)
        repro_crash_mark_partial(r.c, "%s record: %s", r.cut ? "truncated" : "damaged", r.detail);
    repro_crash_resolve_modules(r.c);
    /* The checks above keep the model's invariants; validate says so. */
    if (repro_crash_validate(r.c, &local) != REPRO_OK && rc == REPRO_OK)
        rc = REPRO_E_MALFORMED;
    repro_free(r.text);
    *out = r.c;
    if (rc != REPRO_OK)
        repro_error_set(err, rc, "%s", local.msg);
    return rc;
fail:
    repro_free(r.text);
    repro_crash_free(r.c);
    repro_error_set(err, rc, "%s", local.msg);
    return rc;
}
