/*
 * The ptrace supervisor's pure helpers (crash/supervisor.c): which signals
 * are crashes, /proc/PID/status fields, the kernel's user_regs_struct as
 * repro__regs. No system calls: tested with fixed inputs by
 * tests/unit/test_supervisor.c. Moved out of supervisor.c to keep it under
 * the house size limit.
 */
#include "supervisor.h"

#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/user.h>

int repro__is_crash_signal(int signo)
{
    switch (signo) {
    case SIGSEGV:
    case SIGBUS:
    case SIGFPE:
    case SIGILL:
    case SIGABRT:
    case SIGTRAP:
    case SIGSYS: return 1;
    default: return 0;
    }
}

/* Finds "Name:\t<value>\n" at the start of a line; returns the value. */
static const char *status_field(const char *p, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;
    while (i < len) {
        size_t eol = i;
        while (eol < len && p[eol] != '\n')
            eol++;
        if (eol - i > nlen && memcmp(p + i, name, nlen) == 0 && p[i + nlen] == ':') {
            size_t v = i + nlen + 1;
            while (v < eol && (p[v] == ' ' || p[v] == '\t'))
                v++;
            *vlen = eol - v;
            return p + v;
        }
        i = eol + 1;
    }
    return NULL;
}

static int parse_u64(const char *p, size_t len, int base, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;
    if (len == 0 || len > 20)
        return -1;
    for (i = 0; i < len; i++) {
        int d;
        char ch = p[i];
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

int repro__task_status_parse(const char *p, size_t len, struct repro__task_status *st)
{
    const char *v;
    size_t vlen;
    uint64_t x;

    st->tgid = -1;
    st->sigcgt = st->sigign = st->sigblk = 0;
    v = status_field(p, len, "Tgid", &vlen);
    if (v == NULL || parse_u64(v, vlen, 10, &x) != 0 || x == 0 || x > INT32_MAX)
        return REPRO_E_MALFORMED;
    st->tgid = (int)x;
    v = status_field(p, len, "SigCgt", &vlen);
    if (v == NULL || vlen != 16 || parse_u64(v, vlen, 16, &st->sigcgt) != 0)
        return REPRO_E_MALFORMED;
    v = status_field(p, len, "SigBlk", &vlen);
    if (v != NULL && (vlen != 16 || parse_u64(v, vlen, 16, &st->sigblk) != 0))
        return REPRO_E_MALFORMED;
    v = status_field(p, len, "SigIgn", &vlen);
    if (v != NULL && (vlen != 16 || parse_u64(v, vlen, 16, &st->sigign) != 0))
        return REPRO_E_MALFORMED;
    return REPRO_OK;
}

int repro__regs_from_user(const void *raw, size_t raw_len, struct repro__regs *r)
{
    uint64_t w[64];
    size_t n = raw_len / sizeof *w;

    repro__regs_init(r, REPRO__REGS_HOST);
#if defined(__x86_64__) || defined(__aarch64__)
    if (raw_len < sizeof(struct user_regs_struct))
        return REPRO_E_MALFORMED;
    if (n > sizeof w / sizeof *w)
        n = sizeof w / sizeof *w;
    memcpy(w, raw, n * sizeof *w);
    repro__regs_from_prstatus(r, REPRO__REGS_HOST, w, n);
    return REPRO_OK;
#else
    (void)raw;
    (void)w;
    (void)n;
    return REPRO_E_UNSUPPORTED;
#endif
}

